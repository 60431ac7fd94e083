# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: run test ui sample validate bench destroy clean-venv

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

# End of the study (convention art. 2 and 7): destroy the CAF data, then the residue scan and the
# certificate in reports/. Needs status: closed and published_on in config/study.yaml. Never part of `run`.
destroy: $(BIN)/.installed
	@test -n "$(STUDY_ID)" || { echo "usage: make destroy STUDY_ID=<study_id of config/study.yaml> [OPERATOR='Name, role']" >&2; exit 2; }
	$(BIN)/python -m pipeline destroy --study-id "$(STUDY_ID)" --operator "$(OPERATOR)"

# Benchmarks (bench/README.md): not tests, nothing is timed against a limit.
bench: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@if [ -f bench/__main__.py ]; then $(BIN)/python -m bench; else $(BIN)/python -m bench.tauargus_compare; fi

clean-venv:
	rm -rf $(VENV)
