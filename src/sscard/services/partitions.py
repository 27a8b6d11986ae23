"""Monthly partitions of the append-only tables on PostgreSQL (docs/SCALE.md); plain tables on SQLite.

Migration 0010 makes each table below `PARTITION BY RANGE (key)` (0023 the last, audit_seals) with one
partition per Shanghai calendar month and a DEFAULT partition, so that a write never fails for want of a
partition. `ensure` creates the partitions of the coming months ahead of time: `sscard partitions ensure
--months-ahead N` (run it daily from cron or the scheduler) and the server, in a background thread at
start. A row in DEFAULT means the job did not run ahead: `status` counts them, and `ensure` makes that
month's partition by moving them into it (one transaction; `moved` in its answer), so the operator is told
and the month is whole again.

Each month's partition is created in its own short transaction under a transaction-level advisory lock
(two servers and cron may run it at once) with a lock timeout, so a long transaction on the table makes
the job skip and retry later instead of queueing every writer behind it.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from ..core.clock import SHANGHAI

if TYPE_CHECKING:
    from .app import App

log = logging.getLogger("sscard.partitions")

# triggers that refuse a DELETE (migrations 0002, 0022, 0024)
IMMUTABLE = {"ledger_transfers": ("ledger_transfers_no_update",), "audit_records": ("audit_records_no_change",),
             "audit_seals": ("audit_seals_no_change",)}
MONTHS_AHEAD = 3  # what the server creates at start; cron runs the same job daily
_LOCK = 0x5353_5041_5254  # pg_advisory_xact_lock key of this job ("SSPART")


@dataclass(frozen=True)
class Partitioned:
    """A table partitioned by month on `key`, whose type says how a month's bound is written."""

    table: str
    key: str
    kind: str  # date | timestamptz (bounds at Shanghai midnight) | month ('YYYY-MM' text)

    def bound(self, month: date) -> str:
        if self.kind == "date":
            return f"'{month:%Y-%m-01}'"
        if self.kind == "timestamptz":
            return f"'{month:%Y-%m-01} 00:00:00+08'"
        return f"'{month:%Y-%m}'"

    def partition(self, month: date) -> str:
        return f"{self.table}_p{month:%Y_%m}"

    @property
    def default(self) -> str:
        return f"{self.table}_default"


TABLES = (
    Partitioned("ledger_transfers", "day", "date"),
    Partitioned("audit_records", "at", "timestamptz"),
    Partitioned("insurance_contributions", "month", "month"),
    Partitioned("medical_contribution_credits", "month", "month"),
    Partitioned("medical_settlements", "at", "timestamptz"),
    Partitioned("audit_seals", "record_at", "timestamptz"),  # each seal in its record's month (0023)
)


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def is_partitioned(conn: Connection, table: str) -> bool:
    relkind: str | None = conn.scalar(text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table})
    return relkind == "p"


def create_partition(conn: Connection, spec: Partitioned, month: date) -> bool:
    """Create `month`'s partition unless it exists; False when it exists. Raises when DEFAULT already
    holds rows of that month (PostgreSQL refuses the partition then)."""
    name = spec.partition(month)
    if conn.scalar(text("SELECT to_regclass(:n)"), {"n": name}) is not None:
        return False
    conn.execute(text(f'CREATE TABLE "{name}" PARTITION OF "{spec.table}" FOR VALUES FROM ({spec.bound(month)}) '
                      f"TO ({spec.bound(add_months(month, 1))})"))
    return True


def _stranded(conn: Connection, spec: Partitioned, month: date) -> int:
    sql = (f'SELECT count(*) FROM "{spec.default}" WHERE "{spec.key}" >= {spec.bound(month)} '  # noqa: S608 fixed names
           f'AND "{spec.key}" < {spec.bound(add_months(month, 1))}')
    stranded: int = conn.scalar(text(sql))
    return stranded


