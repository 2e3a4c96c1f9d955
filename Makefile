# Two commands on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?=
PORT   ?=

.PHONY: run test bench lint typecheck check system system-test venv clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV) || (bash scripts/install-system.sh && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV))
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/activate
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

system:
	bash scripts/install-system.sh

system-test:
	bash scripts/install-system.sh --test

## Start the recorder and the web UI on config.ini (or the embedded tone demo).
run: system venv
	$(BIN)/isr run $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

## The benchmarks of docs/benchmarks.md (~20 minutes; results in bench/results/).
bench: venv
	bash scripts/install-system.sh --bench
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python bench/streams.py --all
	$(BIN)/python bench/analysis.py --runs 1
	$(BIN)/python bench/list_files.py
	$(BIN)/python bench/index.py
	$(BIN)/python bench/restart.py
	$(BIN)/python bench/clips.py
	$(BIN)/python bench/report.py --rounds 3
	$(BIN)/python bench/hls.py --duration 30
	$(BIN)/python bench/archive.py

node_modules/axe-core/axe.min.js:
	npm install --no-save --no-audit --no-fund axe-core@4

## Install everything the tests need, then run the whole suite. Three workers on two
## cores, a test file each at a time: most tests wait on real time (two workers kept
## the cores two-thirds busy, for 16 minutes; four, beside a benchmark, starved four
## real-time tests of CPU).
test: system-test venv node_modules/axe-core/axe.min.js
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 3 --dist loadfile --durations=15

## What CI runs short of the slow tests: lint, format, types, the fast tests (~1 min).
check: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 -m "not slow"

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
