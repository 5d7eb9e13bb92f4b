# videonas: `make demo` runs a small search and writes its report; `make test` runs the test suite.
# Both create .venv themselves. torch==2.13.0 is installed first: a bare `torch` requirement with no
# torch installed would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_RUN ?= runs/demo

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(BIN)/nas demo --runs-dir runs

clean:
	rm -rf $(VENV) runs .pytest_cache
