# The two commands: `make run` (embedded default: SQLite, in-memory layer, demo data) and `make test` (whole suite).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# The suite's PostgreSQL and Redis (the machine's own, on loopback). Override to point elsewhere.
TEST_DATABASE_URL ?= postgres://127.0.0.1:5432/postgres
TEST_DATABASE_NAME ?= test_scoreboard
TEST_REDIS_URL ?= redis://127.0.0.1:6379/9

.PHONY: run serve bench bench-full drills test test-embedded test-services test-schema test-browser chromium venv clean

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# schemathesis registers a pytest plugin, so it gets a venv of its own (issue 5).
SCHEMA_VENV := .venv-schema
$(SCHEMA_VENV)/.installed: requirements-schema.txt
	test -x $(SCHEMA_VENV)/bin/python || $(PYTHON) -m venv $(SCHEMA_VENV)
	$(SCHEMA_VENV)/bin/pip install --quiet --upgrade pip
	$(SCHEMA_VENV)/bin/pip install --quiet -r requirements-schema.txt
	touch $@

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "  Scoreboard is running: open http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/)"
	@echo ""
	$(BIN)/daphne -b $(HOST) -p $(PORT) --access-log /dev/null scoreboard_project.asgi:application

# Production configuration (issue 7): nginx -> gunicorn (API, pages) + daphne (/ws/, SSE), DEBUG off, PostgreSQL and
# Redis from DATABASE_URL / REDIS_URL, SECRET_KEY from the environment (refused when missing). deploy/serve.py.
WSGI_WORKERS ?= 4
WSGI_THREADS ?= 4
ASGI_PROCESSES ?= 2
LIVE_PORT ?= 0
serve: venv
	@for name in SECRET_KEY DATABASE_URL REDIS_URL; do \
		if [ -z "$${!name}" ]; then echo "make serve: set $$name in the environment (see README, Production serving)"; exit 2; fi; \
	done
	env DEBUG=false $(BIN)/python manage.py migrate --noinput
	env DEBUG=false $(BIN)/python -m deploy.serve --mode split --wsgi-workers $(WSGI_WORKERS) --wsgi-threads $(WSGI_THREADS) \
		--asgi-processes $(ASGI_PROCESSES) --host $(HOST) --port $(PORT) --live-port $(LIVE_PORT)

# The end-to-end benchmark (issue 7): bench/e2e.py against its own database BENCH_DATABASE_URL and Redis db.
BENCH_DATABASE_URL ?= postgres://127.0.0.1:5432/bench_scoreboard
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/15
bench: venv
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) $(BIN)/python bench/e2e.py $(BENCH_ARGS)

bench-full: venv
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) $(BIN)/python bench/e2e.py --full $(BENCH_ARGS)

# Fault drills (issue 7): a private PostgreSQL cluster and Redis, stopped and restarted under load. On demand,
# not part of `make test`; prints seconds to recover and statuses per phase, writes bench/results/faults.json.
drills: venv
	$(BIN)/python bench/faults.py $(DRILL_ARGS)

test: venv test-embedded test-services test-schema test-browser

# Pass 1: the embedded default, exactly as `make run` uses it. Service-bound tests run in pass 2.
test-embedded: venv
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m pytest -q -m "not postgres and not redis" --ignore=tests/browser

# Pass 2: PostgreSQL and Redis. Outside CI it is skipped with a message when they are not reachable.
test-services: venv
	@if [ "$${CI:-}" != "true" ] && ! DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/python -m tests.services_available; then \
		echo "SKIPPED the PostgreSQL/Redis pass: set TEST_DATABASE_URL / TEST_REDIS_URL to run it."; \
	else \
		DATABASE_URL=$(TEST_DATABASE_URL) TEST_DATABASE_NAME=$(TEST_DATABASE_NAME) REDIS_URL=$(TEST_REDIS_URL) \
			$(BIN)/python -m pytest -q --ignore=tests/browser; \
	fi

# Pass 3: schemathesis fuzzes every operation of /api/schema/ on a live daphne: no 500, no response off the schema.
test-schema: venv $(SCHEMA_VENV)/.installed
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m tests.schema_run --schemathesis $(SCHEMA_VENV)/bin/schemathesis

# Pass 4: real-browser tests (Playwright + Debian's chromium against a real daphne), in their own pytest process:
# Playwright's sync API and pytest-asyncio clash in one. PostgreSQL + Redis when reachable (always in CI), else
# the embedded default with a SQLite file the server process shares.
test-browser: venv chromium
	@if [ "$${CI:-}" = "true" ] || DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/python -m tests.services_available; then \
		DATABASE_URL=$(TEST_DATABASE_URL) TEST_DATABASE_NAME=$(TEST_DATABASE_NAME) REDIS_URL=$(TEST_REDIS_URL) \
			DJANGO_ALLOW_ASYNC_UNSAFE=true $(BIN)/python -m pytest -q tests/browser; \
	else \
		env -u DATABASE_URL -u REDIS_URL DJANGO_ALLOW_ASYNC_UNSAFE=true $(BIN)/python -m pytest -q tests/browser; \
	fi

# Debian's chromium for the browser tests (never `playwright install`: no downloaded browsers).
chromium:
	@test -x /usr/bin/chromium || { \
		echo "Installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

clean:
	rm -rf $(VENV) $(SCHEMA_VENV) db.sqlite3 staticfiles test-artifacts
