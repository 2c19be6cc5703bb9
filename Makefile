# Everything runs from a fresh clone: `make run` for the pipeline, `make test` for the suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := $(CURDIR)/.venv
INGEST_VENV := $(CURDIR)/.venvs/ingestion
BQ_EMULATOR_VENV := $(CURDIR)/.venvs/bigquery-emulator
IMAGE_AIRFLOW_VENV := $(CURDIR)/.venvs/image-airflow
IMAGE_DBT_VENV := $(CURDIR)/.venvs/image-dbt
LINT_VENV := $(CURDIR)/.venvs/lint
BIN := $(VENV)/bin
UV := $(BIN)/uv
DAG_ID := shop_elt
WAREHOUSE ?= $(CURDIR)/warehouse/analytics.duckdb

# Local (embedded) settings: SQLite metadata, DuckDB warehouse, PyAirbyte ingestion.
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export DO_NOT_TRACK := 1
export ELT_INGESTION_PYTHON := $(INGEST_VENV)/bin/python
export ELT_CONNECTORS_DIR := $(CURDIR)/.venvs/connectors
export ELT_DUCKDB_PATH := $(WAREHOUSE)
export AIRFLOW_CONN_WAREHOUSE := {"conn_type": "duckdb", "host": "$(WAREHOUSE)"}
export PATH := $(BIN):$(PATH)

