# videonas: `make demo` runs a small search and writes its report; `make test` runs the test suite;
# `make test-fast` runs it without the slow-marked tests. All create .venv themselves. torch==2.13.0 is
# installed first: a bare `torch` requirement with no torch installed would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_RUN ?= runs/demo

.PHONY: setup test test-fast demo gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,mlflow,synetune]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Everything but the tests marked slow (Ray searches, Ray Train, CLI subprocesses, full-width costs: each >= 1.5 s): ~70 s on 2 cores.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(BIN)/nas demo --runs-dir runs

# The GPU check (nas/bench/gpu.py, docs/gpu.md): ~8 min on one GPU; needs only torch and PyYAML (pytest for its
# CUDA-tests section), so it runs on a bare GPU machine with the system python. On a CPU it skips and says why.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
gpu-check:
	PYTHONPATH=. $(GPU_PYTHON) nas/bench/gpu.py --out docs/gpu.md

clean:
	rm -rf $(VENV) runs .pytest_cache
