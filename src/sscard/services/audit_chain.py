"""The tamper-evident audit chain: a sealer links audit records after they are written; verify re-checks.

Why a sealer and not a hash computed at insert: audit records are written by many concurrent
transactions (SERIALIZABLE on PostgreSQL) and in bulk by the group-commit writer (services/batching.py).
A chain head that every transaction reads and updates would make every operation conflict with every
other (and serialize the whole server on one row). So records are inserted as before, with no hash, and
one sealer at a time (a PostgreSQL advisory lock; on SQLite the single writer, BEGIN IMMEDIATE) takes the
unsealed records in id order and gives each its place: `seal_seq` (1, 2, 3... with no gaps), `prev_hash`
(the hash of the record sealed before it) and `hash = sha256(prev_hash || canonical bytes of the record)`
(core/audit_chain.py). A record that commits late with a lower id simply gets a later seal_seq.

The audit log is only ever inserted into. The seal is a row of its own (`audit_seals`: seal_seq, the
record's id and time, prev_hash, hash), and the records still to seal are a queue (`audit_unsealed`) that
the database fills itself: the log's insert trigger (`insert_trigger`, created by migration 0021) puts every
new record's id there, whichever code inserts it (an operation, the group-commit writer, the demo's COPY),
and derives the two columns that say which bank the record belongs to (BANK_COLUMNS). The sealer reads
the queue, writes the seals and empties the queue of them in one transaction. Sealing used to rewrite each
record in place (three chain columns and the bank columns, one of them indexed): a new version of the
row and of every one of its eleven index entries, in the very pages the requests were inserting into,
ten rounds a second: one client's lookups at a million had p99 3.3-4.0 ms (citizen ID) with that sealer,
2.2-2.5 ms with this one (docs/SCALE.md, session 18).

The server runs the sealer in short rounds, ten a second while records come, once a second when idle
(started with the ASGI app, stopped with the App): on PostgreSQL in a process of its own
(`SealerProcess`; Settings.audit_sealer), elsewhere in a background thread (`Sealer`). It also runs from
`sscard audit seal` / `sscard audit verify --seal`.

The database refuses an UPDATE or a DELETE of an audit record (migration 0022), so no connection of the
application's can change the log; the chain is for whoever can switch that off.

What it proves: once sealed, a record edited, deleted or re-ordered in the database breaks the chain at
that record (verify names it), and a record that is neither sealed nor queued (inserted around the
trigger) is counted. What it does not: a record altered before it is sealed (the window is about a tenth
of a second under load, up to a second after a pause), or a rewrite of the whole chain by someone who
recomputes every hash; `verify` prints the head (seal_seq and hash) so the operator can note it elsewhere
and notice a rewritten past.
"""

from __future__ import annotations

import logging
import os
import select as io_select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, Integer, Table, and_, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Session

from ..core.audit_chain import CHAIN_COLUMNS, GENESIS, link_values
from ..db import execute_many
from ..models.foundation import AuditRecord, AuditSeal, AuditUnsealed
from .app import App

log = logging.getLogger("sscard.audit_chain")

# (declared as FromClauses; a mapped class's table is a Table)
AUDITS = cast(Table, AuditRecord.__table__)
SEALS = cast(Table, AuditSeal.__table__)
QUEUE = cast(Table, AuditUnsealed.__table__)
LOCK_KEY = 0x5353_4341_5544_4954  # PostgreSQL advisory lock: "SSCAUDIT"
# Records sealed per transaction, and how often the server's sealer looks while records keep coming (BUSY)
# or once nothing was left (IDLE). Small rounds, often: the sealer reads, hashes and writes its seals
# holding the interpreter lock the requests need, and a second's records in one go (~2,000 at 8 clients,
# tens of milliseconds) stopped every request in flight meanwhile. PostgreSQL, (c) through wrk, 8
# connections: p99 24-26 ms with rounds of up to 2,000 once a second, 11-12 ms with rounds of 250 ten
# times a second, 5-7 ms with no sealer at all. It also narrows the window in which a record is unsealed.
CHUNK = 250
BUSY_EVERY = 0.1
IDLE_EVERY = 1.0
_SEQ = CHAIN_COLUMNS.index("seal_seq")