DBT_FILES := $(shell find dbt_project -path dbt_project/target -prune -o -type f \( -name '*.sql' -o -name '*.yml' \) -print)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: requirements.txt pyproject.toml | $(UV)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet -r requirements.txt
	rm -rf src/*.egg-info  # left by an older setuptools install: Python would find the package twice
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e .
	touch $@

$(INGEST_VENV)/.installed: requirements-ingestion.txt pyproject.toml ingestion/*.yml | $(UV)
	test -x $(INGEST_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(INGEST_VENV)
	VIRTUAL_ENV=$(INGEST_VENV) $(UV) pip install --quiet -r requirements-ingestion.txt
	VIRTUAL_ENV=$(INGEST_VENV) $(UV) pip install --quiet --no-deps -e .
	AIRBYTE_OFFLINE_MODE=1 AIRBYTE_INSTALL_DIR=$(ELT_CONNECTORS_DIR) AIRBYTE_LOGGING_ROOT=$(ELT_CONNECTORS_DIR)/logs PATH=$(INGEST_VENV)/bin:$$PATH \
		$(INGEST_VENV)/bin/python -m elt_platform.ingestion.local_sync_runner install ingestion
	touch $@

$(BQ_EMULATOR_VENV)/.installed: requirements-bigquery-emulator.txt | $(UV)
	test -x $(BQ_EMULATOR_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(BQ_EMULATOR_VENV)
	VIRTUAL_ENV=$(BQ_EMULATOR_VENV) $(UV) pip install --quiet --prerelease=allow -r requirements-bigquery-emulator.txt
	touch $@

# The container image's two environments as virtualenvs, built by the Dockerfile's own script
# from the same locks: the production rehearsal (tests/rehearsal) runs Airflow from one, dbt from the other.
$(IMAGE_AIRFLOW_VENV)/.installed: requirements-image.txt pyproject.toml deploy/install-environments.sh $(shell find src -name '*.py')
	test -x $(IMAGE_AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(IMAGE_AIRFLOW_VENV)
	deploy/install-environments.sh airflow $(IMAGE_AIRFLOW_VENV)/bin/python
	rm -rf build
	touch $@

$(IMAGE_DBT_VENV)/.installed: requirements-dbt.txt deploy/install-environments.sh
	rm -rf $(IMAGE_DBT_VENV)
	deploy/install-environments.sh dbt $(IMAGE_DBT_VENV)
	touch $@

$(LINT_VENV)/.installed: requirements-lint.txt | $(UV)
	test -x $(LINT_VENV)/bin/python || $(UV) venv --quiet --python $(PYTHON) $(LINT_VENV)
	VIRTUAL_ENV=$(LINT_VENV) $(UV) pip install --quiet -r requirements-lint.txt
	touch $@

.PHONY: image-envs
image-envs: $(IMAGE_AIRFLOW_VENV)/.installed $(IMAGE_DBT_VENV)/.installed ## The image's environments as virtualenvs (no Docker engine needed)

.PHONY: install
install: $(VENV)/.installed $(INGEST_VENV)/.installed ## Create both environments and install the connectors

dbt_project/target/manifest.json: $(VENV)/.installed $(DBT_FILES)
	cd dbt_project && $(BIN)/dbt parse --quiet --profiles-dir . --no-partial-parse

.PHONY: manifest
manifest: dbt_project/target/manifest.json ## Build the dbt manifest the DAG renders from (dbt parse)

.PHONY: check
check: install manifest ## Validate ingestion files against the dbt sources
	$(BIN)/elt check

$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	mkdir -p $(AIRFLOW_HOME) $(dir $(WAREHOUSE))
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/migrate.log
	$(BIN)/airflow pools set warehouse 1 "DuckDB allows one writer per file" > /dev/null
	touch $@

# The local pipeline keeps each build's state beside the DuckDB file, so that a run rebuilds only
# what new data or new code reached (docs/analytics-engineers.md, "Reusing unchanged nodes").
run ui: export ELT_BUILD_STATE ?= $(dir $(WAREHOUSE))build_state

.PHONY: run
run: install manifest $(AIRFLOW_HOME)/.migrated ## Sync, build and test the whole pipeline through Airflow, then summarise
	$(BIN)/elt check
	$(BIN)/elt run --dag-id $(DAG_ID) --log $(AIRFLOW_HOME)/last-run.log || true
	$(BIN)/elt summary --dag-id $(DAG_ID) --warehouse $(WAREHOUSE)

.PHONY: test-services
# What the tests need beyond Python: PostgreSQL (the integration tests' Airflow metadata), Redis (the
# production rehearsal's Celery broker), Debian's Chromium and its driver (the pages, in a browser).
# Started or installed (apt-get, as root) when missing; otherwise the command that would.
test-services: ## Start PostgreSQL and Redis, install Chromium, when missing (as root on Debian)
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
		$(AS_ROOT) pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql)" main start
	@redis-cli -h 127.0.0.1 ping > /dev/null 2>&1 || { \
		command -v redis-server > /dev/null || $(call apt_install,redis-server); \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' > /dev/null; }
	@{ command -v chromium && command -v chromedriver; } > /dev/null || $(call apt_install,chromium chromium-driver)

AS_ROOT = $(if $(filter 0,$(shell id -u)),,sudo)
apt_install = { echo "Installing $(1) (apt-get)"; $(AS_ROOT) apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $(AS_ROOT) apt-get install -y -qq $(1) > /dev/null; }

.PHONY: test
# Two lanes (pytest-xdist): the shared Airflow's tests beside the other Airflows' and the unit tests,
# since an Airflow waiting on its runs leaves a core idle much of the time (tests/conftest.py).
test: test-services install manifest $(BQ_EMULATOR_VENV)/.installed image-envs ## Run the whole test suite (installs what it needs)
	$(BIN)/pytest -n 2 --durations=25 $(PYTEST_ARGS)

.PHONY: ui
UI_HOST ?= 127.0.0.1
ui: install manifest $(AIRFLOW_HOME)/.migrated ## Start the Airflow UI, scheduler and DAG processor on http://127.0.0.1:8080 (UI_HOST=0.0.0.0 to share it)
	AIRFLOW__API__HOST=$(UI_HOST) $(BIN)/airflow standalone

.PHONY: bench
bench: install manifest ## Benchmark the transform phase (2 to 4 hours), then per-load freshness and reuse: docs/benchmarks/
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.loads $(BENCH_LOADS_ARGS)
	$(BIN)/python -m bench.reuse $(BENCH_REUSE_ARGS)

.PHONY: bench-loads
bench-loads: install manifest ## Benchmark per-load freshness and incremental syncs (about 20 minutes): docs/benchmarks/loads.md
	$(BIN)/python -m bench.loads $(BENCH_LOADS_ARGS)

.PHONY: bench-reuse
bench-reuse: install manifest ## Benchmark second runs that reuse what nothing changed (about 20 minutes): docs/benchmarks/reuse.md
	$(BIN)/python -m bench.reuse $(BENCH_REUSE_ARGS)

.PHONY: bench-health
bench-health: $(VENV)/.installed ## Benchmark the dashboard health pages (about 15 minutes): docs/benchmarks/health.md
	$(BIN)/python -m bench.health $(BENCH_HEALTH_ARGS)

.PHONY: lint
lint: $(VENV)/.installed $(LINT_VENV)/.installed ## ruff, sqlfluff (dbt templater) and hadolint
	$(BIN)/ruff check src dags tests devstack bench
	$(BIN)/ruff format --check src dags tests devstack bench
	cd dbt_project && $(LINT_VENV)/bin/sqlfluff lint --disable-progress-bar models macros
	$(BIN)/hadolint Dockerfile

.PHONY: docs
docs: $(VENV)/.installed ## Build the docs site (MkDocs Material) into site/ and serve it: make docs SERVE=1
	$(BIN)/mkdocs $(if $(SERVE),serve,build --strict)

.PHONY: lock
lock: $(UV) ## Re-pin every requirements*.txt from its requirements*.in
	# requirements.txt first: the image's and dbt's locks are constrained by it. requirements-models.in
	# has no lock of its own: requirements.in and requirements-dbt.in include it.
	for f in requirements.in $$(ls requirements-*.in | grep -v '^requirements-models.in$$'); do \
		$(UV) pip compile --quiet --prerelease=if-necessary-or-explicit --python-version 3.11 $$f -o $${f%.in}.txt || exit 1; \
	done

.PHONY: clean
clean: ## Remove environments, warehouse, Airflow home and dbt artefacts
	rm -rf .venv .venvs .airflow warehouse dbt_project/target dbt_project/logs site
