# pixelpipe: `make run` runs it locally, `make test` runs every check. Both set up what is
# missing first (Debian packages, .venv, Azurite), so they work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
PORT ?= 7071
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup run demo test lint typecheck unit bench infra-scan audit clean

help:
	@echo "make run     Azurite + the local Functions host on http://127.0.0.1:$(PORT)"
	@echo "make demo    one job on a generated photo, then print the result links"
	@echo "make test    lint, type checks and the whole test suite (starts its own Azurite)"
	@echo "make bench   benchmarks (JSON lines); QUICK=1 for a short run"
	@echo "make infra-scan   checkov on infra/ (offline; its own venv)"
	@echo "make audit   known vulnerabilities in the pins (needs OSV or PyPI's JSON API)"
	@echo "make setup   install what the others need (run by them when needed)"

setup: $(VENV)/.stamp node_modules/.stamp

$(VENV)/.stamp: requirements.txt requirements-dev.txt scripts/install-python.sh
	@bash scripts/system-deps.sh
	@PYTHON=$(PYTHON) bash scripts/install-python.sh
	@touch $@

node_modules/.stamp: package.json package-lock.json
	@bash scripts/system-deps.sh
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: setup
	@PORT=$(PORT) $(PY) -m devhost run

demo: setup
	@$(PY) -m devhost demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest tests/unit -q

test: lint typecheck
	$(VENV)/bin/pytest

bench: setup
	$(PY) bench/imaging.py $(if $(QUICK),--quick)
	$(PY) bench/pipeline.py $(if $(QUICK),--quick)

audit: setup
	bash scripts/audit.sh

infra-scan:
	bash infra/scripts/checkov.sh

clean:
	rm -rf $(VENV) node_modules .data .mypy_cache .ruff_cache .pytest_cache
