# One entry point for running, testing and measuring the service.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip --disable-pip-version-check
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: help run test test-unit test-matrix test-scale lint typecheck test-js test-py test-postgres bench bench-servers screenshots clean .system-deps .scale-deps

help:
	@echo "make run     - install, migrate and serve http://127.0.0.1:$${PORT:-8000} (Ctrl-C stops)"
	@echo "make test    - install test tools, then lint, type-check and run every test but the scale ones"
	@echo "make test-unit - the unit tier alone: app-only settings, no Redis, worker or browser (seconds)"
	@echo "make test-matrix - the unit and integration tiers on Python 3.12/3.13 x Django 5.2/6.0/6.1"
	@echo "make test-scale - nginx in front, two web and two worker nodes, Sentinel failover"
	@echo "make bench   - measure the worker side, the fan-out and idle sockets (docs/performance.md)"
	@echo "make bench-servers - compare uvicorn and daphne for /ws/progress/"
	@echo "make screenshots - retake the screenshots of the README and docs/ui.md in headless Chromium"

$(VENV)/.base: requirements/base.txt
	@echo "==> Creating $(VENV) and installing requirements/base.txt (the first run takes a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --progress-bar off -r requirements/base.txt | grep -v '^Requirement already satisfied' || true
	@$(PY) -c "import django, channels, celery, uvicorn" || { echo "install failed"; exit 1; }
	@touch $@

$(VENV)/.test: requirements/test.txt $(VENV)/.base
	@echo "==> Installing requirements/test.txt"
	@$(PIP) install --progress-bar off -r requirements/test.txt | grep -v '^Requirement already satisfied' || true
	@$(PY) -c "import pytest, playwright, mypy" || { echo "install failed"; exit 1; }
	@touch $@

# Debian's Chromium for the browser tests (never `playwright install`), node for
# the JavaScript tests, and a compose client that validates compose/ (no engine
# runs here); only what is missing, since nodesource's nodejs ships npm and
# conflicts with Debian's npm package.
.system-deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 \
		|| missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
		echo "==> Installing Debian's$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(VENV)/.base
	@bin/run

lint: $(VENV)/.test
	@echo "==> ruff check and ruff format --check"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@echo "==> lint-imports: no cycle, web and worker apart, core and protocol below them (pyproject.toml)"
	@$(VENV)/bin/lint-imports --no-cache --no-logo
	@echo "==> pylint: no module of progress/, bench/ or devstack/ over 400 lines"
	@$(VENV)/bin/pylint --disable=all --enable=too-many-lines --max-module-lines=400 \
		--ignore=migrations --score=n progress bench devstack

typecheck: $(VENV)/.test
	@echo "==> mypy"
	@SECRET_KEY=mypy-only $(VENV)/bin/mypy progress tasks_site workers statements devstack tests bench noxfile.py

test-js: .system-deps
	@echo "==> JavaScript unit tests (node --test)"
	@node --test tests/js/

# axe-core for the accessibility checks of the browser tests (package-lock.json).
node_modules/.installed: package.json package-lock.json | .system-deps
	@echo "==> npm ci (axe-core, for the browser tests' accessibility checks)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The unit tier: the progress app alone (tests/unit/settings.py), no service at all.
test-unit: $(VENV)/.test
	@echo "==> pytest tests/unit (app-only settings; no Redis, Celery, browser or demo project)"
	@$(PY) -m pytest -q tests/unit --ds=tests.unit.settings

# Then the integration tier (in-process, a private Redis), the system tier (real worker
# and web processes) and the browser tier (Chromium); the scale tier is make test-scale.
test-py: test-unit $(VENV)/.test .system-deps node_modules/.installed
	@echo "==> pytest tests/integration tests/system tests/browser (starts its own Redis, Celery worker, uvicorn and Chromium)"
	@$(PY) -m pytest -m "not scale" tests/integration tests/system tests/browser

# The in-process suite on PostgreSQL (.ci/run, when a server answers): DATABASE_URL names
# a database made for this run, and pytest-django makes its test_ copy; both are dropped.
PG_HOST ?= 127.0.0.1
PG_PORT ?= 5432
PG_USER ?= postgres
PSQL := psql -h $(PG_HOST) -p $(PG_PORT) -U $(PG_USER) -d postgres -qAt -v ON_ERROR_STOP=1

test-postgres: $(VENV)/.test .system-deps node_modules/.installed
	@echo "==> pytest tests/integration on PostgreSQL $(PG_HOST):$(PG_PORT)"
	@db=progress_ci_$$$$; \
	$(PSQL) -c "CREATE DATABASE $$db" || exit 1; \
	DATABASE_URL=postgres://$(PG_USER)@$(PG_HOST):$(PG_PORT)/$$db \
		$(PY) -m pytest -q tests/integration tests/system/test_statements.py; status=$$?; \
	$(PSQL) -c "DROP DATABASE IF EXISTS test_$$db WITH (FORCE)" \
		-c "DROP DATABASE IF EXISTS $$db WITH (FORCE)"; \
	exit $$status

test: lint typecheck test-js test-py

# The unit and integration tiers on Python 3.12 and 3.13 with Django 5.2, 6.0 and 6.1
# (noxfile.py); pyenv's interpreters go on PATH for nox to find. Each cell's venv stays
# in .nox/ for the next run.
PYENV_BINS := $(shell for v in 3.12 3.13; do p=$$(pyenv prefix $$v 2>/dev/null) && printf '%s/bin:' "$$p"; done)
test-matrix: $(VENV)/.test
	@echo "==> nox: the unit and integration tiers on each supported Python and Django"
	@PATH="$(PYENV_BINS)$$PATH" $(VENV)/bin/nox --no-color

# Debian's nginx for the proxy tests of `make test-scale`; openssl makes their certificate.
.scale-deps:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
		echo "==> Installing Debian's nginx"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nginx openssl >/dev/null; }

# The deployment at scale on real processes (about 2 minutes): nginx in front (TLS,
# X-Forwarded-*, idle sockets), two web and two worker nodes, Redis Sentinel failover.
test-scale: $(VENV)/.test .system-deps node_modules/.installed .scale-deps
	@echo "==> pytest -m scale (nginx, two web and two worker nodes, Redis Sentinel)"
	@$(PY) -m pytest -m scale

# Every figure of docs/performance.md, with ratios against baselines measured in
# the same run; about 10 minutes. BENCH_ARGS=--quick makes each a smoke run.
bench: $(VENV)/.test
	@echo "==> 1/3 bench/worker_side.py: set_progress() in a tight loop, and the publish paths"
	@$(PY) bench/worker_side.py $(BENCH_ARGS)
	@echo "==> 2/3 bench/fanout.py: one job to 10, 100 and 1,000 sockets, 100 users; floor and polling"
	@$(PY) bench/fanout.py $(BENCH_ARGS)
	@echo "==> 3/3 bench/idle_sockets.py: 10,000 idle sockets, deflate and ping interval"
	@$(PY) bench/idle_sockets.py $(BENCH_ARGS)

bench-servers: $(VENV)/.test
	@$(PY) bench/asgi_servers.py

screenshots: $(VENV)/.test .system-deps node_modules/.installed
	@echo "==> Browser tests that take docs/img/*.png (README and docs/ui.md)"
	@PROGRESS_SCREENSHOTS=docs/img $(PY) -m pytest -q tests/browser/test_browser.py \
		tests/system/test_group_jobs.py tests/browser/test_accessibility.py \
		tests/browser/test_statements_page.py

clean:
	rm -rf $(VENV) node_modules staticfiles run .pytest_cache .mypy_cache .ruff_cache .hypothesis
