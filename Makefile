# Everything a fresh machine with only python3 needs: `make test`, `make demo`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install browser test test-fast test-lowest lint format schema demo sandbox bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

install: $(STAMP)  ## create .venv and install the project with its dev tools (dependency group)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check 'pip>=25.1'  # dependency groups
	$(BIN)/pip install --quiet --disable-pip-version-check -e . --group dev
	touch $(STAMP)

lint: install  ## ruff (lint + format check), the layering contracts, mypy (strict on api and load)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy insightly_etl
	$(BIN)/mypy --strict insightly_etl/api insightly_etl/load

format: install  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install lint browser  ## lint, every test (unit, api in-process, e2e on real uvicorn; one worker a core), the quick ones on the floors
	$(BIN)/pytest -q -n auto
	$(MAKE) --no-print-directory test-lowest LOWEST_MARK="not slow"

browser:  ## Chromium for the report's browser test: installed from Debian's packages when run as root
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Chromium (Debian package chromium) for the report's browser test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else \
	    echo "make test opens the run report in Chromium: install it (Debian/Ubuntu: sudo apt-get install chromium), then run make test again"; exit 1; \
	  fi; }

test-fast: install  ## the quick loop while working: every test not marked slow (under a minute), no lint
	$(BIN)/pytest -q -m "not slow"

# the oldest dependency versions pyproject.toml allows, exactly, in a virtualenv of their own
LOWEST      := .venv-lowest
LOWEST_MARK ?=
$(LOWEST)/.installed-stamp: pyproject.toml tests/floors.py
	$(PYTHON) -m venv $(LOWEST)
	$(PYTHON) tests/floors.py > $(LOWEST)/floors.txt
	$(LOWEST)/bin/pip install --quiet --disable-pip-version-check -c $(LOWEST)/floors.txt -e . pytest jsonschema
	touch $@

test-lowest: $(LOWEST)/.installed-stamp  ## the unit and api tests on the dependency floors (pip -c, exact)
	$(LOWEST)/bin/pytest -q -p no:cacheprovider -m "$(LOWEST_MARK)" tests/unit tests/api

schema: install  ## write mappings/mapping.schema.json from the mapping parser's rules (a test checks it is current)
	$(BIN)/insightly-etl mapping schema > mappings/mapping.schema.json

demo: install  ## export every object of the seeded sandbox to exports/ and show what was written
	$(BIN)/insightly-etl export --sandbox --out exports/
	$(BIN)/python bench/show_export.py exports/

sandbox: install  ## serve the sandbox API on http://127.0.0.1:8765/v3.1/ (key: sandbox)
	$(BIN)/insightly-etl sandbox

bench: install  ## throughput and memory benchmarks against a real uvicorn sandbox (minutes)
	$(BIN)/python bench/run.py

clean:  ## remove the virtualenv and generated files
	rm -rf $(VENV) $(LOWEST) exports .pytest_cache .mypy_cache .ruff_cache
