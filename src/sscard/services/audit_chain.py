"""The tamper-evident audit chain: a sealer links audit records after they are written; verify re-checks.

Why a sealer and not a hash computed at insert: audit records are written by many concurrent
transactions (SERIALIZABLE on PostgreSQL) and in bulk by the group-commit writer (services/batching.py).
A chain head that every transaction reads and updates would make every operation conflict with every
other (and serialize the whole server on one row). So records are inserted as before, with no hash, and
one sealer at a time (a PostgreSQL advisory lock; on SQLite the single writer, BEGIN IMMEDIATE) takes the
unsealed records in id order and gives each its place: `seal_seq` (1, 2, 3... with no gaps), `prev_hash`
(the hash of the record sealed before it) and `hash = sha256(prev_hash || canonical bytes of the record)`
(core/audit_chain.py). A record that commits late with a lower id simply gets a later seal_seq.

The sealer writes only these three columns and the two it derives (which bank the record belongs to:
BANK_COLUMNS), once per record (a unique index on seal_seq); nothing else ever updates an audit record.
The server runs it in short rounds, ten a second while records come, once a second when idle (started
with the ASGI app, stopped with the App): on PostgreSQL in a process of its own (`SealerProcess`;
Settings.audit_sealer), elsewhere in a background thread (`Sealer`). It also runs from `sscard audit seal`
/ `sscard audit verify --seal`.

What it proves: once sealed, a record edited, deleted or re-ordered in the database breaks the chain at
that record (verify names it). What it does not: a record altered before it is sealed (the window is about
a tenth of a second under load, up to a second after a pause), or a rewrite of the whole chain by someone
who recomputes every hash; `verify` prints the head (seal_seq and hash) so the operator can note it
elsewhere and notice a rewritten past.
"""

from __future__ import annotations

import functools
import logging
import os
import select as io_select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CursorResult,
    Integer,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from ..core.audit_chain import CHAIN_COLUMNS, GENESIS, link_values
from ..db import execute_many
from ..models.foundation import AuditRecord
from .app import App

log = logging.getLogger("sscard.audit_chain")

AUDITS = cast(Table, AuditRecord.__table__)  # declared as a FromClause; a mapped class's table is a Table
LOCK_KEY = 0x5353_4341_5544_4954  # PostgreSQL advisory lock: "SSCAUDIT"
# Records sealed per transaction, and how often the server's sealer looks while records keep coming (BUSY)
# or once nothing was left (IDLE). Small rounds, often: the sealer reads, hashes and updates its records
# holding the interpreter lock the requests need, and a second's records in one go (~2,000 at 8 clients,
# tens of milliseconds) stopped every request in flight meanwhile. PostgreSQL, (c) through wrk, 8
# connections: p99 24-26 ms with rounds of up to 2,000 once a second, 11-12 ms with rounds of 250 ten
# times a second, 5-7 ms with no sealer at all. It also narrows the window in which a record is unsealed.
CHUNK = 250
BUSY_EVERY = 0.1
IDLE_EVERY = 1.0
_SEQ = CHAIN_COLUMNS.index("seal_seq")
_COLUMNS = [AUDITS.c[name] for name in CHAIN_COLUMNS]
_UNSEALED = (select(*_COLUMNS).where(AUDITS.c.seal_seq.is_(None)).order_by(AUDITS.c.id)
             .limit(bindparam("n", type_=Integer)))
_SEALED_AFTER = (select(*_COLUMNS, AUDITS.c.prev_hash, AUDITS.c.hash)
                 .where(AUDITS.c.seal_seq > bindparam("after", type_=BigInteger)).order_by(AUDITS.c.seal_seq)
                 .limit(bindparam("n", type_=Integer)))
# Which bank a record belongs to, as a bank supervisor reads the log (services/audit.py, `bank_records`,
# whose docstring is the rule): written by the sealer in the statement that seals the record, from the
# record's own columns as they are then (a terminal moved to another bank later leaves its past records
# with the bank that ran it). maker: the bank of the outlet or terminal where it was made, of the hotline
# ("bank:<code>"), of the staff member who made it, or the bank the record is about; object: the bank of
# the account or card it is about. Plain SQL that both databases run, inside an UPDATE of audit_records.
BANK_COLUMNS = {
    "maker_bank_id": (
        "COALESCE((SELECT o.bank_id FROM outlets o WHERE o.code = audit_records.place),"
        " (SELECT t.bank_id FROM terminals t WHERE t.code = audit_records.place),"
        " (SELECT b.id FROM banks b WHERE audit_records.place = 'bank:' || b.code),"
        " (SELECT u.bank_id FROM staff_users u WHERE audit_records.actor_kind = 'staff'"
        " AND CAST(u.id AS VARCHAR(32)) = audit_records.actor_id),"
        " (SELECT b.id FROM banks b WHERE audit_records.object_type = 'bank' AND b.code = audit_records.object_id))"),
    "object_bank_id": (
        "CASE audit_records.object_type"
        " WHEN 'bank_account' THEN (SELECT a.bank_id FROM bank_accounts a WHERE a.pan = audit_records.object_id)"
        " WHEN 'card' THEN (SELECT c.bank_id FROM cards c WHERE c.card_number = audit_records.object_id) END"),
}
# the same as one SET list (the PostgreSQL sealer's statement, migration 0019's back-fill)
SET_BANKS = ", ".join(f"{column} = {expression}" for column, expression in BANK_COLUMNS.items())
_SET_SEAL = (
    update(AUDITS)
    .where(AUDITS.c.id == bindparam("b_id"), AUDITS.c.seal_seq.is_(None))
    .values(seal_seq=bindparam("b_seq"), prev_hash=bindparam("b_prev"), hash=bindparam("b_hash"),
            **{column: literal_column(f"({expression})") for column, expression in BANK_COLUMNS.items()})
)