# Which bank a record belongs to, as a bank supervisor reads the log (services/audit.py, `bank_records`,
# whose docstring is the rule): derived by the log's insert trigger from the record's own columns as they
# are then (a terminal moved to another bank later leaves its past records with the bank that ran it).
# maker: the bank of the outlet or terminal where it was made, of the hotline ("bank:<code>"), of the
# staff member who made it, or the bank the record is about; object: the bank of the account or card it is
# about, unless the operation named it itself (Op.audit's `object_bank_id`: a replacement's new card, whose
# row a group-committed batch writes after the record, migration 0026). Plain SQL over the record being
# inserted (NEW), which both databases run in a trigger.
BANK_COLUMNS = {
    "maker_bank_id": (
        "COALESCE((SELECT o.bank_id FROM outlets o WHERE o.code = NEW.place),"
        " (SELECT t.bank_id FROM terminals t WHERE t.code = NEW.place),"
        " (SELECT b.id FROM banks b WHERE NEW.place = 'bank:' || b.code),"
        " (SELECT u.bank_id FROM staff_users u WHERE NEW.actor_kind = 'staff'"
        " AND CAST(u.id AS VARCHAR(32)) = NEW.actor_id),"
        " (SELECT b.id FROM banks b WHERE NEW.object_type = 'bank' AND b.code = NEW.object_id))"),
    "object_bank_id": (
        "COALESCE(NEW.object_bank_id, CASE NEW.object_type"
        " WHEN 'bank_account' THEN (SELECT a.bank_id FROM bank_accounts a WHERE a.pan = NEW.object_id)"
        " WHEN 'card' THEN (SELECT c.bank_id FROM cards c WHERE c.card_number = NEW.object_id) END)"),
}
TRIGGER = "audit_records_inserted"


def set_banks(record: str, columns: dict[str, str] | None = None) -> str:
    """BANK_COLUMNS as one SET list over the rows of `record` (a table name or alias): migration 0021's
    back-fill of the records not yet sealed, which were left to the sealer before."""
    return ", ".join(f"{column} = {expression.replace('NEW.', f'{record}.')}"
                     for column, expression in (BANK_COLUMNS if columns is None else columns).items())


