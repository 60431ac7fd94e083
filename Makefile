# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: run test ui sample validate bench clean-venv

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

sample: $(BIN)/.installed
	@if [ -z "$$(find raw -type f ! -name 'README*' ! -name '.*' -print -quit)" ]; then \
		$(BIN)/python -m pipeline sample --out raw; \
	else echo "raw/ already holds files: no sample generated"; fi

run: sample
	$(BIN)/python -m pipeline run

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

ui: $(BIN)/.installed
	$(BIN)/dagster dev -w workspace.yaml

validate: $(BIN)/.installed
	$(BIN)/python -m pipeline validate $(FILES)

# Benchmarks (bench/README.md): not tests, nothing is timed against a limit.
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@if [ -f bench/__main__.py ]; then $(BIN)/python -m bench; else $(BIN)/python -m bench.tauargus_compare; fi

clean-venv:
	rm -rf $(VENV)
