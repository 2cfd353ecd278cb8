# Connvo Support Console — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Python >= 3.12: the version named in .python-version through pyenv when present, else the newest on PATH.
BOOTSTRAP_PYTHON ?= $(shell \
	for p in "$$(pyenv root 2>/dev/null)/versions/$$(cat .python-version 2>/dev/null)/bin/python" \
	         python3.14 python3.13 python3.12 python3; do \
	  c=$$(command -v "$$p" 2>/dev/null) || continue; \
	  "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo "$$c"; break; }; \
	done)

.PHONY: help setup demo test test-sqlite test-browser test-postgres test-servers test-servers-sqlite test-clock mutants lint format serve services browser nginx clean

help:
	@echo "make demo    set up and start the console with a fake Connvo deployment (http://127.0.0.1:8000)"
	@echo "make test    set up and run the whole test suite (SQLite on a summer clock beside the server tests, then PostgreSQL beside the browser tests)"
	@echo "make test-clock  the non-browser suite at three awkward instants, far east (docs/testing.md)"
	@echo "make mutants     mutation testing of the modules where a silent break hurts most (slow)"
	@echo "make setup   create .venv, install the locked dependencies, migrate, collect static files"
	@echo "make serve   production mode on this machine: gunicorn, the push server and relay, keys from .env (docs/deploy.md)"
	@echo "make lint    ruff check + format check"

# uv (itself hash-pinned, installed by pip) installs the lock: half a minute of pip's becomes a
# few seconds, in every fresh clone's `make test`. Where uv cannot reach the index (it does not
# read pip's configuration), pip installs it instead. Compiled to bytecode as it is installed, as
# pip does: uv leaves that to the first import, and where PYTHONDONTWRITEBYTECODE is set (as in
# the tests' subprocesses) every process compiled Django from source again (a fifth of the SQLite
# run's CPU, docs/testing.md); gunicorn's workers start faster for it too.
$(STAMP): requirements.lock requirements-uv.lock
	@test -n "$(BOOTSTRAP_PYTHON)" || { echo "Python >= 3.12 is required (pyenv install 3.13, or apt install python3.13)"; exit 1; }
	@test -x $(PY) || "$(BOOTSTRAP_PYTHON)" -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-uv.lock
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --require-hashes --python $(PY) -r requirements.lock \
	  || $(PY) -m pip install --quiet --require-hashes -r requirements.lock
	@touch $@

# Production mode (DEBUG off) refuses the demo secrets, so the demo runs in debug mode, and so does
# setting up on a machine without a .env; with a .env (a server), its DEBUG decides.
demo: export DEBUG ?= true
ifeq ($(wildcard .env),)
setup: export DEBUG ?= true
endif

setup: $(STAMP)
	$(PY) manage.py migrate --noinput --verbosity 0
	$(PY) manage.py collectstatic --noinput --verbosity 0

# Debian's chromium for the browser tests (Playwright cannot download its own browser here), and
# its headless shell, which the tests drive: the same engine without the browser's UI layers, as
# Playwright's own headless runs use; it takes under half of the full browser's CPU, and the
# browser tests are CPU-bound (docs/testing.md, "What runs where").
browser:
	@command -v chromium >/dev/null && command -v chromium-headless-shell >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-headless-shell fonts-dejavu-core >/dev/null; }

# Debian's nginx and openssl for the deployment test (tests/test_deployment.py runs docs/deploy/'s
# nginx site in front of gunicorn, with a self-signed certificate). The test starts its own nginx;
# the package's service is not needed.
nginx:
	@{ command -v nginx || test -x /usr/sbin/nginx; } >/dev/null && command -v openssl >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx openssl >/dev/null; }

# Two fake deployments on loopback: "demo", whose agents connect through a fake WorkOS AuthKit
# (short-lived access tokens renewed by the console), and "demo-prod", which takes pasted tokens
# and redacts errors like a production deployment.
DEMO_ENV := CONNVO_DEPLOYMENTS="$${CONNVO_DEPLOYMENTS:-demo=http://127.0.0.1:8765,demo-prod=http://127.0.0.1:8766}" \
	CONNVO_DEFAULT_DEPLOYMENT="$${CONNVO_DEFAULT_DEPLOYMENT:-demo}" \
	CONNVO_PRODUCTION_DEPLOYMENTS="$${CONNVO_PRODUCTION_DEPLOYMENTS:-demo-prod}" \
	WORKOS_CLIENT_ID_DEMO="$${WORKOS_CLIENT_ID_DEMO:-client_01DEMOCONSOLE}" \
	WORKOS_API_KEY_DEMO="$${WORKOS_API_KEY_DEMO:-sk_test_demo_console}" \
	WORKOS_BASE_URL_DEMO="$${WORKOS_BASE_URL_DEMO:-http://127.0.0.1:8765}"