def _move_out_of_default(conn: Connection, spec: Partitioned, month: date) -> None:
    """Make `month`'s partition when DEFAULT already holds rows of it (the job did not run ahead, or a
    backfill): build it as a plain table, move the rows into it, attach it. One transaction, so a reader
    sees the rows in DEFAULT or in their partition, never in neither or both. The move is the one DELETE
    these tables ever see: the ledger's and the audit log's immutability triggers are disabled on DEFAULT for it
    and enabled again before commit."""
    name, lo, hi = spec.partition(month), spec.bound(month), spec.bound(add_months(month, 1))
    where = f'"{spec.key}" >= {lo} AND "{spec.key}" < {hi}'
    conn.execute(text(f'CREATE TABLE "{name}" (LIKE "{spec.table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'))
    conn.execute(text(f'INSERT INTO "{name}" SELECT * FROM "{spec.default}" WHERE {where}'))  # noqa: S608 fixed names
    for trigger in IMMUTABLE.get(spec.table, ()):
        conn.execute(text(f'ALTER TABLE "{spec.default}" DISABLE TRIGGER "{trigger}"'))
    conn.execute(text(f'DELETE FROM "{spec.default}" WHERE {where}'))  # noqa: S608 fixed names
    for trigger in IMMUTABLE.get(spec.table, ()):
        conn.execute(text(f'ALTER TABLE "{spec.default}" ENABLE TRIGGER "{trigger}"'))
    conn.execute(text(f'ALTER TABLE "{spec.table}" ATTACH PARTITION "{name}" FOR VALUES FROM ({lo}) TO ({hi})'))


# ---------------------------------------------------------------- a table made partitioned (migrations)


def _definitions(conn: Connection, table: str) -> dict[str, Any]:
    """What must be re-made on the new table: indexes (but the primary key), foreign keys, user triggers."""
    oid = conn.scalar(text("SELECT CAST(:t AS regclass)::oid"), {"t": table})
    indexes = conn.execute(text(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = :o AND NOT i.indisprimary "
        "ORDER BY c.relname"), {"o": oid}).all()
    fks = conn.execute(text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                            "WHERE conrelid = :o AND contype = 'f' AND confrelid <> :o ORDER BY conname"),
                       {"o": oid}).all()
    referenced = conn.execute(text("SELECT conname, conrelid::regclass::text FROM pg_constraint "
                                   "WHERE confrelid = :o AND conrelid <> :o AND contype = 'f'"), {"o": oid}).all()
    if referenced:  # none today: a new one needs a decision, not a silent drop
        raise RuntimeError(f"{table} is referenced by foreign keys {referenced}: decide before partitioning")
    triggers = conn.execute(text("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                                 "WHERE tgrelid = :o AND NOT tgisinternal ORDER BY tgname"), {"o": oid}).all()
    sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id') FROM pg_attribute "
                                "WHERE attrelid = :o AND attname = 'id'"), {"t": table, "o": oid})
    return {"indexes": indexes, "fks": fks, "triggers": triggers, "sequence": sequence}


def _with_key(indexdef: str, key: str) -> str:
    """A unique index of a partitioned table must hold the partition key: add it as the last column."""
    if " WHERE " in indexdef or not indexdef.endswith(")"):
        raise RuntimeError(f"cannot add the partition key to {indexdef}")
    columns = indexdef[indexdef.rindex("(") + 1 : -1]
    if key in [c.strip() for c in columns.split(",")]:
        return indexdef
    return indexdef[:-1] + f", {key})"


def _without_key(indexdef: str, key: str) -> str:
    return re.sub(rf", {re.escape(key)}\)$", ")", indexdef)


