# Two entry points: `make up` (install, then run the PDP and the sidecar on the demo
# configuration) and `make test` (install everything, then run every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install up test lint deps bench-trino
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

up: install
	$(BIN)/pdp up

lint: install
	$(BIN)/ruff check .

# What the tests run against: Debian's PostgreSQL (each run starts a throwaway cluster from it)
# and Trino from Maven Central (cached in .cache/trino, once per machine).
deps:
	bash scripts/install-postgres.sh
	bash scripts/fetch-trino.sh >/dev/null

test: lint deps
	$(BIN)/pytest

# Whole queries through a real Trino under each access control (benchmarks/README.md).
bench-trino: install deps
	$(BIN)/python -m benchmarks.trino_bench --queries 2000