def insert_trigger(dialect: str, columns: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The audit log's insert trigger: (statements that create it, statements that drop it). PostgreSQL:
    a row trigger BEFORE INSERT on the partitioned table (every partition, those made later included),
    which sets the bank columns on the row itself. SQLite: AFTER INSERT (SQLite's triggers cannot change
    the row being inserted), which updates them in the same statement. `columns`: BANK_COLUMNS unless a
    migration gives the ones of its time."""
    columns = BANK_COLUMNS if columns is None else columns
    queue = "INSERT INTO audit_unsealed (record_id, record_at) VALUES (NEW.id, NEW.at);"
    if dialect == "postgresql":
        sets = " ".join(f"NEW.{column} := {expression};" for column, expression in columns.items())
        return ([f"CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                 f"BEGIN {sets} {queue} RETURN NEW; END $$",
                 f"CREATE TRIGGER {TRIGGER} BEFORE INSERT ON audit_records "
                 f"FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"],
                [f"DROP TRIGGER IF EXISTS {TRIGGER} ON audit_records", f"DROP FUNCTION IF EXISTS {TRIGGER}()"])
    update = f"UPDATE audit_records SET {set_banks('NEW', columns)} WHERE id = NEW.id;"  # noqa: S608 (fixed text)
    return ([f"CREATE TRIGGER {TRIGGER} AFTER INSERT ON audit_records BEGIN {queue} {update} END"],
            [f"DROP TRIGGER IF EXISTS {TRIGGER}"])


def immutable_trigger(dialect: str, table: str, message: str,
                      columns: tuple[str, ...] | None = None) -> tuple[list[str], list[str]]:
    """A table whose rows the database refuses to change or delete (the audit log, migration 0022; its seals,
    0024): (statements that create the refusal, statements that drop it). PostgreSQL: a row trigger BEFORE
    UPDATE OR DELETE, `{table}_no_change`, on the table (a partitioned one's partitions included, those
    made later too). SQLite: BEFORE UPDATE (OF `columns`, when given) and BEFORE DELETE."""
    if dialect == "postgresql":
        return ([f"CREATE FUNCTION {table}_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 f"RAISE EXCEPTION '{message}'; END $$",
                 f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                 f"FOR EACH ROW EXECUTE FUNCTION {table}_immutable()"],
                [f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}", f"DROP FUNCTION IF EXISTS {table}_immutable()"])
    of = f" OF {', '.join(columns)}" if columns else ""
    return ([f"CREATE TRIGGER {table}_no_change BEFORE UPDATE{of} ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END",
             f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{message}'); END"],
            [f"DROP TRIGGER IF EXISTS {table}_no_change", f"DROP TRIGGER IF EXISTS {table}_no_delete"])


_NEXT = select(QUEUE.c.record_id, QUEUE.c.record_at).order_by(QUEUE.c.record_id).limit(
    bindparam("n", type_=Integer))
_ANY_UNSEALED = select(QUEUE.c.record_id).limit(1)
_HEAD = select(SEALS.c.seal_seq, SEALS.c.hash).order_by(SEALS.c.seal_seq.desc()).limit(1)
# A chunk's records, in id order. On PostgreSQL each is looked up by its whole key (id, at), the
# partitions' key included, and only between the chunk's first and last `at`: the planner then plans and
# locks only the partitions the records are in (on the million's 42 partitions 3.3 ms of planning a round
# for every partition against 0.3 ms for one, session 17). That takes a plan made for the round's values:
# once psycopg had prepared the statement (after five runs), PostgreSQL's generic plan, made for no values,
# could read whole partitions (found by `id IN (...)`: a year of history at 20,000 people, 390,670 records,
# took 870 s to seal against 41 s), so the sealer's transaction asks for custom plans before it (`_seal_chunk`).
# SQLite, which has no partitions and compares times as text, finds them by id.
_RECORD_COLUMNS = [AUDITS.c[name] for name in CHAIN_COLUMNS if name != "seal_seq"]
_RECORDS = select(*_RECORD_COLUMNS).where(AUDITS.c.id.in_(bindparam("ids", expanding=True))).order_by(AUDITS.c.id)
_RECORDS_PG = text(
    f"SELECT {', '.join(f'r.{c.name}' for c in _RECORD_COLUMNS)} "  # noqa: S608 (fixed names)
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[])) AS v(id, at) "
    "JOIN audit_records r ON r.id = v.id AND r.at = v.at "
    "WHERE r.at BETWEEN CAST(:first_at AS timestamptz) AND CAST(:last_at AS timestamptz) ORDER BY r.id"
).columns(*_RECORD_COLUMNS)
_INSERT_SEALS = insert(SEALS)
_DEQUEUE = delete(QUEUE).where(QUEUE.c.record_id.in_(bindparam("ids", expanding=True)))


def _sealed_after(dialect: str) -> Any:
    """verify's read: the seals in order, each with its record (none when the record is gone): joined by
    the record's whole key (id, at) on PostgreSQL, its partition's key included; by id on SQLite, which
    compares times as text (a time written in another text form would not match)."""
    on = AUDITS.c.id == SEALS.c.record_id
    if dialect == "postgresql":
        on = and_(on, AUDITS.c.at == SEALS.c.record_at)
    return (select(*(SEALS.c.seal_seq if name == "seal_seq" else AUDITS.c[name] for name in CHAIN_COLUMNS),
                   SEALS.c.prev_hash, SEALS.c.hash, SEALS.c.record_id)
            .select_from(SEALS.outerjoin(AUDITS, on))
            .where(SEALS.c.seal_seq > bindparam("after", type_=SEALS.c.seal_seq.type))
            .order_by(SEALS.c.seal_seq).limit(bindparam("n", type_=Integer)))


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


def _seal_chunk(s: Session, limit: int) -> int:
    """Seal the next `limit` queued records (in id order) after the chain's head; how many."""
    conn = s.connection()
    queued = conn.execute(_NEXT, {"n": limit}).all()
    if not queued:
        return 0
    # the head first, under the plan PostgreSQL keeps for it: the seals are partitioned by month (0023), so
    # a plan made for each run would plan every month's partition, ten times a second
    head = conn.execute(_HEAD).first()
    seq, prev = (head.seal_seq, head.hash) if head else (0, GENESIS)
    ids = [q.record_id for q in queued]
    ats = [q.record_at for q in queued]
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))  # see _RECORDS_PG
        records = conn.execute(_RECORDS_PG, {"ids": ids, "ats": ats, "first_at": min(ats), "last_at": max(ats)}).all()
    else:
        records = conn.execute(_RECORDS, {"ids": ids}).all()
    if [r.id for r in records] != ids:  # queued in the same statement as its record: only a deletion does it
        missing = sorted(set(ids) - {r.id for r in records})
        raise RuntimeError(f"audit chain: records {missing[:10]} are queued for sealing but not in the log")
    seals = []
    for row in records:
        seq += 1
        values = list(row)
        values.insert(_SEQ, seq)
        digest = link_values(prev, values)
        seals.append({"seal_seq": seq, "record_id": row.id, "record_at": row.at, "prev_hash": prev, "hash": digest})
        prev = digest
    execute_many(conn, _INSERT_SEALS, seals)  # one statement (a multi-row VALUES)
    done = cast(CursorResult[Any], conn.execute(_DEQUEUE, {"ids": ids})).rowcount
    if done != len(ids):  # another sealer got there (never, under the lock): seal nothing
        raise RuntimeError(f"audit chain: sealed {done} of {len(ids)} records; rolled back")
    return len(ids)


