"""(a) The baseline: what the database server does for the standard TPC-B-like transaction.

PostgreSQL: the native `pgbench` binary (C, libpq; `pgbench -i -s SCALE` into a scratch database on the
same server, then `pgbench -c CLIENTS -j 2 -T SECONDS -l`; tps from its report, p50/p99 from its
per-transaction log). Without pgbench, the same script in Python threads on psycopg, labelled as such
(it measured a third of pgbench's rate on this host: the client's own CPU is on the same 2 cores).

SQLite has no pgbench: the plain stdlib `sqlite3` loop of the same transaction on the same schema, one
connection per client thread, BEGIN IMMEDIATE as sscard does, at the synchronous level sscard uses.
"""

from __future__ import annotations

import glob
import os
import random
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from ..core.identifiers import ascii_digits
from ..db import sqlite_pragmas
from .common import Scratch, figures

ACCOUNTS_PER_BRANCH, TELLERS_PER_BRANCH = 100_000, 10

SCHEMA = (
    "CREATE TABLE pgbench_branches (bid INTEGER PRIMARY KEY, bbalance INTEGER NOT NULL, filler CHAR(88))",
    "CREATE TABLE pgbench_tellers (tid INTEGER PRIMARY KEY, bid INTEGER, tbalance INTEGER NOT NULL, filler CHAR(84))",
    "CREATE TABLE pgbench_accounts (aid INTEGER PRIMARY KEY, bid INTEGER, abalance INTEGER NOT NULL, filler CHAR(84))",
    "CREATE TABLE pgbench_history (tid INTEGER, bid INTEGER, aid INTEGER, delta INTEGER, mtime TIMESTAMP, "
    "filler CHAR(22))",
)
# pgbench's built-in "tpcb-like" script, one transaction
TPCB = (
    "UPDATE pgbench_accounts SET abalance = abalance + {d} WHERE aid = {a}",
    "SELECT abalance FROM pgbench_accounts WHERE aid = {a}",
    "UPDATE pgbench_tellers SET tbalance = tbalance + {d} WHERE tid = {t}",
    "UPDATE pgbench_branches SET bbalance = bbalance + {d} WHERE bid = {b}",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({t}, {b}, {a}, {d}, CURRENT_TIMESTAMP)",
)
# the database's part of a staff lookup (`sscard bench lookups`), the floor under its answer: an indexed point
# read of one row among a million (scale 10) and one new row, its `viewed` audit record, committed durably
LOOKUP = (
    "SELECT abalance FROM pgbench_accounts WHERE aid = {a}",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({t}, {b}, {a}, 0, CURRENT_TIMESTAMP)",
)
SCRIPTS = {TPCB: "TPC-B", LOOKUP: "lookup (point SELECT + one-row INSERT, committed)"}


def pgbench_path() -> str | None:
    return shutil.which("pgbench")


def run_baseline(db: str, clients: int, seconds: float, *, pg_url: str, scale: int, sqlite_synchronous: str,
                 progress, script: tuple[str, ...] = TPCB) -> dict:
    """`script`: TPCB (the ledger's baseline) or LOOKUP (the lookups')."""
    if db == "sqlite":
        return sqlite_loop(clients, seconds, scale, sqlite_synchronous, script)
    if pgbench_path():
        return native_pgbench(pg_url, clients, seconds, scale, progress, script)
    progress("pgbench is not installed (apt-get install postgresql-client): the baseline is the Python "
             "psycopg loop instead, which measures the Python client as much as the server")
    return python_pg_loop(pg_url, clients, seconds, scale, script)


def _pgbench_script(script: tuple[str, ...], scale: int) -> str:
    """`script` as a pgbench script file: its placeholders drawn as pgbench's own tpcb-like script draws them
    (`pgbench --show-script=tpcb-like`), one transaction."""
    names = {"a": ":aid", "t": ":tid", "b": ":bid", "d": ":delta"}
    return "".join([
        f"\\set aid random(1, {ACCOUNTS_PER_BRANCH * scale})\n", f"\\set bid random(1, {scale})\n",
        f"\\set tid random(1, {TELLERS_PER_BRANCH * scale})\n", "\\set delta random(-5000, 5000)\n", "BEGIN;\n",
        *[stmt.format(**names) + ";\n" for stmt in script], "END;\n"])


# ---------------------------------------------------------------- native pgbench