# Each record joined by its whole key (id, at): on PostgreSQL `at` is the monthly partitions' key, so each
# record is looked for in its own partition only (run-time pruning); joined by id alone, every month's
# partition was probed for every record (a city of a million: 159 against 54 ms for 2,000 records)
_SET_SEAL_PG = text(
    f"UPDATE audit_records SET seal_seq = v.seq, prev_hash = v.prev, hash = v.hash, {SET_BANKS} "  # noqa: S608
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[]), CAST(:seqs AS bigint[]), "
    "CAST(:prevs AS text[]), CAST(:hashes AS text[])) AS v(id, at, seq, prev, hash) "
    "WHERE audit_records.id = v.id AND audit_records.at = v.at AND audit_records.seal_seq IS NULL"
    " AND audit_records.at BETWEEN CAST(:first_at AS timestamptz) AND CAST(:last_at AS timestamptz)"
)
# ... and between the chunk's first and last `at`, bounds the planner sees (each round's statement is planned
# for its values, psycopg preparing it only after five runs of the same text): PostgreSQL plans and locks only
# the partitions the chunk's records are in (the month's, for a server's rounds) instead of every monthly
# partition with all its indexes: 3.3 ms of planning a round on the million's 42 partitions, 0.3 ms bounded.
# The chain's head, found the same way whatever the planner believes of the table: max() reads the end of
# each partition's seal_seq index; ORDER BY seal_seq DESC LIMIT 1 was planned from statistics, which after
# a bulk load still said "nothing sealed" (the demo's million: a sort of every sealed record, 232 ms a
# round against ~1 ms)
_HEAD = select(AUDITS.c.seal_seq, AUDITS.c.hash).where(
    AUDITS.c.seal_seq == select(func.max(AUDITS.c.seal_seq)).scalar_subquery())
# Is anything unsealed? In id order, which only the partial index of unsealed records gives: with no order
# the planner could choose to read the table (117 ms a round on the same million, against ~1-5 ms)
_ANY_UNSEALED = select(AUDITS.c.id).where(AUDITS.c.seal_seq.is_(None)).order_by(AUDITS.c.id).limit(1)


@contextmanager
def _sealing(app: App) -> Iterator[Session]:
    """One sealer at a time. PostgreSQL: READ COMMITTED (no predicate locks, so the operations writing
    audit records never conflict with it) under a transaction-scoped advisory lock; each statement after
    the lock sees what earlier sealers committed. SQLite: the write lock taken at BEGIN IMMEDIATE."""
    db = app.db
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="READ COMMITTED") as conn:
            with Session(bind=conn) as s, s.begin():
                s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
                yield s
        return
    with db.session() as s:
        yield s


# A server's sealer looks at the recent partitions only, and at every partition once in FULL_EVERY seconds.
# Its two reads of unsealed records (is there any? the next chunk) through the partial index of each
# monthly partition planned and locked all of them every round, ten times a second: on the million's 42
# partitions ~4 ms of PostgreSQL each, and one client's lookups had p99 4.1-4.5 ms with the reads bounded
# against 5.0-5.7 without (docs/SCALE.md, session 17). A record is written with the clock's time of its
# transaction, so it is recent when it commits; one written with an older time (a back-filled history, a
# transaction older than RECENT) is sealed by the next full round. Only the server's rounds are bounded:
# `seal(app)` (the CLI, tests, verify --seal) always looks everywhere.
FULL_EVERY = 10.0
RECENT = timedelta(hours=1)


