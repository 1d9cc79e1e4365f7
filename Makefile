# Pickwise on one machine: `make run` starts the demo, `make test` runs the whole suite.
# Both create .venv on first use; stamp files make later runs skip the installs.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.11; a plain python3 only where no python3.11 is on PATH.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="tests/annotate -x"`.
PYTEST_ARGS ?=
# `make test` spreads the tests over this many processes (pytest-xdist): one per core, at most 4;
# TEST_PROCESSES=0 runs them in this one. A plain `pytest` runs in one process.
TEST_PROCESSES ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
# The worker of the embedded default consumes every queue, one task at a time.
WORKER_ARGS ?= -Q default,generate,train -c 1 --pool=solo -l INFO
PIP := $(BIN)/python -m pip
# CI logs keep pip's errors and drop its progress and "already satisfied" lines.
PIP_FLAGS := $(if $(CI),--progress-bar off --quiet,)

.PHONY: help venv install install-dev run worker test test-numerics screenshots lint migrate

help:
	@echo "make run          set up, migrate, seed the demo, start web + worker (Ctrl-C stops both)"
	@echo "make test         set up and run the whole test suite"
	@echo "make test-numerics  the numerical tests under lower and best CPU kernels, 1 and 2 threads"
	@echo "make worker       start one Celery worker (with beat) on every queue"
	@echo "make migrate      apply database migrations"
	@echo "make screenshots  the browser tests, refreshing the README's screenshots in docs/screenshots"
	@echo "make lint         ruff check, ruff format --check and the import contracts"
	@echo "make venv | install | install-dev"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_FLAGS) --upgrade pip

venv: $(BIN)/python

# Web and worker requirements; torch resolves to the CPU build where one lies on disk.
$(VENV)/.installed: $(BIN)/python requirements/web.txt requirements/ml.txt
	$(PIP) install $(PIP_FLAGS) -r requirements/web.txt -r requirements/ml.txt
	@touch $@

install: $(VENV)/.installed

$(VENV)/.installed-dev: $(VENV)/.installed requirements/dev.txt
	$(PIP) install $(PIP_FLAGS) -r requirements/dev.txt
	@touch $@

install-dev: $(VENV)/.installed-dev

# Local runs are development runs: DEBUG on gives the dev secret key and static serving.
run worker migrate: export DEBUG ?= 1

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: install migrate
	@HOST=$(HOST) PORT=$(PORT) BIN=$(BIN) WORKER_ARGS="$(WORKER_ARGS)" scripts/run-embedded.sh

worker: install
	$(BIN)/celery -A pickwise worker -B $(WORKER_ARGS) \
		--schedule "$${PICKWISE_VAR_DIR:-var}/celerybeat-schedule"

test: export HF_HUB_OFFLINE = 1
test: install-dev
	@scripts/ensure-chromium.sh
	$(BIN)/pytest -q -ra --durations=15 -n $(TEST_PROCESSES) --dist loadgroup $(PYTEST_ARGS)

# The browser tests, saving their screenshots over the README's in docs/screenshots/.
screenshots: export HF_HUB_OFFLINE = 1
screenshots: install-dev
	@scripts/ensure-chromium.sh
	PICKWISE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest -q -m browser $(PYTEST_ARGS)

# The numerical tests under each CPU kernel choice and thread count (scripts/test-numerics.sh).
test-numerics: export HF_HUB_OFFLINE = 1
test-numerics: install-dev
	BIN=$(BIN) scripts/test-numerics.sh $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