def has_unsealed(app: App) -> bool:
    with app.db.read_committed() as s:
        return s.execute(_ANY_UNSEALED).first() is not None


def seal(app: App, *, chunk: int = CHUNK, stop: Callable[[], bool] | None = None) -> int:
    """Seal every record not yet sealed (in transactions of `chunk` records), or until `stop()` says so
    between two chunks; how many were sealed. A server's sealer passes its stop signal: a backlog (a bulk
    load's millions of records, session 30: 10.9 million after a year of demo history) would otherwise
    keep a sealer whose server is gone sealing for an hour."""
    total = 0
    while has_unsealed(app) and not (stop and stop()):
        with _sealing(app) as s:
            done = _seal_chunk(s, chunk)
        total += done
        if done < chunk:
            break
    return total


def verify(app: App, *, seal_first: bool = False) -> dict[str, Any]:
    """Re-compute the chain in seal_seq order from one snapshot; name the first broken record.

    A seal is broken when its seal_seq is not the one after the previous seal's (a seal before it was
    deleted or re-numbered), its record is gone (`missing`), its prev_hash is not the previous seal's
    hash, or its hash is not sha256(prev_hash || its record's columns) (the record was edited). Then
    every record must be sealed or queued: one that is neither (inserted around the log's trigger) is
    counted as `unaccounted`."""
    if seal_first:
        seal(app)

    def work(s: Session) -> dict[str, Any]:
        checked, prev, broken = 0, GENESIS, None
        head: dict[str, Any] = {"seal_seq": 0, "hash": GENESIS}
        conn = s.connection()
        width, sealed_after = len(CHAIN_COLUMNS), _sealed_after(conn.dialect.name)
        while broken is None:
            rows = conn.execute(sealed_after, {"after": head["seal_seq"], "n": 5000}).all()
            for row in rows:
                checked += 1
                if row.seal_seq != head["seal_seq"] + 1:
                    broken = {"id": row.record_id, "seal_seq": row.seal_seq, "reason": "gap",
                              "expected_seal_seq": head["seal_seq"] + 1}
                elif row.id is None:
                    broken = {"id": row.record_id, "seal_seq": row.seal_seq, "reason": "missing"}
                elif row.prev_hash != prev:
                    broken = {"id": row.id, "seal_seq": row.seal_seq, "reason": "prev_hash"}
                elif row.hash != link_values(prev, row[:width]):
                    broken = {"id": row.id, "seal_seq": row.seal_seq, "reason": "hash"}
                if broken:
                    break
                prev = row.hash
                head = {"seal_seq": row.seal_seq, "hash": row.hash}
            if len(rows) < 5000:
                break
        unsealed = s.scalar(select(func.count()).select_from(QUEUE)) or 0
        unaccounted = 0
        if broken is None:
            records = s.scalar(select(func.count()).select_from(AUDITS)) or 0
            unaccounted = records - checked - unsealed
            if unaccounted:
                broken = {"id": None, "seal_seq": None, "reason": "unaccounted", "count": unaccounted}
        return {"ok": broken is None, "checked": checked, "unsealed": unsealed, "broken": broken, "head": head}

    return app.db.run(work, readonly=True)