def native_pgbench(pg_url: str, clients: int, seconds: float, scale: int, progress,
                   script: tuple[str, ...] = TPCB) -> dict:
    scratch = Scratch("postgres", pg_url, "pgbench")
    url = scratch.sa_url
    env = {**os.environ, "PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432),
           "PGUSER": url.username or "postgres", "PGDATABASE": scratch.name}
    if url.password:
        env["PGPASSWORD"] = url.password
    logdir = tempfile.mkdtemp(prefix="sscard-bench-pgbench-")
    try:
        version = subprocess.run(["pgbench", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        progress(f"(a) {version}: pgbench -i -s {scale} into {scratch.name}")
        subprocess.run(["pgbench", "-i", "-s", str(scale), "-q"], env=env, check=True, capture_output=True)
        jobs = min(2, clients)
        command = ["pgbench", "-c", str(clients), "-j", str(jobs), "-T", str(max(1, round(seconds))), "-l",
                   "--log-prefix", str(Path(logdir) / "tx")]
        if script != TPCB:  # (TPCB is pgbench's built-in script, run as such)
            (Path(logdir) / "script.sql").write_text(_pgbench_script(script, scale), encoding="utf-8")
            command += ["-n", "-f", "script.sql"]
        progress("(a) " + " ".join(command))
        run = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=logdir)
        tps = float(re.search(r"tps = ([0-9.]+)", run.stdout).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", run.stdout)
        latencies = []
        for path in glob.glob(str(Path(logdir) / "tx.*")):
            with open(path) as fh:
                for line in fh:  # client_id transaction_no time_us script_no time_epoch time_us ...
                    parts = line.split()
                    if len(parts) >= 3 and ascii_digits(parts[2]):
                        latencies.append(int(parts[2]) / 1e6)
        out = figures(latencies, seconds, int(failed.group(1)) if failed else 0)
        number = re.search(r"\d+\.\d+", version)
        out.update(tps=tps, baseline=f"native pgbench {number.group(0) if number else version}, {SCRIPTS[script]} "
                                     f"scale {scale}, -c {clients} -j {jobs}", source="pgbench")
        return out
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
        scratch.drop()


# ---------------------------------------------------------------- the loop in Python threads


def _loop(connect, clients: int, seconds: float, scale: int, placeholder_free_sql=TPCB, begin="BEGIN") -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()

    def client(c: int) -> None:
        rng = random.Random(c)
        conn = connect()
        cur = conn.cursor()
        try:
            while time.perf_counter() < deadline:
                v = {"a": rng.randint(1, ACCOUNTS_PER_BRANCH * scale), "t": rng.randint(1, TELLERS_PER_BRANCH * scale),
                     "b": rng.randint(1, scale), "d": rng.randint(-5000, 5000)}
                t0 = time.perf_counter()
                try:
                    cur.execute(begin)
                    for stmt in placeholder_free_sql:
                        cur.execute(stmt.format(**v))
                        if stmt.startswith("SELECT"):
                            cur.fetchall()
                    cur.execute("COMMIT")
                    latencies[c].append(time.perf_counter() - t0)
                except Exception:  # noqa: BLE001  counted, as pgbench counts failed transactions
                    errors[c] += 1
                    try:
                        cur.execute("ROLLBACK")
                    except Exception:  # noqa: BLE001, S110
                        pass
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return figures([x for lat in latencies for x in lat], time.perf_counter() - start, sum(errors))


def sqlite_loop(clients: int, seconds: float, scale: int, synchronous: str, script: tuple[str, ...] = TPCB) -> dict:
    """The script's loop (TPC-B unless said) on stdlib sqlite3, WAL, at `synchronous` (sscard's level),
    BEGIN IMMEDIATE."""
    tmp = tempfile.mkdtemp(prefix="sscard-bench-tpcb-")
    path = str(Path(tmp) / "tpcb.db")

    def connect():
        conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        sqlite_pragmas(conn, synchronous)
        return conn

    try:
        conn = connect()
        for stmt in SCHEMA:
            conn.execute(stmt)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO pgbench_branches VALUES (?, 0, '')", [(b,) for b in range(1, scale + 1)])
        conn.executemany("INSERT INTO pgbench_tellers VALUES (?, ?, 0, '')",
                         [(t, (t - 1) // TELLERS_PER_BRANCH + 1) for t in range(1, TELLERS_PER_BRANCH * scale + 1)])
        conn.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?) "
                     "INSERT INTO pgbench_accounts SELECT x, (x - 1) / ? + 1, 0, '' FROM n",
                     (ACCOUNTS_PER_BRANCH * scale, ACCOUNTS_PER_BRANCH))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        out = _loop(connect, clients, seconds, scale, script, begin="BEGIN IMMEDIATE")
        out.update(baseline=f"stdlib sqlite3 {SCRIPTS[script]} loop, scale {scale}, {clients} threads, WAL, "
                            f"synchronous={synchronous.upper()}", source="sqlite3")
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def python_pg_loop(pg_url: str, clients: int, seconds: float, scale: int, script: tuple[str, ...] = TPCB) -> dict:
    """Without pgbench: the same script from Python threads on psycopg, at READ COMMITTED like pgbench."""
    import psycopg

    scratch = Scratch("postgres", pg_url, "tpcb")
    dsn = scratch.sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for stmt in SCHEMA:
                conn.execute(stmt)
            conn.execute("INSERT INTO pgbench_branches SELECT g, 0, '' FROM generate_series(1, %s) g", (scale,))
            for table, per in (("tellers", TELLERS_PER_BRANCH), ("accounts", ACCOUNTS_PER_BRANCH)):
                conn.execute(f"INSERT INTO pgbench_{table} SELECT g, (g - 1) / %s + 1, 0, '' "  # noqa: S608  fixed names
                             "FROM generate_series(1, %s) g", (per, per * scale))
            conn.execute("VACUUM ANALYZE")
        out = _loop(lambda: psycopg.connect(dsn, autocommit=True), clients, seconds, scale, script)
        out.update(baseline=f"Python psycopg {SCRIPTS[script]} loop (pgbench not installed), scale {scale}, "
                            f"{clients} threads",
                   source="python")
        return out
    finally:
        scratch.drop()