def rebuild(conn: Connection, spec: Partitioned, primary_key: tuple[str, ...], *, partitioned: bool) -> None:
    """Re-make a table as a partitioned (or again a plain) table with the same rows, columns, defaults, checks,
    indexes, foreign keys and triggers (migrations 0010_scale and 0023_audit_seal_months). Partitioned: one
    partition per month from its oldest row's month (or this month) to MONTHS_AHEAD months past its newest,
    and DEFAULT; its primary key is `primary_key` with the partition key added, and so is every unique index.
    Plain again: the keys without it."""
    table, key = spec.table, spec.key
    defs = _definitions(conn, table)
    new = f"{table}_new"
    clause = f' PARTITION BY RANGE ("{key}")' if partitioned else ""
    conn.execute(text(f'CREATE TABLE "{new}" (LIKE "{table}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS){clause}'))
    if partitioned:
        conn.execute(text(f'CREATE TABLE "{table}_default" PARTITION OF "{new}" DEFAULT'))
        now = month_start(conn.scalar(text("SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date")))
        span = [_month_of(v) for v in conn.execute(text(f'SELECT min("{key}"), max("{key}") FROM "{table}"')).one()  # noqa: S608 (names from the fixed table list)
                if v is not None]
        month, last = min(span + [now]), add_months(max(span + [now]), MONTHS_AHEAD)
        building = replace(spec, table=new)
        while month <= last:
            create_partition(conn, building, month)
            month = add_months(month, 1)
    conn.execute(text(f'INSERT INTO "{new}" SELECT * FROM "{table}"'))  # noqa: S608 (names from the fixed table list)
    if defs["sequence"]:
        conn.execute(text(f"ALTER SEQUENCE {defs['sequence']} OWNED BY NONE"))
    conn.execute(text(f'DROP TABLE "{table}"'))
    conn.execute(text(f'ALTER TABLE "{new}" RENAME TO "{table}"'))
    for (name,) in conn.execute(text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                     "WHERE i.inhparent = CAST(:t AS regclass)"), {"t": table}).all():
        if name.startswith(new):  # the partitions were named after the table being built
            conn.execute(text(f'ALTER TABLE "{name}" RENAME TO "{table}{name[len(new):]}"'))
    if defs["sequence"]:
        conn.execute(text(f'ALTER SEQUENCE {defs["sequence"]} OWNED BY "{table}".id'))
    columns = list(primary_key) + ([key] if partitioned and key not in primary_key else [])
    conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "pk_{table}" PRIMARY KEY ({", ".join(columns)})'))
    for _name, indexdef, unique in defs["indexes"]:
        if unique:
            indexdef = _with_key(indexdef, key) if partitioned else _without_key(indexdef, key)
        conn.execute(text(indexdef))
    for name, definition in defs["fks"]:
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}'))
    for _name, definition in defs["triggers"]:
        conn.execute(text(definition))


def _month_of(value: Any) -> date:
    if isinstance(value, str):  # 'YYYY-MM'
        return date(int(value[:4]), int(value[5:7]), 1)
    if isinstance(value, datetime):
        return month_start(value.astimezone(SHANGHAI).date())
    return month_start(value)


def ensure(engine: Engine, today: date, months_ahead: int = MONTHS_AHEAD, *, months_back: int = 0,
           move: bool = True, current: bool = True, lock_timeout_ms: int = 2000) -> dict[str, Any]:
    """Create the partitions of this month and the next `months_ahead` months of every partitioned table
    (and of the `months_back` months before it: contributions are recorded in arrears, a loader backfills).
    A month whose rows are already in DEFAULT is made with them moved in, unless `move` is false (the
    server's start: it must not hold the tables while it starts serving); then it is skipped. With `current`
    false this month is left alone: a partition made for a month whose rows are flowing into DEFAULT right
    now makes an insert already routed to DEFAULT fail ("violates partition constraint", measured in the
    tests), so only the cron job, run ahead, makes it; the server's start makes only months to come.

    Returns {"created": [names], "existing": n, "moved": {name: rows taken out of DEFAULT}, "skipped": {name:
    reason}}; idempotent. On SQLite (and on a PostgreSQL database not migrated to 0010) there is nothing to do."""
    out: dict[str, Any] = {"created": [], "existing": 0, "moved": {}, "skipped": {}}
    if engine.dialect.name != "postgresql" or months_ahead < 0:
        return out
    first = month_start(today)
    for spec in TABLES:
        with engine.connect() as conn:
            if not is_partitioned(conn, spec.table):
                continue
        for n in range(-max(months_back, 0), months_ahead + 1):
            if n == 0 and not current:
                continue
            month = add_months(first, n)
            with engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
                name = spec.partition(month)
                if conn.scalar(text("SELECT to_regclass(:n)"), {"n": name}) is not None:
                    out["existing"] += 1
                    continue
                try:
                    with conn.begin_nested():
                        stranded = _stranded(conn, spec, month)
                        if stranded and not move:
                            out["skipped"][name] = f"{stranded} rows of that month are in {spec.default}"
                            continue
                        if stranded:
                            _move_out_of_default(conn, spec, month)
                            out["moved"][name] = stranded
                        else:
                            create_partition(conn, spec, month)
                except Exception as exc:  # lock timeout: a long transaction holds the table; next run
                    if "lock timeout" not in str(exc):
                        raise
                    out["skipped"][name] = "lock timeout (a long transaction holds the table): next run"
                    continue
                out["created"].append(name)
    for name, why in out["skipped"].items():
        log.warning("partition %s not created: %s", name, why)
    return out


