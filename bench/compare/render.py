"""A Comparison as a rich table (terminal), Markdown (a pull-request comment) or JSON (tools).

Findings that fail come first, and among them first the kinds that used to pass silently (missing in NEW, data
change, skipped, no samples): a reader sees what the gate could not judge before what it judged."""
from __future__ import annotations

import json
import math
from typing import Any

from bench.compare.findings import DATA_CHANGE, MISSING, NO_SAMPLES, REPRODUCED, SAME, SILENT_KINDS, SKIPPED
from bench.compare.judge import Comparison

FORMATS = ("table", "markdown", "json")
QUIET_VERDICTS = (SAME, REPRODUCED)  # summarised as counts; every other finding gets its own line
CHECK_ORDER = ("status", "exact", "determinism", "accuracy", "latency")
SILENT_WORDS = {MISSING: ("missing in NEW", "--allow-missing"),
                DATA_CHANGE: ("on another or unknown data", "--allow-data-change"),
                SKIPPED: ("skipped in NEW", "--allow-skipped"),
                NO_SAMPLES: ("without latency samples in NEW", "--allow-missing")}


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _value(value: Any, field: str) -> str:
    """Numbers in full: counts with thousands separators, sizes and times to the precision that was stored."""
    if _empty(value):
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if isinstance(value, float):
        if field.startswith("latency"):
            return f"{value:.2f}"
        if field in ("image_auroc", "image_ap", "pixel_auroc", "aupro", "image_f1_max", "pixel_ap"):
            return f"{value:.4f}"
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _change(row: dict) -> str:
    change = row["change"]
    if _empty(change):
        return "-"
    if row["check"] == "accuracy":
        return f"{change:+.4f}"
    return f"{change:+.1%}"


def _p(value: Any) -> str:
    return "-" if _empty(value) else f"{value:.2g}"


def _ordered(comparison: Comparison) -> list[dict]:
    rows = comparison.rows.to_dict("records")
    rank = {c: i for i, c in enumerate(CHECK_ORDER)}
    silent = {k: i for i, k in enumerate(SILENT_KINDS)}

    def key(r: dict) -> tuple:
        first = r["fails"] and r.get("kind") in silent  # the findings that used to pass silently, at the top
        return (0 if first else 1 if r["fails"] else 2, silent.get(r.get("kind"), 9), rank.get(r["check"], 9))

    return sorted(rows, key=key)


def _shown(comparison: Comparison) -> list[dict]:
    return [r for r in _ordered(comparison) if r["verdict"] not in QUIET_VERDICTS]


def _summary(comparison: Comparison) -> list[str]:
    lines = []
    rows = comparison.rows
    for check in CHECK_ORDER:
        part = rows[rows["check"] == check]
        if len(part):
            counts = part["verdict"].value_counts()
            lines.append(f"{check}: " + ", ".join(f"{int(n)} {v}" for v, n in counts.items()))
    return lines


def _headline(comparison: Comparison) -> str:
    n = len(comparison.regressions)
    if n:
        return f"REGRESSION: {n} finding(s) fail (exit 1)"
    return "no regression (exit 0)"


def _silent_line(comparison: Comparison) -> str:
    """`not judged, so failing: 2 missing in NEW (--allow-missing accepts them), ...`; "" when there are none."""
    counts = comparison.silent_counts()
    if not counts:
        return ""
    return "not judged, so failing: " + ", ".join(f"{n} {SILENT_WORDS[kind][0]} ({SILENT_WORDS[kind][1]} accepts "
                                               f"{'it' if n == 1 else 'them'})" for kind, n in counts.items())