class _Rounds:
    """Which of a server sealer's rounds look at every partition (the first, then one in FULL_EVERY s)."""

    def __init__(self) -> None:
        self._full_at: float | None = None

    def since(self, app: App) -> datetime | None:
        """The lower bound of this round's reads (None: every partition). The start of the hour before
        the clock's: the statements' text, which holds it, changes once an hour, so psycopg prepares
        them, and a prepared plan with the bound in its text still reads only the partitions it names."""
        if app.db.dialect != "postgresql":
            return None  # (SQLite's audit log has no partitions)
        now = time.monotonic()
        if self._full_at is None or now - self._full_at >= FULL_EVERY:
            self._full_at = now
            return None
        return app.clock.now().replace(minute=0, second=0, microsecond=0) - RECENT


@functools.lru_cache(maxsize=2)  # the bound changes once an hour: this hour's statements, built once
def _unsealed_reads(since: datetime | None) -> tuple[Any, Any]:
    """(is there any?, the next chunk) of unsealed records, of the partitions from `since` on."""
    if since is None:
        return _ANY_UNSEALED, _UNSEALED
    assert since.tzinfo is not None  # an aware datetime of the clock: its ISO text is a plain literal
    recent = AUDITS.c.at >= literal_column(f"TIMESTAMP WITH TIME ZONE '{since.isoformat()}'")
    return _ANY_UNSEALED.where(recent), _UNSEALED.where(recent)


def _seal_chunk(s: Session, limit: int, since: datetime | None = None) -> int:
    head = s.execute(_HEAD).first()
    seq, prev = (head.seal_seq, head.hash) if head else (0, GENESIS)
    updates, ats = [], []
    for row in s.execute(_unsealed_reads(since)[1], {"n": limit}):
        seq += 1
        values = list(row)
        values[_SEQ] = seq
        digest = link_values(prev, values)
        updates.append({"b_id": row.id, "b_seq": seq, "b_prev": prev, "b_hash": digest})
        ats.append(row.at)
        prev = digest
    if updates and s.get_bind().dialect.name == "postgresql":
        # one statement for the whole chunk (psycopg's executemany costs a round of Python per row)
        done = cast(CursorResult[Any], s.execute(_SET_SEAL_PG, {
            "ids": [u["b_id"] for u in updates], "ats": ats, "first_at": min(ats), "last_at": max(ats),
            "seqs": [u["b_seq"] for u in updates], "prevs": [u["b_prev"] for u in updates],
            "hashes": [u["b_hash"] for u in updates]})).rowcount
        if done != len(updates):  # another sealer got there (never, under the lock): seal nothing
            raise RuntimeError(f"audit chain: sealed {done} of {len(updates)} records; rolled back")
    elif updates:  # on the driver's cursor: SQLAlchemy's per-row parameter work was a fifth of sealing
        execute_many(s.connection(), _SET_SEAL, updates)
    return len(updates)


def has_unsealed(app: App, since: datetime | None = None) -> bool:
    with app.db.read_committed() as s:
        return s.execute(_unsealed_reads(since)[0]).first() is not None


def seal(app: App, *, chunk: int = CHUNK, since: datetime | None = None) -> int:
    """Seal every record not yet sealed (in transactions of `chunk` records); how many were sealed.
    `since` (a server's rounds, `_Rounds`): only those of the partitions from then on."""
    total = 0
    while has_unsealed(app, since):
        with _sealing(app) as s:
            done = _seal_chunk(s, chunk, since)
        total += done
        if done < chunk:
            break
    return total


def verify(app: App, *, seal_first: bool = False) -> dict[str, Any]:
    """Re-compute the chain in seal_seq order from one snapshot; name the first broken record.

    A record is broken when its seal_seq is not the one after the previous record's (a record before it
    was deleted or re-numbered), its prev_hash is not the previous record's hash, or its hash is not
    sha256(prev_hash || its columns) (the record was edited)."""
    if seal_first:
        seal(app)

    def work(s: Session) -> dict[str, Any]:
        checked, prev, broken = 0, GENESIS, None
        head: dict[str, Any] = {"seal_seq": 0, "hash": GENESIS}
        conn = s.connection()
        while broken is None:
            rows = conn.execute(_SEALED_AFTER, {"after": head["seal_seq"], "n": 5000}).all()
            for row in rows:
                checked += 1
                if row.seal_seq != head["seal_seq"] + 1:
                    broken = {"id": row.id, "seal_seq": row.seal_seq, "reason": "gap",
                              "expected_seal_seq": head["seal_seq"] + 1}
                elif row.prev_hash != prev:
                    broken = {"id": row.id, "seal_seq": row.seal_seq, "reason": "prev_hash"}
                elif row.hash != link_values(prev, row[:len(CHAIN_COLUMNS)]):
                    broken = {"id": row.id, "seal_seq": row.seal_seq, "reason": "hash"}
                if broken:
                    break
                prev = row.hash
                head = {"seal_seq": row.seal_seq, "hash": row.hash}
            if len(rows) < 5000:
                break
        unsealed = s.scalar(select(func.count()).select_from(AUDITS).where(AUDITS.c.seal_seq.is_(None)))
        return {"ok": broken is None, "checked": checked, "unsealed": unsealed, "broken": broken, "head": head}

    return app.db.run(work, readonly=True)


