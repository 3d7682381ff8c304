# ifcoord: every target sets itself up (a .venv with the project installed) on a fresh machine
# that has only Python >= 3.10, git and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup test test-fast demo bench lint clean

help:
	@echo "make demo   - four sessions work the example board on a local bare remote"
	@echo "make test   - the whole test suite"
	@echo "make bench  - benchmarks, written to docs/benchmarks.md"
	@echo "make lint   - ruff and mypy"

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m ifcoord.demo

bench: $(STAMP)
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