# The launcher lives with the fakes (fakeconnvo/demo.py): nothing in the console imports a fake.
DEMO_ADDRPORT ?= 127.0.0.1:8000

demo: setup
	$(DEMO_ENV) $(PY) -m fakeconnvo.demo --addrport $(DEMO_ADDRPORT)

# Production mode on this machine: gunicorn with gunicorn.conf.py, DEBUG off, collected static
# files. It refuses to start without SECRET_KEY, TOKEN_ENCRYPTION_KEYS and AUDIT_CHAIN_KEY (from
# .env or the environment); set CACHE_URL=redis://... so that workers share the lookup limit.
# The push server (gunicorn-push.conf.py, /live/ on 127.0.0.1:8001) and the push relay (its socket
# in .run/ here, not /run as under systemd) run beside it, stopped with it; without nginx in front
# (docs/deploy.md) the pages on 8000 poll.
serve: export CONNVO_PUSH_RELAY ?= $(CURDIR)/.run/relay.sock
serve: setup
	mkdir -p -m 700 .run
	$(PY) manage.py push_relay & relay=$$!; \
	  $(VENV)/bin/gunicorn -c gunicorn-push.conf.py & push=$$!; \
	  trap 'kill $$push $$relay 2>/dev/null; wait $$push $$relay' EXIT; \
	  $(VENV)/bin/gunicorn -c gunicorn.conf.py

# Start the local PostgreSQL and Redis when they are not already answering.
services:
	@bash scripts/services.sh

# Two pytest-xdist workers (the machine's two cores; much of the suite waits on servers and
# subprocesses rather than computing). Tests are handed out one by one in pytest-django's order
# (database tests before transactional ones, which flush the migrations' groups), except that an
# `xdist_group` stays on one worker so that a module-scoped server (the deployment test's stack,
# the demo) starts once. Each worker has a test database of its own (pytest-django adds _gw0, _gw1
# to the name). PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup
# The browser tests test pages, not the database: `make test` runs them once, on SQLite, and
# `make test-postgres BROWSER_TESTS=no` leaves them out (docs/testing.md, "What runs where").
BROWSER_TESTS ?= yes
NOT_BROWSER := -m "not browser" --ignore=tests/browser

# The SQLite run and the browser tests are also the clock run: on a summer's day far east
# (docs/testing.md, "The clock runs"); PostgreSQL runs at the real date. Three streams
# share the two cores (docs/testing.md, "CI time"): the PostgreSQL tests of whole servers (the
# deployment stack, workers killed mid-call, two hosts, the push bench: their own databases, and
# most of their time spent waiting on servers they start) run in one process beside the SQLite
# run, followed by the SQLite run's own (SQLITE_SERVER_TESTS); the browser tests (SQLite, the same
# clock) run beside the rest of the PostgreSQL run, whose
# property tests, run in full on SQLite just before, generate a third of their examples there
# (tests/conftest.py, `examples`). The side streams' output follows; `make test` fails if any
# stream does.
TEST_CLOCK := 2027-07-15T12:00:00Z
SERVER_TESTS := tests/test_deployment.py tests/test_audit_spans_kill.py tests/test_two_hosts.py \
	tests/test_benches.py::test_push_load_runs_and_every_answer_connvo_sent_is_on_record
# The SQLite run's tests of the push relay (whole servers): after the PostgreSQL tests of whole
# servers, in the same stream beside the SQLite run (which would otherwise end alone; with the
# live bench's test too, the stream ended after it).
SQLITE_SERVER_TESTS := tests/test_push_relay.py
test: $(STAMP) browser nginx services lint
	@servers_log=$$(mktemp); browser_log=$$(mktemp); \
	  { $(MAKE) --no-print-directory test-servers; first=$$?; \
	    $(MAKE) --no-print-directory test-servers-sqlite CLOCK=$(TEST_CLOCK); \
	    test $$? = 0 && test $$first = 0; } >"$$servers_log" 2>&1 & servers=$$!; \
	  $(MAKE) --no-print-directory test-sqlite CLOCK=$(TEST_CLOCK) BROWSER_TESTS=no \
	    SERVER_TESTS_APART=yes; sqlite=$$?; \
	  $(MAKE) --no-print-directory test-browser CLOCK=$(TEST_CLOCK) >"$$browser_log" 2>&1 & browser=$$!; \
	  CONSOLE_TEST_EXAMPLES_SHARE=0.33 $(MAKE) --no-print-directory test-postgres BROWSER_TESTS=no \
	    DATABASE_TESTS_ONLY=yes SERVER_TESTS_APART=yes; postgres=$$?; \
	  wait $$servers; servers=$$?; wait $$browser; browser=$$?; \
	  echo "== the tests of whole servers, PostgreSQL then SQLite (run beside SQLite)"; \
	  cat "$$servers_log"; \
	  echo "== the browser tests (SQLite, run beside PostgreSQL)"; cat "$$browser_log"; \
	  rm -f "$$servers_log" "$$browser_log"; \
	  test $$sqlite = 0 && test $$postgres = 0 && test $$servers = 0 && test $$browser = 0