def _idle(every: float) -> float:
    """The wait once a round found nothing: a second, or `every` when that is longer."""
    return max(every, IDLE_EVERY)


def _round(app: App, every: float, idle: float, rounds: _Rounds) -> tuple[int, float]:
    """One round of the server's sealer (thread or process): how many records it sealed, and how long to
    wait before the next (`every` while records come, `idle` once none did or the round failed)."""
    try:
        done = seal(app, since=rounds.since(app))
    except Exception:  # noqa: BLE001  the next round tries again; verify shows what is unsealed
        log.warning("sealing the audit chain failed", exc_info=True)
        return 0, idle
    return done, every if done else idle


class Sealer:
    """The server's background sealer: seals what is unsealed until closed, looking again after `every`
    seconds while its last round found records, after `idle` once one found none (an idle server asks
    once a second)."""

    def __init__(self, app: App, *, every: float = BUSY_EVERY, idle: float | None = None):
        self.app = app
        self.every = every
        self.idle = _idle(every) if idle is None else idle
        self.sealed = 0
        self._rounds = _Rounds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sscard-audit-sealer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            done, wait = _round(self.app, self.every, self.idle, self._rounds)
            self.sealed += done

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class SealerProcess:
    """The server's sealer in a process of its own (`python -m sscard.services.audit_chain`), over the
    same database: the same rounds as `Sealer`, whose reading, hashing and updating then never hold the
    server's interpreter lock (PostgreSQL, 8 clients: a round of 250 records stalled every request in
    flight for a few milliseconds; docs/PERFORMANCE.md). The child reads its standard input, a pipe from
    the server: closed by `close()`, or by the kernel when the server dies (SIGKILL included), it ends the
    child's loop, so no sealer outlives its server. A child that ends otherwise (killed, out of memory) is
    started again by a watching thread, after 1 s, then up to a minute while it keeps ending, each time
    with a warning in the log. Several servers' sealers take turns under the advisory lock."""

    def __init__(self, app: App):
        self._env = {**os.environ, "SSCARD_DATABASE_URL": app.settings.database_url,
                     "SSCARD_SECRET_KEY": app.settings.secret_key.hex(), "SSCARD_VAR_DIR": str(app.settings.var_dir)}
        self.restarts = 0
        self._closing = threading.Event()
        self.process = self._start()
        self._watch = threading.Thread(target=self._watch_child, name="sscard-audit-sealer-watch", daemon=True)
        self._watch.start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, env=self._env,
                                start_new_session=True)  # its own group: a terminal's Ctrl-C is the server's

    def _watch_child(self) -> None:
        wait = 1.0
        while not self._closing.wait(wait):
            code = self.process.poll()
            if code is None:
                wait = 1.0
                continue
            log.warning("the audit chain's sealer process ended (exit status %s): starting it again", code)
            self.restarts += 1
            self.process = self._start()
            wait = min(wait * 2, 60.0)

    def close(self) -> None:
        self._closing.set()
        self._watch.join(timeout=30)
        if self.process.stdin:
            self.process.stdin.close()  # the child finishes its round and exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def follow(app: App, stop_when_closed: int, *, every: float = BUSY_EVERY) -> int:
    """The sealer process's loop: `Sealer`'s rounds until the file descriptor `stop_when_closed` (the
    server's pipe) reaches its end; how many records were sealed."""
    sealed, wait, rounds = 0, every, _Rounds()
    while True:
        readable, _, _ = io_select.select([stop_when_closed], [], [], wait)
        if readable and not os.read(stop_when_closed, 4096):
            return sealed
        done, wait = _round(app, every, _idle(every), rounds)
        sealed += done


_lock = threading.Lock()


def start_sealer(app: App) -> Sealer | SealerProcess:
    """The App's one sealer, in a thread or a process as its settings say (App.close() stops it), with the
    server's rounds (BUSY_EVERY, IDLE_EVERY)."""
    with _lock:
        found = app.extras.get("audit_sealer")
        if found is None:
            found = SealerProcess(app) if app.settings.audit_sealer == "process" else Sealer(app)
            app.extras["audit_sealer"] = found
        return found


if __name__ == "__main__":  # SealerProcess's child
    from ..logs import install_logging
    from .app import build_app

    child = build_app(pool_size=1, check_durability=False)  # the server's own start-up said it once
    install_logging(child.settings.log_format)
    try:
        follow(child, sys.stdin.fileno())
    except KeyboardInterrupt:
        pass
    finally:
        child.close()
