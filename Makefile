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
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/bench run --suite all --out runs/latest

clean:
	rm -rf $(VENV) runs .pytest_cache

# The CUDA checks for a session lent a GPU (scripts/gpu_check.py documents the device call); on a CPU,
# `make gpu-check ARGS=--dry-run GPU_PYTHON=.venv/bin/python` rehearses every step at a tiny size.
GPU_PYTHON ?= python3
.PHONY: gpu-check
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py --out "$${OUT:-runs/gpu-check}" $(ARGS)