def _idle(every: float) -> float:
    """The wait once a round found nothing: a second, or `every` when that is longer."""
    return max(every, IDLE_EVERY)


VACUUM_EVERY = 10.0


class _Sweeper:
    """PostgreSQL: every audit record passes through the queue table (inserted by the log's trigger, deleted
    by the sealer), and only VACUUM reclaims what the deletes leave: dead rows, and dead entries at the
    low end of the queue's index, where the sealer's read of the first queued ids starts. With autovacuum
    off or behind, that read would walk every entry the queue ever held (a day of a busy city: ~200,000
    index pages). So the server's sealer vacuums the queue itself, at most every VACUUM_EVERY seconds while
    it seals: a table of a few thousand rows, milliseconds, and no lock that stops an insert or the sealer."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.sweeps = 0

    def after(self, app: App, sealed: int) -> None:
        if not sealed or app.db.dialect != "postgresql" or time.monotonic() - self.last < VACUUM_EVERY:
            return
        self.last = time.monotonic()
        try:
            with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM audit_unsealed")
        except Exception:  # noqa: BLE001  (the round's seals are committed; the next sweep tries again)
            log.warning("vacuuming the audit chain's queue failed", exc_info=True)
            return
        self.sweeps += 1


def _round(app: App, every: float, idle: float, sweeper: _Sweeper,
           stop: Callable[[], bool] | None = None) -> tuple[int, float]:
    """One round of the server's sealer (thread or process): how many records it sealed, and how long to
    wait before the next (`every` while records come, `idle` once none did or the round failed). It ends
    early when `stop()` says the server is closing or gone."""
    try:
        done = seal(app, stop=stop)
        sweeper.after(app, done)
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
        self._sweeper = _Sweeper()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sscard-audit-sealer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self.every
        while not self._stop.wait(wait):
            done, wait = _round(self.app, self.every, self.idle, self._sweeper, self._stop.is_set)
            self.sealed += done

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class SealerProcess:
    """The server's sealer in a process of its own (`python -m sscard.services.audit_chain`), over the
    same database: the same rounds as `Sealer`, whose reading, hashing and writing then never hold the
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
            self.process.stdin.close()  # the child finishes the chunk it is sealing and exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def follow(app: App, stop_when_closed: int, *, every: float = BUSY_EVERY) -> int:
    """The sealer process's loop: `Sealer`'s rounds until the file descriptor `stop_when_closed` (the
    server's pipe) reaches its end; how many records were sealed."""
    sealed, wait, sweeper = 0, every, _Sweeper()

    def closed(timeout: float = 0.0) -> bool:
        readable, _, _ = io_select.select([stop_when_closed], [], [], timeout)
        return bool(readable) and not os.read(stop_when_closed, 4096)

    while not closed(wait):
        done, wait = _round(app, every, _idle(every), sweeper, closed)  # looked at between chunks too
        sealed += done
    return sealed


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
