# jitportal: `make run` starts the portal with its demo, `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORTAL_HOST ?= 127.0.0.1
PORTAL_PORT ?= 8000
EMULATOR_PORT ?= 8443
export PATH := $(abspath $(BIN)):$(PATH)
export DJANGO_SETTINGS_MODULE ?= jitportal.settings.local
# Four test processes: most tests wait on the emulator, Celery workers or the browser, so four keep two cores busy
# (one suite in about 6 minutes instead of 10 on two). Each takes one test at a time, the long ones first (tests/conftest.py),
# so none is left finishing a long test alone at the end.
PYTEST_ARGS ?= -n 4 --maxschedchunk 1
# More pytest options after those, e.g. PYTEST_EXTRA="-m backends" (CI's run on the embedded defaults).
PYTEST_EXTRA ?=

.PHONY: install run test lint bench clean

$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

install: $(BIN)/.installed

run: install
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	EMULATOR_PORT=$(EMULATOR_PORT) $(BIN)/python manage.py seed_demo
	@echo ""
	@echo "  jitportal is starting on http://$(PORTAL_HOST):$(PORTAL_PORT)/ (the Azure emulator on https://127.0.0.1:$(EMULATOR_PORT))"
	@echo "  Sign in with Entra ID and pick a demo user: alice (requester), bob (security admin),"
	@echo "  carol (auditor), dave/erin (approvers), frank (reader), oscar (no access)."
	@echo "  Break-glass: 'admin' / 'admin' in the password form. Ctrl-C stops web, workers, beat and emulator."
	@echo ""
	PORTAL_HOST=$(PORTAL_HOST) PORTAL_PORT=$(PORTAL_PORT) EMULATOR_PORT=$(EMULATOR_PORT) $(BIN)/honcho start -f Procfile

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	DJANGO_SETTINGS_MODULE=jitportal.settings.test $(BIN)/pytest $(PYTEST_ARGS) $(PYTEST_EXTRA)

bench: install
	DJANGO_SETTINGS_MODULE=jitportal.settings.test $(BIN)/python -m bench

clean:
	rm -rf var .pytest_cache .ruff_cache