def status(engine: Engine) -> list[dict[str, Any]]:
    """Per partitioned table: its partitions (name, bounds, rows estimated) and its rows in DEFAULT (exact),
    told apart: `in_default_history`, older than the table's first month (a city's past loaded before its
    partitions, or arrears: by choice, `ensure --months-back N` moves them), and `in_default_late`, of a
    month from the first on (the job did not run ahead: what an operator is alerted to)."""
    if engine.dialect.name != "postgresql":
        return []
    rows = []
    with engine.connect() as conn:
        for spec in TABLES:
            if not is_partitioned(conn, spec.table):
                continue
            parts = conn.execute(text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound, c.reltuples::bigint AS est, "
                "pg_total_relation_size(c.oid) AS bytes FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = CAST(:t AS regclass) ORDER BY c.relname"), {"t": spec.table}).all()
            months = sorted(m for p in parts if (m := _month_of_partition(spec, p.relname)) is not None)
            first = months[0] if months else None
            # one scan of DEFAULT for both counts (it may hold a city's history: 431,747 rows on the million)
            older = f'count(*) FILTER (WHERE "{spec.key}" < {spec.bound(first)})' if first is not None else "0"
            counts = f'SELECT count(*), {older} FROM "{spec.default}"'  # noqa: S608 (fixed table list, a date)
            in_default, history = conn.execute(text(counts)).one()
            rows.append({"table": spec.table, "key": spec.key, "in_default": in_default,
                         "first_month": f"{first:%Y-%m}" if first else None,
                         "in_default_history": history, "in_default_late": in_default - history,
                         "partitions": [{"name": p.relname, "bound": p.bound, "rows_estimated": max(p.est, 0),
                                         "bytes": p.bytes} for p in parts]})
    return rows


def _month_of_partition(spec: Partitioned, name: str) -> date | None:
    """The month of one of the table's monthly partitions, from its name (`spec.partition`); None for
    DEFAULT or any other."""
    prefix = f"{spec.table}_p"
    if not name.startswith(prefix):
        return None
    try:
        year, month = name[len(prefix):].split("_")
        return date(int(year), int(month), 1)
    except ValueError:
        return None


def start_in_background(app: App) -> threading.Thread | None:
    """At server start: ensure the coming months' partitions without delaying the first answer (a write
    before it is done lands in DEFAULT, never fails)."""
    if app.db.engine.dialect.name != "postgresql":
        return None

    def run() -> None:
        try:
            out = ensure(app.db.engine, app.clock.today(), move=False, current=False)  # the rest is cron's
            if out["created"]:
                log.info("partitions created: %s", ", ".join(out["created"]))
        except Exception:  # the server runs on without: DEFAULT takes the rows, and cron retries
            log.exception("partitions: ensure at start failed")

    thread = threading.Thread(target=run, name="sscard-partitions", daemon=True)
    thread.start()
    return thread
