# Two commands: `make demo` and `make test` (`make lint` checks style and types). Each creates .venv when it is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test test-fast lint toy bench env clean-env notebooks

$(STAMP): pyproject.toml requirements.txt constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "selfsim: installing the pinned environment into $(VENV) (first run only, ~2 min)"
	$(BIN)/pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/pip install -q -c constraints.txt -r requirements.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/pip install -q -c constraints.txt --no-deps -e . 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/selfsim study --workers 2

# Tiny models: one BLAS thread per process beats two threads fighting over small matmuls.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q tests -m "not slow"

# ruff (pyflakes, import order, docstrings of public functions) and pyright (basic); settings in pyproject.toml.
lint: $(STAMP)
	$(BIN)/ruff check selfsim tests benchmarks scripts probes
	$(BIN)/pyright selfsim

toy: $(STAMP)
	$(BIN)/selfsim toy build

# Every benchmark in a quick setting (minutes), then one table of ratios; BENCHMARKS.md names each full command.
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/run_all.py

# JupyterLab on notebooks/ (installs the [notebooks] extra into .venv first; the pins of constraints.txt hold).
notebooks: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e ".[notebooks]" 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/jupyter lab notebooks/

clean-env:
	rm -rf $(VENV)
