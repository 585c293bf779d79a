# Two entry points: `make up` (install, then run the PDP and the sidecar on the demo
# configuration) and `make test` (install everything, then run every test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install install-test lock up trino test lint deps plugin plugin-measure plugin-spi-cost bench-trino record-corpus
# `install`: the package alone, what `make up` needs. `install-test`: plus the test and
# benchmark extras (pytest, ruff, mypy, locust), what `make test` and `make lint` need.
install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $@

# constraints.txt: the versions a fresh install resolves today (then run `make test`).
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -e '.[test,bench]'
	{ grep '^#' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .lock-venv

up: install
	$(BIN)/pdp up

# The product's Trino access-control plugin (trino-plugin/): compiled against trino-spi 476 with
# Temurin 25 (Trino 476 runs on it; its SPI classes need Java 24+), its Surefire tests run, the
# jar in trino-plugin/target/pdp-trino-plugin.jar. Maven takes what it has from ~/.m2 and asks
# Maven Central only for what is missing; MVN_FLAGS=-o keeps it offline once ~/.m2 is filled.
PLUGIN_JAVA_HOME ?= /usr/lib/jvm/temurin-25-jdk-amd64
MVN_FLAGS ?=
plugin:
	cd trino-plugin && JAVA_HOME=$(PLUGIN_JAVA_HOME) mvn -B -q -ntp $(MVN_FLAGS) package

# The plugin's measurements (docs/trino-plugin.md): the heap its cache holds when 10,000 users'
# sessions fill it, what a warm query's calls cost on one thread, and what a cold call (one request to
# the sidecar) costs through the JDK's HttpClient and through the plugin's own connection pool.
plugin-measure:
	cd trino-plugin && JAVA_HOME=$(PLUGIN_JAVA_HOME) mvn -B -q -ntp $(MVN_FLAGS) test \
		-Dgroups=measure -DexcludedTestGroups=none

# Each access control's own cost per query of trino_bench's mix and per 2,000-table listing, in one
# JVM without a Trino (benchmarks/spi_cost.py; docs/trino-plugin.md, "Against the other access
# controls"): file rules, the product's plugin and the stock OPA plugin, against a real sidecar,
# PDP and OPA; about 3 minutes. The OPA plugin comes from the fetched Trino's plugin directory.
plugin-spi-cost: install-test deps plugin
	PLUGIN_JAVA_HOME=$(PLUGIN_JAVA_HOME) $(BIN)/python -m benchmarks.spi_cost

# The demo stack plus a real Trino 476 pointed at the sidecar (devstack/demo.py); ACCESS=plugin
# installs the product's plugin beside Trino's stock ones and uses it instead of the OPA plugin.
ACCESS ?= opa
trino: install $(if $(filter plugin,$(ACCESS)),plugin)
	bash scripts/install-postgres.sh
	bash scripts/fetch-trino.sh >/dev/null
	$(BIN)/python -m devstack.demo --access $(ACCESS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# What the tests run against: Debian's PostgreSQL (each run starts a throwaway cluster from it),
# Debian's headless chromium and chromedriver (the console's browser tests)
# and Trino from Maven Central (cached once per user in ~/.cache/pdp/trino; PDP_TRINO_CACHE moves it).
deps:
	bash scripts/install-postgres.sh
	bash scripts/install-chromium.sh
	bash scripts/fetch-trino.sh >/dev/null

test: lint deps plugin
	$(BIN)/pytest

# Re-record tests/fixtures/trino-opa/476 from a real Trino 476 (tests/fixtures/README.md).
record-corpus: install-test deps
	$(BIN)/python -m devstack.record_corpus

# Whole queries through a real Trino under each access control (benchmarks/README.md).
bench-trino: install-test deps plugin
	$(BIN)/python -m benchmarks.trino_bench --queries 2000
