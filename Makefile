# Two commands on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test lint typecheck check system system-test venv clean

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

## Start the recorder on config.ini (or the embedded tone demo when there is none).
run: system venv
	$(BIN)/isr record

## Install everything the tests need, then run the whole suite.
test: system-test venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