# The PostgreSQL tests of whole servers alone, in one process (`make test` runs them apart).
test-servers: $(STAMP)
	DATABASE_URL=$${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} \
	  $(PY) -m pytest -n 0 $(SERVER_TESTS)

# The SQLite run's tests of whole servers alone, in one process (CLOCK as below).
test-servers-sqlite: $(STAMP)
	$(if $(CLOCK),CONSOLE_TEST_CLOCK=$(CLOCK) CONSOLE_TEST_TZ=$(CLOCK_TZ)) \
	  DATABASE_URL=sqlite:///:memory: $(PY) -m pytest -n 0 $(SQLITE_SERVER_TESTS)

# CLOCK=<instant> runs it with the wall clock moved there (ticking) and the local zone CLOCK_TZ.
# SERVER_TESTS_APART=yes leaves out SQLITE_SERVER_TESTS (`make test` runs them beside it).
test-sqlite: $(STAMP)
	$(if $(CLOCK),CONSOLE_TEST_CLOCK=$(CLOCK) CONSOLE_TEST_TZ=$(CLOCK_TZ)) \
	  DATABASE_URL=sqlite:///:memory: $(PYTEST) $(if $(filter no,$(BROWSER_TESTS)),$(NOT_BROWSER)) \
	  $(if $(filter yes,$(SERVER_TESTS_APART)),$(call apart,$(SQLITE_SERVER_TESTS)))

# The browser tests alone, on SQLite (CLOCK as above).
test-browser: $(STAMP)
	$(if $(CLOCK),CONSOLE_TEST_CLOCK=$(CLOCK) CONSOLE_TEST_TZ=$(CLOCK_TZ)) \
	  DATABASE_URL=sqlite:///:memory: $(PYTEST) -m browser tests/browser

# DATABASE_TESTS_ONLY=yes leaves out the tests that cannot reach the database (docs/testing.md);
# SERVER_TESTS_APART=yes leaves out SERVER_TESTS (`make test` runs them beside SQLite).
test-postgres: $(STAMP)
	DATABASE_URL=$${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} \
	  $(PYTEST) $(if $(filter no,$(BROWSER_TESTS)),$(NOT_BROWSER)) \
	  $(if $(filter yes,$(DATABASE_TESTS_ONLY)),--database-tests-only) \
	  $(if $(filter yes,$(SERVER_TESTS_APART)),$(call apart,$(SERVER_TESTS)))

# The options that leave out the tests $(1) names (a module, or one test of one).
apart = $(foreach t,$(1),$(if $(findstring ::,$(t)),--deselect $(t),--ignore=$(t)))

# The non-browser suite with the wall clock moved (ticking, for the whole run) to a summer's day,
# a leap day and the last second of a year, in a local time zone fourteen hours east of UTC.
CLOCK_INSTANTS := 2027-07-15T12:00:00Z 2028-02-29T12:00:00Z 2027-12-31T23:59:59Z
CLOCK_TZ ?= Pacific/Kiritimati

test-clock: $(STAMP)
	@set -e; for instant in $(CLOCK_INSTANTS); do \
	  echo "== clock at $$instant, local zone $(CLOCK_TZ)"; \
	  CONSOLE_TEST_CLOCK=$$instant CONSOLE_TEST_TZ=$(CLOCK_TZ) DATABASE_URL=sqlite:///:memory: \
	    $(PYTEST) -q -p no:cacheprovider $(NOT_BROWSER); \
	done

# Mutation testing (mutmut, configured in pyproject.toml): slow, so not part of `make test` or CI.
# Incremental: results are kept under mutants/ (rm -rf mutants for a fresh run).
# MUTANTS picks some of them, e.g. make mutants MUTANTS='audit.spans*' (default: all).
# mutmut copies the code and tests into mutants/ but not the environment, which the deploy test's
# `systemd-analyze verify` needs (the unit's ExecStart is .venv/bin/gunicorn): link it there.
# One at a time: with two, mutmut 3.8's fork server runs two mutants' tests at once in forks of
# one process, and each fails within a second whatever the mutant (every mutant "killed", an
# equivalent one too: docs/testing.md, fifth run).
MUTANTS_CHILDREN ?= 1
MUTANTS ?=

mutants: $(STAMP)
	mkdir -p mutants && ln -sfn ../$(VENV) mutants/$(VENV)
	DATABASE_URL=sqlite:///:memory: $(VENV)/bin/mutmut run --max-children $(MUTANTS_CHILDREN) $(MUTANTS)
	$(VENV)/bin/mutmut results

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) staticfiles .pytest_cache db.sqlite3