def to_table(comparison: Comparison, console=None) -> None:
    """Print to a terminal; when stdout is not a terminal, nothing is truncated (the console is as wide as the
    widest line needs)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    shown = _shown(comparison)
    cells = [[r["job"], r["check"], r["field"], _value(r["base"], r["field"]), _value(r["new"], r["field"]), _change(r),
              _p(r["p_value"]), r["verdict"] + (" (fails)" if r["fails"] else ""), r["note"] or ""] for r in shown]
    if console is None:
        console = Console()
        if not console.is_terminal:
            headers = ("job", "check", "field", "BASE", "NEW", "change", "p", "verdict", "note")
            columns = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
            widest = max([sum(columns) + 3 * len(columns) + 1] + [len(line) for line in comparison.context] + [80])
            console = Console(width=widest, soft_wrap=False)
    for line in comparison.context:
        console.print(line, highlight=False, markup=False)
    if _silent_line(comparison):
        console.print(_silent_line(comparison), style="bold red", highlight=False, markup=False)
    if cells:
        table = Table(show_lines=False)
        for name, numeric in (("job", False), ("check", False), ("field", False), ("BASE", True), ("NEW", True),
                              ("change", True), ("p", True), ("verdict", False), ("note", False)):
            width = max([len(name)] + [len(row[len(table.columns)]) for row in cells])
            if name == "note":
                table.add_column(name, overflow="fold", ratio=1)
            else:  # never cut a number or a name: these columns keep their full width
                table.add_column(name, justify="right" if numeric else "left", no_wrap=True, min_width=width)
        for row, r in zip(cells, shown):
            style = "red" if r["fails"] else ("green" if r["verdict"] == "improvement" else None)
            table.add_row(*[escape(c) for c in row], style=style)  # "[unet]" is a name here, not markup
        console.print(table)
    for line in _summary(comparison):
        console.print(line, highlight=False, markup=False)
    console.print(_headline(comparison), style="bold red" if comparison.exit_code else "bold green", markup=False)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(comparison: Comparison) -> str:
    out = [f"### bench compare: {_headline(comparison)}", ""]
    if _silent_line(comparison):
        out += [f"**{_md_cell(_silent_line(comparison))}**", ""]
    out += [f"- {_md_cell(line)}" for line in comparison.context]
    s = comparison.settings
    allowed = [name for name, option in (("parameter counts", "allow_param_change"), ("sizes", "allow_size_change"),
                                         ("missing records", "allow_missing"), ("data changes", "allow_data_change"),
                                         ("skipped variants", "allow_skipped")) if s.get(option)]
    out.append(f"- rules: latency effect {s['latency_effect']:.0%}, alpha {s['alpha']:g}, accuracy tolerance "
               f"{s['accuracy_tol']:g}; allowed: {', '.join(allowed) if allowed else 'nothing'}")
    out.append("")
    shown = _shown(comparison)
    if shown:
        out += ["| job | check | field | BASE | NEW | change | p | verdict | note |",
                "|---|---|---|--:|--:|--:|--:|---|---|"]
        for r in shown:
            verdict = f"**{r['verdict']}**" if r["fails"] else r["verdict"]
            out.append("| " + " | ".join(_md_cell(c) for c in (
                r["job"], r["check"], r["field"], _value(r["base"], r["field"]), _value(r["new"], r["field"]),
                _change(r), _p(r["p_value"]), verdict, r["note"] or "")) + " |")
        out.append("")
    out += [f"- {line}" for line in _summary(comparison)]
    return "\n".join(out) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return _jsonable(value.item())
    return value


def to_json(comparison: Comparison) -> str:
    rows = [{k: _jsonable(v) for k, v in r.items()} for r in _ordered(comparison)]
    payload = {"verdict": comparison.verdict, "exit_code": comparison.exit_code,
               "base": str(comparison.base.source), "new": str(comparison.new.source),
               "base_repeats": [str(r.source) for r in comparison.base_repeats],
               "new_repeats": [str(r.source) for r in comparison.new_repeats],
               "settings": comparison.settings, "context": comparison.context, "counts": comparison.counts(),
               "fails": len(comparison.regressions), "silent": comparison.silent_counts(), "rows": rows}
    return json.dumps(payload, indent=1)


def print_comparison(comparison: Comparison, format: str) -> None:
    """What `bench compare` and `bench ab` print: the comparison in one of FORMATS on stdout."""
    import typer

    if format == "json":
        typer.echo(to_json(comparison))
    elif format == "markdown":
        typer.echo(to_markdown(comparison), nl=False)
    else:
        to_table(comparison)
