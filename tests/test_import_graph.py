"""The project's import graph: no module imports itself through others, and data flows one way.

Every module of bench/, models/, datasets/ and reports/ is parsed (nothing is imported), and every import
statement counts, at module level and inside functions: a function-level import only hides a circle until
the day someone moves it to the top. `from bench import measure` is an edge to the module bench.measure
(an attribute of a package otherwise); importing any module also runs the `__init__` of every package above
it, so those packages are edges too, except the ones the importing module itself sits in (a package's
`__init__` that re-exports its own submodules is not a circle).

The direction of the data flow: datasets -> models -> bench -> reports. A layer may import the layers before
it, never one after it. One edge goes against it on purpose, and is listed with its reason in FACADE_EDGES:
`bench.run(...)` and the CLI end a run of the `all`, `paper` and `deploy` suites with the report, so the API
module (the entry point, above every layer) renders it. The edge is left out of both checks; any other import
of reports from bench fails them.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("datasets", "models", "bench", "reports")  # in the order the data flows
# What each top-level package must not import: every layer after it in PACKAGES.
FORBIDDEN = {pkg: set(PACKAGES[i + 1:]) for i, pkg in enumerate(PACKAGES)}
# (module, imported module): the entry points' edges against the data flow, each with why.
FACADE_EDGES = {
    ("bench.api", "reports"): "bench.run() and `bench report` render the report after (or from) a run",
}


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the packages (`pkg/__init__.py` is `pkg`)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name an import statement anywhere in the file refers to, relative imports resolved;
    `from a import b` gives both `a` and `a.b` (which of them is a module is decided by the caller)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _packages_above(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(root: Path, packages=PACKAGES, accepted=frozenset()) -> dict[str, set[str]]:
    """Module -> the project modules its import statements run (see the module docstring), less the
    `accepted` (module, imported module) edges."""
    files = module_files(root, packages)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = {name for name in imported_names(path, module) if name in files}
        targets |= {package for name in targets for package in _packages_above(name) if package in files}
        # the packages the module sits in are being initialised already when it runs: not edges
        graph[module] = {t for t in targets if t != module and not module.startswith(t + ".")
                         and (module, t) not in accepted}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one module, as a path that returns to its
    start (a -> b -> a), the components found by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_circle_through(graph, component) for component in components]


def _circle_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """The shortest path from the component's first module back to itself, inside the component."""
    start, members = component[0], set(component)
    previous = {start: ""}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph.get(v, ()) & members):
                if w == start:  # v closes the circle: walk back from v to the start
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1] + [start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no circle through {component}")  # a strongly connected component always has one


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """'datasets.x imports models.y' for every edge against the data flow."""
    return [f"{module} imports {target}" for module, targets in sorted(graph.items()) for target in sorted(targets)
            if target.split(".")[0] in FORBIDDEN.get(module.split(".")[0], set())]


def _format(cycle: list[str]) -> str:
    return " -> ".join(cycle)


# -- the project ---------------------------------------------------------------------------------------------
def test_the_project_has_no_import_circle():
    graph = import_graph(ROOT, accepted=FACADE_EDGES)
    assert len(graph) > 50, "the parser found the project's modules"
    cycles = find_cycles(graph)
    assert not cycles, "import circles:\n" + "\n".join(_format(c) for c in cycles)


def test_data_flows_from_datasets_to_models_to_bench_to_reports():
    violations = layer_violations(import_graph(ROOT, accepted=FACADE_EDGES))
    assert not violations, "imports against the data flow:\n" + "\n".join(violations)


def test_the_graph_sees_function_level_and_package_imports():
    graph = import_graph(ROOT)
    assert all(target in graph[module] for module, target in FACADE_EDGES), "an accepted edge that is gone"
    assert "bench.jobs.accuracy" in graph["bench.jobs"]  # run_job imports it inside the function
    assert "bench.variants" in graph["bench.jobs.profile"]  # `from bench.variants import ...` runs its __init__
    assert "bench.measure" in graph["bench.jobs.profile"]  # `from bench import measure` is the module


# -- the checker itself can fail -----------------------------------------------------------------------------
def test_find_cycles_names_the_circle_of_a_small_graph():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]  # a self-import is not a circle between modules
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_circle_through_a_function_level_and_a_relative_import_is_found(tmp_path):
    _write(tmp_path, {
        "bench/__init__.py": "",
        "bench/plan.py": "def settings():\n    from bench.jobs import accuracy\n",
        "bench/jobs/__init__.py": "",
        "bench/jobs/accuracy.py": "from ..plan import settings\n",
    })
    cycles = find_cycles(import_graph(tmp_path, ("bench",)))
    assert [_format(c) for c in cycles] == ["bench.jobs.accuracy -> bench.plan -> bench.jobs.accuracy"]


def test_a_package_init_counts_for_modules_outside_it_only(tmp_path):
    _write(tmp_path, {
        "bench/__init__.py": "",
        "bench/variants/__init__.py": "from bench.variants.probe import run\n",
        "bench/variants/probe.py": "from bench.variants.base import Base\nfrom bench import plan\n",
        "bench/variants/base.py": "",
        "bench/plan.py": "import bench.variants.base\n",
    })
    graph = import_graph(tmp_path, ("bench",))
    assert graph["bench.variants.probe"] == {"bench.variants.base", "bench.plan"}  # no edge to its own package
    assert graph["bench.plan"] == {"bench.variants.base", "bench.variants"}  # the package's __init__ runs first
    # plan -> bench.variants (__init__) -> probe -> plan
    assert [_format(c) for c in find_cycles(graph)] == ["bench.plan -> bench.variants -> bench.variants.probe -> bench.plan"]


def test_an_import_against_the_data_flow_is_named(tmp_path):
    _write(tmp_path, {
        "datasets/__init__.py": "",
        "datasets/synthetic.py": "def draw():\n    from models.zoo import fcn\n",
        "models/__init__.py": "",
        "models/zoo/__init__.py": "",
        "models/zoo/fcn.py": "import datasets.synthetic\n",
    })
    graph = import_graph(tmp_path, ("datasets", "models"))
    assert layer_violations(graph) == ["datasets.synthetic imports models", "datasets.synthetic imports models.zoo",
                                       "datasets.synthetic imports models.zoo.fcn"]


@pytest.mark.parametrize("text, expected", [
    ("from . import b", {"pkg", "pkg.b"}),
    ("from .b import c", {"pkg.b", "pkg.b.c"}),
    ("import pkg.c as c", {"pkg.c"}),
])
def test_relative_imports_resolve_against_the_module(tmp_path, text, expected):
    path = tmp_path / "a.py"
    path.write_text(text)
    assert imported_names(path, "pkg.a") == expected
