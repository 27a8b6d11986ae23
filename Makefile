# Two commands: `make run` and `make test`. Everything else is set-up they share.
# The Python found on the machine (3.11+); `make PYTHON=python3.12 ...` to choose another.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_PEOPLE ?= 2000
DEMO_SEED ?= 1
# where `make run` serves: `make run PORT=8640` (another port when 8000 is taken)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup lint format browser nats redis pgclient pgbench wrk ha-packages drill bench db clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sscard needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# sscard's own modules compiled ahead (an editable install is not, and with PYTHONDONTWRITEBYTECODE set, as on
# this workplace's machines, every start compiled ~190 modules again: ~0.8 s of a restart's ~2.3 CPU seconds).
# Up-to-date files are skipped: ~0.1 s when nothing changed.
setup: $(STAMP)
	@$(BIN)/python -m compileall -q src/sscard

db: setup
	$(BIN)/sscard init
	$(BIN)/sscard demo --people $(DEMO_PEOPLE) --seed $(DEMO_SEED) --if-empty --json var/demo.json

# the demo's hotline takes unsigned webhooks (curl, a softphone bridge); a deployment sets SSCARD_TWILIO_AUTH_TOKEN
run: db
	SSCARD_HOTLINE_UNSIGNED=true $(BIN)/sscard serve --host $(HOST) --port $(PORT)

# Debian's Chromium drives the browser tests; installed here when missing and we may.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk fonts-wqy-zenhei tmux >/dev/null) \
	      || echo "could not install chromium: browser tests will be skipped"; \
	  else echo "chromium missing (apt-get install chromium fonts-noto-cjk fonts-wqy-zenhei): browser tests will be skipped"; fi; }
	@command -v tmux >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null || true; }
	@dpkg -s fonts-noto-cjk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk fonts-wqy-zenhei >/dev/null || true; }  # the PDFs' CJK font, also where chromium came without it
	@command -v pdftotext >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null || true; }  # the PDF slips' text is read back in tests

# nats-server (JetStream) for the events tests, which start their own on a free port; installed when missing and we may.
nats:
	@command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null) \
	      || echo "could not install nats-server: the NATS tests will be skipped"; \
	  else echo "nats-server missing (apt-get install nats-server): the NATS tests will be skipped"; fi; }

# Redis backs the login throttle when SSCARD_RATE_LIMIT_STORAGE=redis://...; its tests need a server on
# 127.0.0.1:6379 (skipped when none answers, unless SSCARD_REQUIRE_REDIS is set as in .ci/run).
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
	      || echo "could not install redis-server: the Redis throttle tests will be skipped"; \
	  else echo "redis-server missing (apt-get install redis-server): the Redis throttle tests will be skipped"; fi; }
	@redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || { command -v redis-server >/dev/null 2>&1 && \
	  redis-server --bind 127.0.0.1 --port 6379 --save '' --daemonize yes >/dev/null || true; }

# pg_dump/pg_restore for `sscard backup`/`sscard restore` on PostgreSQL: Debian's postgresql-client (15 on
# bookworm, the server's major version: pg_dump refuses a server newer than itself), installed when missing.
pgclient:
	@{ command -v pg_dump >/dev/null 2>&1 && command -v pg_restore >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null) \
	      || echo "could not install postgresql-client: PostgreSQL backup tests will fail"; \
	  else echo "pg_dump missing (apt-get install postgresql-client): PostgreSQL backups cannot run"; fi; }

# pg_auto_failover (a monitor and two PostgreSQL 15 nodes) for `sscard ha up` and the failover drill;
# installed here when missing and we may.
ha-packages:
	@command -v pg_autoctl >/dev/null 2>&1 && [ -x /usr/lib/postgresql/15/bin/pg_ctl ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15-auto-failover pg-auto-failover-cli >/dev/null; \
	  else echo "pg_autoctl missing (apt-get install postgresql-15-auto-failover pg-auto-failover-cli)"; exit 1; fi; }

# The failover drill (docs/OPERATIONS.md): SIGKILL of the primary under HTTP load, bounded.
DRILL_SECONDS ?= 30
drill: setup ha-packages
	$(BIN)/sscard drill failover --seconds $(DRILL_SECONDS)

# The native pgbench binary is the benchmark's PostgreSQL baseline (Debian: postgresql-client); installed here
# when missing and we may. Without it `sscard bench` says so and falls back to a Python loop.
pgbench:
	@command -v pgbench >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client >/dev/null) \
	      || echo "could not install postgresql-client: the benchmark's baseline will be the Python loop"; \
	  else echo "pgbench missing (apt-get install postgresql-client): the benchmark's baseline will be the Python loop"; fi; }

# wrk (a C load generator) is the client of `sscard bench lookups` (and of the bench's (c) and (f) with --client wrk), as pgbench is the ledger's baseline: a Python
# client on these 2 cores takes CPU from the server it measures. Without it the Python client runs, labelled.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
	      || echo "could not install wrk: sscard bench lookups will use its Python client"; \
	  else echo "wrk missing (apt-get install wrk): sscard bench lookups will use its Python client"; fi; }

# `make bench DB=postgres` (or sqlite): every workload against the baseline, 8 clients, 10 s each
DB ?= sqlite
bench: setup pgbench wrk
	$(BIN)/sscard bench --db $(DB) --clients 8 --seconds 10

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# two test processes (pytest-xdist), a file each at a time: CI's 2 cores, each worker with its own databases
TEST_WORKERS ?= 2
test: setup browser nats redis pgclient pgbench wrk lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf var .pytest_cache
