# The verbs people type. Every target installs what it needs first, so a fresh clone
# runs `make up` or `make test` and nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_LOCK := requirements/dev.lock
DATA ?= ../shared/data/chest_xray_224

.PHONY: help up down test test-fast lint format model bench screenshots system venv clean lock release deploy data-upload

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

system: ## install the OS packages (redis, nginx, prometheus, chromium...) when missing
	@bash scripts/ensure_system_packages.sh

# What CI tests is what the hosts install: requirements/dev.lock (the cpu lock plus the test
# tools) with every hash checked, then the project itself, editable, with no dependency of its
# own. The stamp records the lock's sha256 (tests/packaging/test_locks.py reads it).
$(STAMP): $(DEV_LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@sha256sum $(DEV_LOCK) >$(STAMP)

venv: $(STAMP) ## create .venv with the Python dependencies

up: system venv ## start the whole local stack in the foreground (Ctrl-C stops it)
	@bash scripts/up.sh

down: ## stop a local stack left running in the background
	@bash scripts/down.sh

test: system venv ## install what is missing and run every test (slow, e2e and browser included)
	$(PY) -m pytest

test-fast: venv ## the quick suites only
	$(PY) -m pytest -m "not slow and not e2e and not browser and not terraform and not reliability"

lint: venv ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

model: venv ## train, evaluate, publish the local ResNet50 (a candidate once one is served: model.promote)
	$(PY) -m model.train --recipe local-cpu --data $(DATA) --publish var/models

bench: system venv ## benchmarks: inference backends and the full pipeline
	$(PY) -m bench.inference
	$(PY) -m bench.pipeline

screenshots: system venv ## real screenshots of the UI into screenshots/
	$(PY) -m tests.e2e.screenshots

release: ## pack a commit (REF=, default HEAD) with its lock files into the AWS release store, with its sha256
	@bash scripts/release.sh

deploy: ## roll RELEASE=<commit> over the AWS boxes in place, tier by tier (ACTION=configure re-reads secrets)
	@bash scripts/deploy.sh

data-upload: ## put DATA=<Kermany folder> in the data set store the GPU box syncs (DATA_STORE= overrides terraform output)
	@DATA='$(DATA)' DATA_STORE='$(DATA_STORE)' PY='$(PY)' bash scripts/data_upload.sh

clean: ## remove generated files (models and Redis data under var/ are kept)
	rm -rf .pytest_cache .ruff_cache build *.egg-info

lock: venv ## re-resolve requirements/<role>.lock from pyproject.toml, hashed (UPGRADE=1: newest versions)
	$(PY) -m scripts.locks $(if $(UPGRADE),--upgrade)
