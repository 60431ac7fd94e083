# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: run test test-unit lint ui ui-server sample validate schemas bench release destroy clean-venv lock

# The locked versions first, each file checked against its hash (requirements.lock, `make lock`),
# then the project itself: its dependencies are all there, at those versions.
$(BIN)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e '.[test,bench]'
	$(BIN)/pip check
	touch $@

# requirements.lock from pyproject.toml (README, "Installs"): the versions already locked are kept;
# `make lock UPGRADE=--upgrade` (or UPGRADE='--upgrade-package duckdb') moves them.
lock:
	test -x $(BIN)/uv || $(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra test --extra bench --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" $(UPGRADE) -o requirements.lock

# The sample goes to the project's raw/ only while it holds no data file, and never once the study
# is closed or its data destroyed (fake files there would be taken for, and destroyed as, CAF data).
sample: $(BIN)/.installed
	@$(BIN)/python -m pipeline sample --if-empty

run: sample
	$(BIN)/python -m pipeline run

# Every test, the test files spread over the machine's cores (pytest-xdist; a file's tests stay
# in one worker, with its module fixtures). CI runs this one.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The unit part (pure functions on tiny frames, under two minutes): no sample built, no Dagster
# job run, no browser, no PostgreSQL, no long random search (markers in pyproject.toml).
test-unit: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n auto --dist loadfile -m "not integration and not browser and not postgres and not slow"

# ruff, configured in pyproject.toml ([tool.ruff]); .ci/run runs it before the tests
lint: $(BIN)/.installed
	$(BIN)/ruff check .

ui: $(BIN)/.installed
	$(BIN)/dagster dev -w workspace.yaml

# The server variant (docs/operations.md, "On a server"): the same UI and daemon on an existing
# PostgreSQL, storage as in deploy/dagster.postgres.yaml, the connection read from DAGSTER_PG_HOST,
# DAGSTER_PG_PORT, DAGSTER_PG_DB, DAGSTER_PG_USER and DAGSTER_PG_PASSWORD in the environment
# (never written to a file or a log). Its instance folder is .dagster_home/server (git-ignored).
SERVER_HOME := $(CURDIR)/.dagster_home/server
UI_PORT ?= 3000
ui-server: $(BIN)/.installed
	@for v in HOST PORT DB USER PASSWORD; do [ -n "$$(printenv DAGSTER_PG_$$v)" ] || { \
		echo "make ui-server: DAGSTER_PG_$$v is not set (docs/operations.md, On a server)" >&2; exit 2; }; done
	@mkdir -p "$(SERVER_HOME)" && cp deploy/dagster.postgres.yaml "$(SERVER_HOME)/dagster.yaml"
	@# the pool's row created once, before two runs could race to create it (a unique-key error on PostgreSQL)
	DAGSTER_HOME="$(SERVER_HOME)" $(BIN)/dagster instance concurrency set warehouse 1
	DAGSTER_HOME="$(SERVER_HOME)" $(BIN)/dagster dev -w workspace.yaml -p $(UI_PORT)

validate: $(BIN)/.installed
	$(BIN)/python -m pipeline validate $(FILES)

# The JSON Schemas of config/'s YAML files (config/schemas/), from their models: after a model changes
schemas: $(BIN)/.installed
	$(BIN)/python -m pipeline schemas

# A publication (release): record the current published.indicators, its zones and the truth behind
# it in the immutable history (docs/operations.md, "Publications (releases)"). Never part of `run`.
release: $(BIN)/.installed
	$(BIN)/python -m pipeline release --operator "$(OPERATOR)" --note "$(NOTE)"

# End of the study (convention art. 2 and 7): destroy the CAF data, then the residue scan and the
# certificate in reports/. Needs status: closed and published_on in config/study.yaml. Never part of `run`.
# OPERATOR is required (the certificate names who asked); SENTINEL, a text known to be in the files
# the CAF sent, lets the residue scan prove something when none can be derived from the data. It goes
# to the command in the environment, and the command line is not echoed: the value never shows.
destroy: $(BIN)/.installed
	@test -n "$(STUDY_ID)" || { echo "usage: make destroy STUDY_ID=<study_id of config/study.yaml> OPERATOR='Name, role' [SENTINEL='a text of the CAF files']" >&2; exit 2; }
	@test -n "$(OPERATOR)" || { echo "make destroy: OPERATOR is required: the certificate names who asks for the destruction, e.g. OPERATOR='Prénom Nom, Service Petite Enfance'" >&2; exit 2; }
	@SENTINEL="$(SENTINEL)" $(BIN)/python -m pipeline destroy --study-id "$(STUDY_ID)" --operator "$(OPERATOR)"

# Benchmarks (bench/README.md): not tests, nothing is timed against a limit.
bench: $(BIN)/.installed
	@if [ -f bench/__main__.py ]; then $(BIN)/python -m bench; else $(BIN)/python -m bench.tauargus_compare; fi

clean-venv:
	rm -rf $(VENV)
