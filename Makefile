# ifcoord: every target sets itself up (a .venv with the project installed) on a fresh machine
# that has only Python >= 3.10, git and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Most of the suite waits on git processes and servers, so four workers keep two cores busy.
TEST_WORKERS ?= 4

.PHONY: help setup system bytecode test-bytecode test demo bench lint clean chaos screenshots

help:
	@echo "make demo   - four sessions work the example board on a local bare remote"
	@echo "make screenshots - regenerate the pictures of docs/views.md from a real run"
	@echo "make test   - the whole test suite"
	@echo "make bench  - benchmarks, written to docs/benchmarks.md"
	@echo "make lint   - ruff and mypy"
	@echo "make chaos  - the randomized checker: 2,000 operations with faults over git daemon and smart HTTP, and as agents work"

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Byte-compile the package: where PYTHONDONTWRITEBYTECODE is set, every command would
# otherwise compile ifcoord from source (about 100 ms a command).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src/ifcoord

# The suite's helpers too (tests/, testing/, bench/: imported by every worker and by the
# processes tests start), and pytest may keep its rewritten test modules: with
# PYTHONDONTWRITEBYTECODE set, a fresh clone's run compiled them again in every process
# (188 s against 157 s for the same suite with them kept).
test-bytecode: bytecode
	@$(BIN)/python -m compileall -q tests testing bench

# The Debian packages the tests need (servers on 127.0.0.1, listed in .ci/packages.txt):
# installed with apt-get when missing (.ci/install-packages), so a fresh machine passes.
system:
	@bash .ci/install-packages

test: system test-bytecode
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

demo: bytecode
	$(BIN)/python -m ifcoord.demo

screenshots: bytecode
	$(BIN)/python docs/make_screenshot.py

bench: bytecode
	$(BIN)/python bench/run.py

# The randomized checker at full size (docs/reliability.md, "Faults in shared mode").
CHAOS_OPS ?= 2000
chaos: system bytecode
	$(BIN)/python testing/chaos.py --ops $(CHAOS_OPS) --server daemon --cut 0.1
	$(BIN)/python testing/chaos.py --ops $(CHAOS_OPS) --server http --cut 0.05
	$(BIN)/python testing/chaos.py --ops $(CHAOS_OPS) --server daemon --cut 0.1 --flow agents --tasks 400

lint: $(STAMP)
	$(BIN)/ruff check src tests bench testing
	$(BIN)/mypy src

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache src/ifcoord/__pycache__
