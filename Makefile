# One venv per checkout; every target that runs code depends on it, so each works on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: setup test bench clean lock

setup: $(STAMP)

# Installs exactly requirements.lock (every package pinned, the dev and ray extras included, pip itself too), then the
# project without its dependencies; `pip check` fails when the lock no longer covers pyproject.toml (`make lock`).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$$(grep -m1 '^pip==' $(LOCK))"
	$(PY) -m pip install -q --no-compile --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-compile --no-deps --no-build-isolation -e .
	$(PY) -m pip check || { echo "$(LOCK) does not cover pyproject.toml: run 'make lock'" >&2; exit 1; }
	@# pip byte-compiles one file at a time (80 s of a 160 s setup here); compileall does the same files on every
	@# core. Not left to first import: with PYTHONDONTWRITEBYTECODE set (it is on this VM) nothing would ever be
	@# cached and every test process and bench worker would compile torch again. Like pip, it skips the files this
	@# Python cannot compile (torch ships a 3.12-only test module), hence `|| true`.
	$(PY) -m compileall -qq -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile --durations=15

bench: $(STAMP)
	$(VENV)/bin/bench run --suite all --out runs/latest

clean:
	rm -rf $(VENV) runs .pytest_cache

# Re-resolve requirements.lock after a change to pyproject.toml (scripts/lock.sh: pip-compile in a venv of its own;
# pins kept unless they must move; ARGS=--upgrade moves all, ARGS='--upgrade-package NAME' one). Then `make setup`.
lock:
	PYTHON=$(PYTHON) scripts/lock.sh $(ARGS)

.PHONY: regress regress-baseline bench-pytest

# The CI regression gate: rerun the small run behind benchmarks/baseline/ and `bench compare` it (docs/design/compare.md).
regress: $(STAMP)
	PY=$(PY) benchmarks/regress.sh check

# Refresh the committed baseline on purpose (then review and commit benchmarks/baseline/).
regress-baseline: $(STAMP)
	PY=$(PY) benchmarks/regress.sh baseline

# pytest-benchmark timings of every registered model; not part of `make test`. Compare two saved files with
# `bench compare OLD.json NEW.json`.
BENCH_JSON ?= runs/bench-pytest.json
bench-pytest: $(STAMP)
	mkdir -p $(dir $(BENCH_JSON))
	$(PY) -m pytest tests/benchmarks -o python_files='bench_*.py' -q --benchmark-json=$(BENCH_JSON)

# The CUDA checks for a session lent a GPU (scripts/gpu_check.py documents the device call); on a CPU,
# `make gpu-check ARGS=--dry-run GPU_PYTHON=.venv/bin/python` rehearses every step at a tiny size.
GPU_PYTHON ?= python3
.PHONY: gpu-check
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py --out "$${OUT:-runs/gpu-check}" $(ARGS)
