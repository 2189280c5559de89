# One venv per checkout; every target that runs code depends on it, so each works on a fresh machine.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -e '.[dev,ray]'
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

.PHONY: regress regress-baseline bench-pytest

# The CI regression gate: rerun the small run behind benchmarks/baseline/ and `bench compare` it (docs/compare.md).
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
