# Two commands: `make run` and `make test`. Everything else is set-up they share.
# The Python found on the machine (3.11+); `make PYTHON=python3.12 ...` to choose another.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_PEOPLE ?= 2000
DEMO_SEED ?= 1

.PHONY: run test setup lint format browser pgbench bench db clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sscard needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

db: setup
	$(BIN)/sscard init
	$(BIN)/sscard demo --people $(DEMO_PEOPLE) --seed $(DEMO_SEED) --if-empty --json var/demo.json

run: db
	$(BIN)/sscard serve --host 127.0.0.1 --port 8000

# Debian's Chromium drives the browser tests; installed here when missing and we may.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk fonts-wqy-zenhei tmux >/dev/null) \
	      || echo "could not install chromium: browser tests will be skipped"; \
	  else echo "chromium missing (apt-get install chromium fonts-noto-cjk fonts-wqy-zenhei): browser tests will be skipped"; fi; }
	@command -v tmux >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null || true; }

# The native pgbench binary is the benchmark's PostgreSQL baseline (Debian: postgresql-client); installed here
# when missing and we may. Without it `sscard bench` says so and falls back to a Python loop.
pgbench:
	@command -v pgbench >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null) \
	      || echo "could not install postgresql-client: the benchmark's baseline will be the Python loop"; \
	  else echo "pgbench missing (apt-get install postgresql-client): the benchmark's baseline will be the Python loop"; fi; }

# `make bench DB=postgres` (or sqlite): every workload against the baseline, 8 clients, 10 s each
DB ?= sqlite
bench: setup pgbench
	$(BIN)/sscard bench --db $(DB) --clients 8 --seconds 10

lint: setup
	$(BIN)/ruff check src tests

format: setup
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

test: setup browser pgbench lint
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf var .pytest_cache
