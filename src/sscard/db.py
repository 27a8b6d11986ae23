"""Engines, transactions and the one retry helper for serialization failures and deadlocks.

PostgreSQL runs SERIALIZABLE (as CockroachDB and YugabyteDB do by default), so any transaction may be
asked to retry; SQLite takes its write lock at BEGIN (BEGIN IMMEDIATE), so writers queue instead of
deadlocking. Every service transaction goes through `Database.run`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import secrets
import threading
import time
import weakref
from collections import deque, namedtuple
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("sscard.db")
T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
# The server went away or cannot take writes (a failover): connection_exception (08...), admin/crash
# shutdown, cannot_connect_now, read_only_sql_transaction (a node that is now a standby)
RECONNECT_SQLSTATES = {"57P01", "57P02", "57P03", "25006"}
# lock_not_available (lock_timeout), query_canceled (statement_timeout), too_many_connections is 53300
OVERLOAD_SQLSTATES = {"55P03", "57014"}
RECONNECT_SECONDS = 30.0  # how long `Database.run(idempotent=True)` waits for a primary to come back
# Commit markers (`CommitMarker`): kept this long (pruned by the group-commit writer, `Database.prune_markers`);
# a lookup that finds none later than MARKER_TRUSTED_SECONDS after the commit was sent does not decide (the
# marker may have been pruned meanwhile): far above what a lookup takes (RECONNECT_SECONDS, CLAIM_LOCK_TIMEOUT)
MARKER_KEEP_SECONDS = 600
MARKER_TRUSTED_SECONDS = 300.0
CLAIM_LOCK_TIMEOUT = "15s"  # a lookup waits this long for the transaction it asks about to end


def default_url() -> str:
    return "sqlite:///var/sscard.db"


# SQLite's `PRAGMA synchronous` levels (what `PRAGMA synchronous` answers). FULL is the default: in WAL
# mode it syncs the log at every commit, so an answered commit survives a power cut (group commit pays
# one fsync per batch). EXTRA adds only a directory sync after a rollback journal is deleted, which WAL
# mode never does. NORMAL syncs only at checkpoints: a power cut can take back acknowledged commits.
SQLITE_SYNCHRONOUS = {"normal": 1, "full": 2, "extra": 3}
DURABLE_SQLITE_LEVEL = SQLITE_SYNCHRONOUS["full"]


PRIVATE_FILE = 0o600


def create_private_sqlite_file(database: str | None) -> None:
    """Make a SQLite database file that does not exist yet readable by its owner only, before SQLite makes it
    with the process's umask (0644: every user of the host could read every citizen ID, name, PIN digest and
    token digest; session 27, where backups had been 0600 since session 22). SQLite gives its -wal and -shm
    files the database file's mode. An existing file keeps the mode its operator gave it; an empty file is
    an empty database (a restore still takes it)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE))
    except (FileExistsError, FileNotFoundError):  # there already, or no such folder (SQLite then says so)
        pass


def sqlite_pragmas(dbapi_conn, synchronous: str = "full") -> None:
    """The settings of every SQLite connection sscard opens (the pool's, the group-commit writer's, the
    WAL checkpointer's all come through here; the benchmark's plain sqlite3 baseline too)."""
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite synchronous level {synchronous!r}: one of {', '.join(SQLITE_SYNCHRONOUS)}")
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


class WriteTurn:
    """SQLite: this process's writers take turns here before BEGIN IMMEDIATE, and not in SQLite's busy
    handler, which polls (sleeping 1, 2, 5 ... 100 ms): a writer that loses a few polls to newcomers
    waited hundreds of ms (the bench's (d) had p99 0.4-1 s at p50 2 ms; the audit sealer spent a third
    of its time there under the counter mix, and the group-commit writer waited in the same polls
    whenever the sealer held the lock). Here the next one is woken when the lock is let go.

    Held by a thread, reentrant for it; let go by whoever ends the transaction (the engine's listeners
    record the owner by connection), so a connection closed from another thread cannot keep it. Writers of other
    processes still meet in the busy handler. After 60 s (a writer waiting for itself through another
    connection of its thread's making) a writer goes on to the busy handler as before."""

    TIMEOUT = 60.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._queue: deque[tuple[int, threading.Event]] = deque()  # waiting, first come first served

    def acquire(self) -> int | None:
        """This thread's ident when it holds the turn (again), None after the timeout. First come, first
        served: the turn is handed to the longest waiter when let go, never taken by a newcomer (a
        condition variable let the thread that just let go take it again at once: (d)'s p50 fell from
        39 to 5 ms and its p99 rose from 82 ms to 1.0-1.5 s, waiters starved)."""
        me = threading.get_ident()
        with self._lock:
            if self._owner == me:
                self._depth += 1
                return me
            if self._owner is None and not self._queue:
                self._owner, self._depth = me, 1
                return me
            ticket = threading.Event()
            self._queue.append((me, ticket))
        if ticket.wait(self.TIMEOUT):
            return me  # handed over: release() made this thread the owner
        with self._lock:
            if self._owner == me:  # handed over as the wait ran out
                return me
            self._queue.remove((me, ticket))
        return None

    def release(self, owner: int | None) -> None:
        if owner is None:
            return
        with self._lock:
            if self._owner != owner:  # never happens: a release for a turn not held
                log.error("write turn: let go by %s, held by %s", owner, self._owner)
                return
            self._depth -= 1
            if self._depth:
                return
            if self._queue:
                self._owner, ticket = self._queue.popleft()
                self._depth = 1
                ticket.set()
            else:
                self._owner = None

    @contextmanager
    def held(self) -> Iterator[None]:
        owner = self.acquire()
        try:
            yield
        finally:
            self.release(owner)


def _sqlite_turns(engine: Engine, turn: WriteTurn) -> None:
    """Every write transaction of the engine holds `turn` from before its BEGIN IMMEDIATE to the end of
    its COMMIT or ROLLBACK: by construction, whichever path opened it (db.run, db.session, the batcher,
    engine.begin() of the demo's loaders), so no writer of this process meets another in the busy
    handler. Reads stay deferred (BEGIN), and in WAL mode they neither wait for a writer nor hold it up."""
    dialect = engine.dialect
    plain_commit, plain_rollback = dialect.do_commit, dialect.do_rollback
    holders: dict[int, int | None] = {}  # id(sqlite3 connection) -> the owner of the turn it holds

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn):
        if conn.get_execution_options().get("sscard_readonly"):
            conn.exec_driver_sql("BEGIN")
            return
        owner = turn.acquire()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the lock at BEGIN: no upgrade deadlocks
        except BaseException:
            turn.release(owner)
            raise
        holders[id(conn.connection.dbapi_connection)] = owner

    def let_go(dbapi_conn) -> None:
        # the pool's proxy, or (a connection reset by the pool) an ad-hoc one: both name the driver's
        owner = holders.pop(id(getattr(dbapi_conn, "dbapi_connection", dbapi_conn)), None)
        turn.release(owner)

    def do_commit(dbapi_conn):
        plain_commit(dbapi_conn)
        let_go(dbapi_conn)  # a COMMIT that failed leaves the transaction open: its rollback lets go

    def do_rollback(dbapi_conn):
        try:
            plain_rollback(dbapi_conn)
        finally:
            let_go(dbapi_conn)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback  # this engine's dialect only

    @event.listens_for(engine, "invalidate")
    def _invalidated(dbapi_conn, _record, _exc):
        if dbapi_conn is not None:  # thrown away mid-transaction: its lock is gone with it
            let_go(dbapi_conn)

    @event.listens_for(engine, "close")
    def _closed(dbapi_conn, _record):
        let_go(dbapi_conn)


def make_engine(url: str, *, pool_size: int = 10, sqlite_synchronous: str = "full",
                turn: WriteTurn | None = None) -> Engine:
    if url.startswith("sqlite"):
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite synchronous level {sqlite_synchronous!r}")
        create_private_sqlite_file(make_url(url).database)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=pool_size,
                               hide_parameters=True)  # an error's text never carries row values (logs)
        _sqlite_turns(engine, turn or WriteTurn())

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            sqlite_pragmas(dbapi_conn, sqlite_synchronous)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = create_engine(
        url, isolation_level="SERIALIZABLE", pool_size=pool_size, max_overflow=pool_size,
        hide_parameters=True,  # an error's text never carries row values (PIN HMACs, IDs) into a log
        connect_args={"options": without_jit(url)},
    )
    dialect = engine.dialect

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, _record, _proxy):
        _pre_ping(dialect, dbapi_conn)

    plain_commit = dialect.do_commit

    def do_commit(dbapi_conn):
        # (`dbapi_conn` is the pool's proxy of the psycopg connection)
        unlocking = getattr(_unlock_at_commit, "on", None) is dbapi_conn
        driver = dbapi_conn.driver_connection
        if getattr(_commit_queued, "on", None) is driver:
            # the last statement of `Database.pipeline(session, commit=True)`: COMMIT queued with the
            # block's statements (and after it the release of `Database.run(locks=...)`'s advisory
            # locks), synced once with them at its end (psycopg's commit() would sync here, and the
            # pipeline's end again: a round trip for nothing); its error, if any, is raised there,
            # before anyone is answered
            driver.cursor().execute("COMMIT", prepare=False)
            if unlocking:
                driver.cursor().execute(_UNLOCK_ALL, prepare=False)
                _commit_queued.unlocking = dbapi_conn  # marked as holding locks until the pipeline's end syncs
            return
        if not unlocking:
            plain_commit(dbapi_conn)
            return
        # the transaction of `Database.run(locks=...)`: COMMIT and the release of its advisory locks in one
        # round trip (one simple query: the release runs after the commit, in no transaction), so that
        # the next one waiting for them starts as soon as this one is committed
        if driver.info.transaction_status != 0:  # not IDLE: a transaction to commit
            with driver.cursor() as cursor:
                cursor.execute(_COMMIT_AND_UNLOCK)
            dbapi_conn.info.pop(HOLDS_LOCKS, None)

    dialect.do_commit = do_commit  # this engine's dialect only

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_conn, record):
        # a connection that may still hold a session-level advisory lock of `Database.run(locks=...)`
        # (its release was interrupted) is closed, never pooled: the server lets go of a closed
        # session's locks, a pooled one would keep them for as long as it lives
        if record.info.pop(HOLDS_LOCKS, False) and dbapi_conn is not None:
            log.warning("a connection returned holding advisory locks: closed")
            record.invalidate()

    return engine


def without_jit(url: str) -> str:
    """The connection's server options (libpq `options`, the URL's own kept first) with PostgreSQL's JIT
    off, unless the URL sets jit itself.

    JIT compiles a query whose estimated cost passes jit_above_cost (100,000 by default) before running it,
    and over monthly partitions a plan has one copy of its expressions per partition: a bank supervisor's
    audit read filtered by result, over 42 months, ran in 0.29 s and spent 7.6 s compiling 1,243 functions
    first (EXPLAIN ANALYZE, a city of a million; docs/SCALE.md). sscard's statements are short
    transactions, where compiling never pays; an operator who wants JIT for some database says so in the
    URL (`options=-c jit=on`)."""
    options = make_url(url).query.get("options")
    given = " ".join(options) if isinstance(options, tuple) else (options or "")
    if "jit=" in given.replace(" ", ""):
        return given
    return f"{given} -c jit=off".strip()


class CommitMarker:
    """One transaction's commit marker (`Database.mark_commit`): a random token inserted into
    commit_markers in the transaction itself, so that a commit whose answer was lost can be told
    committed or not by looking for it (`Database.committed`). `sent`: when (monotonic) it was queued."""

    __slots__ = ("token", "sent")

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.sent = time.monotonic()


_MARK = "INSERT INTO commit_markers (token, created_at, claimed) VALUES (%s, now(), false)"
# the lookup: our claim, or (a conflict, waited for until the other inserter ends) the row that is there;
# `claimed` of that row says whose it is (a claim asked again after its own answer was lost finds its own)
_CLAIM = ("INSERT INTO commit_markers (token, created_at, claimed) VALUES (%s, now(), true)"
          " ON CONFLICT (token) DO UPDATE SET claimed = commit_markers.claimed RETURNING claimed")
_PRUNE = "DELETE FROM commit_markers WHERE created_at < now() - make_interval(secs => %s)"

HOLDS_LOCKS = "sscard_advisory_locks"  # pool record info: session-level advisory locks may be held
_UNLOCK_ALL = "SELECT pg_advisory_unlock_all()"
_COMMIT_AND_UNLOCK = "COMMIT; SELECT pg_advisory_unlock_all()"
_unlock_at_commit = threading.local()  # .on: the pooled connection whose commit also unlocks

_commit_queued = threading.local()  # .on: the driver connection whose commit() queues its COMMIT (Database.pipeline)
_reading = threading.local()  # .on: this thread's checkouts skip the pre-ping (`_no_ping`: the work is run again on a broken connection)


@contextmanager
def _no_ping(on: bool = True) -> Iterator[None]:
    """While the block runs (and `on`), this thread's checkouts skip the pre-ping (`_pre_ping`): work whose
    first statement finds a broken connection, and which is then run again on a fresh one."""
    before = getattr(_reading, "on", False)
    _reading.on = on
    try:
        yield
    finally:
        _reading.on = before


def _pre_ping(dialect, dbapi_conn) -> None:
    """SQLAlchemy's `pool_pre_ping`, but not for reads: a read that finds its pooled connection broken
    (a failover) is run again on a fresh one by `Database.run(readonly=True)`, so the ping before it is a
    round trip for nothing (a quarter of a staff lookup's). A write checked out here is pinged as before:
    on a dead connection the pool drops it and hands out another (DisconnectionError, SQLAlchemy's
    documented pessimistic check)."""
    if getattr(_reading, "on", False):
        return
    try:
        dialect.do_ping(dbapi_conn)
    except Exception as exc:
        if not dialect.is_disconnect(exc, dbapi_conn, None):
            raise
        raise DisconnectionError("pre-ping: the connection is gone") from exc


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a driver error, raised through SQLAlchemy or by psycopg itself (a pipeline's
    sync); None for SQLite, which has none."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, StaleDataError):
        return True  # optimistic version check lost a race
    if sqlstate(exc) in RETRY_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def waited_for_committed_writer(exc: BaseException) -> bool:
    """PostgreSQL's "could not serialize access due to concurrent update": the transaction waited for a
    row lock whose holder then committed a change to that row. The holder is done, so the transaction is
    run again at once, without backing off (services.banking.lock_accounts turns most conflicts of an
    operation run on its own into this one)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    message = getattr(getattr(orig, "diag", None), "message_primary", None) or ""
    return sqlstate(exc) == "40001" and message.endswith("due to concurrent update")


def is_disconnect(exc: BaseException) -> bool:
    """The connection to PostgreSQL broke or could not be made, or reached a node that no longer takes
    writes: after a failover, the work may be run again on the new primary (when it is idempotent)."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    state = sqlstate(exc)
    if state is not None:
        return state.startswith("08") or state in RECONNECT_SQLSTATES
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    # psycopg raises OperationalError without a SQLSTATE when it cannot connect at all
    return type(orig).__module__.startswith("psycopg") and type(orig).__name__ == "OperationalError"


def is_exhausted(exc: BaseException) -> bool:
    """The database ran out of something, through no fault of the work: the pool had no connection
    within its timeout, or PostgreSQL a resource (class 53: the shared memory for predicate locks,
    which fills when a long SERIALIZABLE transaction anywhere on the server keeps every later one's
    locks; connections; disk), or a lock or statement timeout struck. Running the same work again
    at once, or each request of a batch alone, meets the same wall."""
    if isinstance(exc, PoolTimeout):
        return True
    state = sqlstate(exc)
    return state is not None and (state.startswith("53") or state in OVERLOAD_SQLSTATES)


def is_overloaded(exc: BaseException) -> bool:
    """The database could not take this work now (`is_exhausted`; or the retries of a serialization
    failure or of SQLite's write lock were used up; or the server stayed unreachable). The work was
    rolled back and may be sent again with the same idempotency key: a channel answers 503 with
    Retry-After, never 500."""
    return is_exhausted(exc) or is_retryable(exc) or is_disconnect(exc)


def is_duplicate(exc: BaseException) -> bool:
    """A unique index refused a row."""
    state = sqlstate(exc)
    if state is not None:
        return state == "23505"  # unique_violation
    return isinstance(exc, IntegrityError) and "UNIQUE constraint failed" in str(exc.orig)  # SQLite


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_attempts: int = 30, sqlite_synchronous: str = "full"):
        self.url = url
        self.sqlite_synchronous = sqlite_synchronous
        self.turn = WriteTurn()  # SQLite: this process's writers take turns (see WriteTurn)
        self.engine = make_engine(url, pool_size=pool_size, sqlite_synchronous=sqlite_synchronous, turn=self.turn)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Reads: deferred BEGIN on SQLite; on PostgreSQL one REPEATABLE READ snapshot, which takes no
        # predicate locks and so never makes a SERIALIZABLE writer abort.
        reader = (
            self.engine.execution_options(sscard_readonly=True)
            if self.dialect == "sqlite"
            else self.engine.execution_options(isolation_level="REPEATABLE READ")
        )
        self.read_sessions = sessionmaker(reader, expire_on_commit=False)
        self.max_attempts = max_attempts
        self.retries = 0  # transactions run again after a serialization failure or deadlock (/metrics)
        self._several: set[Hashable] = set()  # shapes of reads (`read`) that ran more than one statement

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        with self.sessions() as s, s.begin():
            yield s

    @contextmanager
    def read_committed(self) -> Iterator[Session]:
        """A short read outside the SERIALIZABLE regime (PostgreSQL): no predicate locks taken. Each
        statement in autocommit, which reads as READ COMMITTED does (a snapshot per statement) without
        the BEGIN and the COMMIT, a round trip each. Reads only."""
        if self.dialect != "postgresql":
            with self.read_sessions() as s, s.begin():
                yield s
            return
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            with Session(bind=conn) as s, s.begin():
                yield s

    @contextmanager
    def pipeline(self, session: Session, *, commit: bool = False) -> Iterator[None]:
        """On PostgreSQL, send the statements of the block without waiting for each answer (psycopg's
        pipeline mode: one round trip for many writes); elsewhere, nothing changes. Only for statements
        whose results are not read in the block; errors surface at the end of the block.

        `commit=True`: the block ends with `session.commit()` (its before-commit hooks' writes are the
        block's too), whose COMMIT is queued like the rest: the block's end syncs once for everything,
        and raises the COMMIT's error, if any. Nothing may run between that commit and the block's end."""
        if self.dialect != "postgresql":
            yield
            return
        driver = session.connection().connection.dbapi_connection
        if not commit:
            with driver.pipeline():
                yield
            return
        errors = self.engine.dialect.loaded_dbapi.Error
        _commit_queued.unlocking = None
        try:
            with driver.pipeline():
                _commit_queued.on = driver
                try:
                    yield
                finally:
                    _commit_queued.on = None
        except Exception as exc:
            _end_failed(driver)
            failed = _failure_behind(exc, errors)
            if failed is not None:  # an error of the server's, raised at the block's sync or masked (below)
                raise DBAPIError.instance(None, None, failed, errors, dialect=self.engine.dialect) from exc
            raise
        finally:
            unlocked, _commit_queued.unlocking = getattr(_commit_queued, "unlocking", None), None
        if unlocked is not None:  # the locks' release synced with the COMMIT: nothing left to let go
            unlocked.info.pop(HOLDS_LOCKS, None)

    def run(self, work: Callable[[Session], T], *, readonly: bool = False, idempotent: bool = False,
            locks: tuple[str, Sequence[object]] | None = None, queued_commit: bool = False,
            marked: bool = False) -> T:
        """Run `work` in a transaction, retrying it whole on serialization failure or deadlock (up to
        30 attempts, backing off to 0.1-0.3 s: a few seconds in all, so that under heavy contention on a
        few hot rows a transaction waits its turn instead of failing; 12 attempts lost 5-9 of ~1450
        transfers at 8 threads on 20 accounts).

        `readonly=True` is for reads that write nothing (queries, token lookups). `idempotent=True`
        (reads, and work that stores its answer under an idempotency key in the same transaction) is
        also run again when the connection breaks, for up to RECONNECT_SECONDS: during a failover the
        pool's connections are dropped and new ones find the new primary; a commit whose answer was lost
        with the old primary is found by its key on the new one, never applied twice.

        `locks` (PostgreSQL; ignored on SQLite, where BEGIN IMMEDIATE already serializes writers): a
        statement (SQL and its parameters) that takes session-level advisory locks, run on the
        transaction's connection before BEGIN, so that the SERIALIZABLE snapshot is taken after the
        wait, see `_locked`.

        `queued_commit` (PostgreSQL, the operation frame): what is left to write when `work` returns (the
        ORM's pending rows, the books' before-commit writes) goes in one pipeline with the COMMIT (and
        the locks' release): a round trip or two, not one per statement.

        `marked` (PostgreSQL with `queued_commit`; work that stores no answer under an idempotency key): the
        commit's pipeline also carries a commit marker (`mark_commit`, no round trip of its own). When the
        connection breaks once the COMMIT may have been sent, the outcome is asked of the (new) primary
        (`committed`): committed, the work's result is returned as if the answer had come; not committed
        (and now never), the work is run again as idempotent work is; undecided, the error is raised. Work
        whose connection broke before its commit is run again too (nothing of it was committed)."""
        if locks is not None and self.dialect == "postgresql" and not readonly:
            return self._run_locked(work, locks, idempotent, queued_commit, marked)
        maker = self.read_sessions if readonly else self.sessions
        marked = marked and queued_commit and not readonly and self.dialect == "postgresql"
        reconnect = _Reconnect(self) if (readonly or idempotent or marked) else None
        sent: list[tuple[CommitMarker, Any]] = []  # the attempt's marker, queued with its COMMIT, and its result
        attempt = 0
        while True:
            attempt += 1
            sent.clear()
            try:
                with _no_ping(readonly):  # a read's checkout skips the pre-ping (it is retried instead)
                    if queued_commit and not readonly and self.dialect == "postgresql":
                        # the session on a connection of its own: its commit must not hand the connection
                        # back to the pool before the pipeline carrying the COMMIT has ended (_transaction)
                        with self.engine.connect() as conn, self.sessions(bind=conn) as s:
                            return self._transaction(s, work, True, sent if marked else None)
                    with maker() as s, s.begin():
                        return work(s)
            except Exception as exc:
                if sent and self._committed_after(exc, sent):
                    return cast(T, sent[0][1])
                if reconnect is not None and reconnect.again(exc):
                    attempt -= 1
                    continue
                self._back_off(exc, attempt)

    def read(self, work: Callable[[Reads], T], *, shape: Hashable = None) -> T:
        """Run a declared read (services.operation.query): `work` reads through a `Reads`, whose `rows`
        runs a SELECT straight on the driver and whose `session()` is the ORM session, made only when
        asked for. As `run(readonly=True)`: the same snapshot for all its statements, run again on a
        broken connection (failover).

        On PostgreSQL (when no listener watches the engine's statements but those of `NOT_FOR_READS`) it takes a pooled connection
        without SQLAlchemy's Session and Connection around it (~0.25 ms of CPU a read, a sixth of a
        staff lookup's), and:
        - a read of `shape` (the caller's name for reads alike: the operation and the actor's role) that
          ran one statement so far runs its first in autocommit: the statement is its own snapshot, one
          round trip, no BEGIN or COMMIT. Should it ask for a second statement (or the session), it is
          run again from the start in a transaction, and so is every later read of that shape;
        - the others run in one REPEATABLE READ transaction (as `run(readonly=True)`: no predicate locks).
        Elsewhere (SQLite, or listeners) it is `run(readonly=True)` with the session's connection."""
        if self.dialect != "postgresql" or self.engine._has_events and _watched(self.engine):
            return self.run(lambda s: work(_SessionReads(s)), readonly=True)
        reconnect = _Reconnect(self)
        attempt = 0
        while True:
            attempt += 1
            reads = _DriverReads(self, shape)
            try:
                out = work(reads)
                reads.finish()
                return out
            except _Several:
                continue  # (its shape is now known to run several statements)
            except Exception as exc:
                reads.fail()
                if reconnect.again(exc):
                    continue
                if not is_retryable(exc) or attempt >= self.max_attempts:  # (as `run`: a body that locks rows)
                    raise
                self.retries += 1
                time.sleep(min(0.2, 0.002 * 2**attempt) * (0.5 + random.random()))
            finally:
                reads.close()

    def _transaction(self, s: Session, work: Callable[[Session], T], queued_commit: bool,
                     sent: list[tuple[CommitMarker, Any]] | None = None) -> T:
        """`work` in one transaction of `s`: committed when it returns (on PostgreSQL with `queued_commit`,
        in a pipeline with what is left to write), rolled back when it raises. With `queued_commit` the
        session must be bound to a connection the caller holds (a session that owns its connection hands
        it back to the pool at commit, with the pipeline still open). `sent` (`run(marked=True)`): the
        commit marker queued with the COMMIT, and the work's result, are put there."""
        if not (queued_commit and self.dialect == "postgresql"):
            with s.begin():
                return work(s)
        with contextlib.ExitStack() as pipelined:
            with s.begin():  # (its end commits, or rolls back what raised, as in the plain case)
                out = work(s)
                s.flush()  # the ORM's rows first, outside the pipeline (an insert reads back its id; a
                # flush hook may read rows): the pipeline carries the before-commit hooks' writes, the COMMIT
                pipelined.enter_context(self.pipeline(s, commit=True))
                if sent is not None:
                    marker = self.mark_commit(s)
                    assert marker is not None  # (PostgreSQL)
                    sent.append((marker, out))
        return out  # (the pipeline's end above has synced the COMMIT: its error would have been raised)

    def _committed_after(self, exc: BaseException, sent: list[tuple[CommitMarker, Any]]) -> bool:
        """`run(marked=True)`: did the attempt that failed with `exc` after queueing its marker commit all
        the same? False: it did not (run it again, or raise `exc` as any failure); raises `exc` when
        the outcome cannot be told (the caller must not run it again)."""
        if not is_disconnect(exc):
            return False  # an error answered by the server (a failed statement, a serialization failure)
        committed = self.committed(sent[0][0])
        if committed is None:
            raise exc
        return committed

    def _run_locked(self, work: Callable[[Session], T], locks: tuple[str, Sequence[object]], idempotent: bool,
                    queued_commit: bool = False, marked: bool = False) -> T:
        """`run` with `locks` taken before each attempt's BEGIN and let go after its end (commit or
        rollback), retried as `run` retries."""
        marked = marked and queued_commit
        reconnect = _Reconnect(self) if (idempotent or marked) else None
        unstarted = _Reconnect(self)  # a connection found broken by the lock statement, before anything ran
        sent: list[tuple[CommitMarker, Any]] = []
        attempt = 0
        while True:
            attempt += 1
            sent.clear()
            try:
                with self._unpinged() as conn, _locked(conn, locks), self.sessions(bind=conn) as s:
                    return self._transaction(s, work, queued_commit, sent if marked else None)
            except _NotStarted as exc:
                if not unstarted.again(exc.error):
                    raise exc.error from exc.error.orig
                attempt -= 1
                continue
            except Exception as exc:
                if sent and self._committed_after(exc, sent):
                    return cast(T, sent[0][1])
                if reconnect is not None and reconnect.again(exc):
                    attempt -= 1
                    continue
                self._back_off(exc, attempt)

    def _back_off(self, exc: Exception, attempt: int) -> None:
        """`run`'s step after a failed attempt that is no lost commit and no broken connection: raise `exc`
        unless it may run again (a serialization failure, a deadlock; up to max_attempts); else count it
        and wait a little, or not at all when it waited for a writer that has since committed."""
        if not is_retryable(exc) or attempt >= self.max_attempts:
            raise exc
        self.retries += 1
        log.debug("retrying transaction after %s (attempt %d)", type(exc).__name__, attempt)
        if not waited_for_committed_writer(exc):
            time.sleep(min(0.2, 0.002 * 2**attempt) * (0.5 + random.random()))

    @contextlib.contextmanager
    def _unpinged(self) -> Iterator[Connection]:
        """A pooled connection without the pre-ping (`_pre_ping`): for `_run_locked`, whose first statement,
        the advisory locks in autocommit, finds a broken connection before anything is written or
        committed (`_NotStarted`), so the work runs again on a fresh one, keyed or not: the ping before it
        was a round trip for nothing on every locked operation."""
        with _no_ping():
            conn = self.engine.connect()
        with conn:
            yield conn

    def mark_commit(self, session: Session) -> CommitMarker | None:
        """PostgreSQL: write a new commit marker in the session's transaction, and return it (None
        elsewhere: SQLite's writers are in this process, a commit's answer is not lost on the way).
        Call it in the commit's pipeline (`pipeline(session, commit=True)`): the insert is queued with
        the COMMIT and costs no round trip of its own."""
        if self.dialect != "postgresql":
            return None
        marker = CommitMarker()
        driver = session.connection().connection.driver_connection
        with driver.cursor() as cursor:
            cursor.execute(_MARK, (marker.token,), prepare=False)  # (as the COMMIT after it: a short statement)
        return marker

    def committed(self, marker: CommitMarker) -> bool | None:
        """Did the transaction that wrote `marker` commit? For a commit whose answer was lost (the
        connection broke once the COMMIT may have been sent; the primary died in a failover).

        Asked on a new connection (libpq finds the primary: after a failover, the new one), again while
        it breaks (RECONNECT_SECONDS), by claiming the token: one INSERT of it, marked `claimed`, that on
        a conflict returns the row there. The unique key arbitrates: the transaction's own row is there
        (it committed, on this primary), or the claim's is, and then the transaction can never commit
        (its insert of the token would fail). A transaction still in progress (its COMMIT not yet
        processed, or waiting for the standby) is waited for, up to CLAIM_LOCK_TIMEOUT. A claim whose
        own answer is lost is asked again and finds its own row. Not `pg_xact_status(xid)`: a new
        primary may have given the lost transaction's xid to another.

        True: committed. False: not, and never will. None: cannot tell (unreachable, the wait ran out,
        or the answer came too late to trust: MARKER_TRUSTED_SECONDS), logged: the work must not run again."""
        def claim() -> bool:
            with self.engine.connect().execution_options(isolation_level="READ COMMITTED") as conn, conn.begin():
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{CLAIM_LOCK_TIMEOUT}'")
                claimed = conn.exec_driver_sql(_CLAIM, (marker.token,)).scalar_one()
            return not claimed

        try:
            found = self.reconnecting(claim)
        except Exception:  # noqa: BLE001  the caller raises its own error (the lost commit's)
            log.error("commit outcome unknown (marker %s): could not look it up", marker.token, exc_info=True)
            return None
        if not found and time.monotonic() - marker.sent > MARKER_TRUSTED_SECONDS:
            log.error("commit outcome unknown (marker %s): no marker %.0f s after the commit (pruned?)",
                      marker.token, time.monotonic() - marker.sent)
            return None
        log.warning("commit whose answer was lost: %s (marker %s)", "committed" if found else "not committed",
                    marker.token)
        return found

    def prune_markers(self, conn: Connection | None = None) -> int:
        """Delete the commit markers older than MARKER_KEEP_SECONDS (PostgreSQL; on `conn`, an autocommit
        connection, or one of the pool's); how many."""
        if self.dialect != "postgresql":
            return 0
        if conn is None:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as own:
                return self.prune_markers(own)
        deleted = conn.exec_driver_sql(_PRUNE, (MARKER_KEEP_SECONDS,)).rowcount
        conn.rollback()  # ends SQLAlchemy's view of an autocommit "transaction": no round trip
        return deleted

    def write_turn(self) -> contextlib.AbstractContextManager[None]:
        """SQLite: hold this process's write turn across several transactions (the group-commit writer
        takes it before its lock file, so that it never holds the file while waiting for a thread);
        each write transaction takes it anyway (WriteTurn)."""
        return self.turn.held()

    def reconnecting(self, read: Callable[[], T]) -> T:
        """Call `read` (a read, or other work safe to repeat), again while the connection breaks, for up
        to RECONNECT_SECONDS (PostgreSQL during a failover)."""
        reconnect = _Reconnect(self)
        while True:
            try:
                return read()
            except Exception as exc:
                if not reconnect.again(exc):
                    raise

    def durability(self) -> dict:
        """What the database does to keep an answered commit across a power cut, read from the
        connection itself: SQLite's `synchronous` level, or PostgreSQL's `synchronous_commit` and
        `fsync`. `durable` is False when an acknowledged write can be lost."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                names = {v: k for k, v in SQLITE_SYNCHRONOUS.items()} | {0: "off"}
                return {"sqlite_synchronous": names.get(level, str(level)),
                        "durable": level >= DURABLE_SQLITE_LEVEL}
            commit = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
            conn.rollback()
        # remote_write / remote_apply / local still flush locally; only "off" answers before the flush
        return {"synchronous_commit": commit, "fsync": fsync,
                "durable": commit != "off" and fsync != "off"}

    def warn_if_not_durable(self) -> dict | None:
        """Log a warning when the database can lose acknowledged writes (called once at start)."""
        try:
            found = self.durability()
        except Exception:  # noqa: BLE001  an unreachable or not yet created database is not this check's business
            log.debug("durability check skipped", exc_info=True)
            return None
        if not found["durable"]:
            if self.dialect == "sqlite":
                log.warning("SQLite runs at synchronous=%s: a power cut can take back writes already "
                            "answered as done (policy storage.sqlite_synchronous)", found["sqlite_synchronous"])
            else:
                log.warning("PostgreSQL runs with synchronous_commit=%s, fsync=%s: a crash or power cut can "
                            "take back writes already answered as done; set both to on",
                            found["synchronous_commit"], found["fsync"])
        return found

    def sqlite_path(self) -> str | None:
        """The SQLite database file, or None (PostgreSQL, or SQLite in memory)."""
        if self.dialect != "sqlite":
            return None
        database = self.engine.url.database
        return None if not database or database == ":memory:" else str(Path(database).resolve())

    def migrate(self) -> None:
        """Build or upgrade the schema: the only way tables come to exist."""
        if self.url.startswith("sqlite:///"):
            Path(self.url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        from alembic import command  # ~0.4 s of imports (mako, pygments): only when migrating

        cfg = alembic_config(self.url)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")

    def analyze_filled(self) -> list[str]:
        """After a bulk load (the demo, a bench's city), PostgreSQL only: ANALYZE every table that holds rows,
        as autovacuum would in time, and leave the empty ones never analyzed. Returns the tables analyzed.

        Why not a plain ANALYZE: it records an empty table as empty, and a generic plan the group-commit
        writer prepares over it then scans it rather than probing its index, and keeps that plan while
        the table fills (nothing invalidates it until autovacuum analyzes the table again, a minute or
        more later). Session 30 measured it in the medical settlements bench: the read-ahead's probe of
        `medical_settlement_keys` grew from 0.2 to 2.8 ms in 8 s. A table never analyzed is planned as
        10 pages, and the probe uses the primary key. A partitioned table that holds rows is analyzed
        whole (its own statistics, which joins over it need and autovacuum never gathers, come only with
        its partitions', the empty months included)."""
        if self.dialect != "postgresql":
            return []
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            tables = conn.exec_driver_sql(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = current_schema() ORDER BY 1").scalars().all()
            # the names are the catalog's own, quoted by quote_ident
            filled = [t for t in tables if conn.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {t})").scalar()]  # noqa: S608
            for table in filled:
                conn.exec_driver_sql(f"ANALYZE {table}")
        return filled

    def dispose(self) -> None:
        self.engine.dispose()


# Engine listeners that have nothing to see in a read's statements (the group-commit writer's count of
# write statements): `Database.read` runs without SQLAlchemy's Connection, which is what calls listeners.
NOT_FOR_READS: set[Callable[..., object]] = set()
_STATEMENT_EVENTS = ("before_execute", "after_execute", "before_cursor_execute", "after_cursor_execute", "begin",
                     "commit", "rollback")


def _watched(engine: Engine) -> bool:
    """Does a listener of the engine (other than NOT_FOR_READS) want to see statements or transactions?
    (Asked again only when the number of listeners changed: `event.contains` was 1% of a lookup.)"""
    dispatch = engine.dispatch
    listening = sum(len(getattr(dispatch, name)) for name in _STATEMENT_EVENTS)
    known = _WATCHED.get(engine)
    if known is None or known[0] != listening:
        ignored = sum(event.contains(engine, name, fn) for name in _STATEMENT_EVENTS for fn in NOT_FOR_READS)
        known = _WATCHED[engine] = (listening, listening > ignored)
    return known[1]


_WATCHED: weakref.WeakKeyDictionary[Engine, tuple[int, bool]] = weakref.WeakKeyDictionary()


class Reads:
    """What a declared read (`Database.read`) runs its SQL through."""

    def rows(self, stmt, params: dict) -> list:
        """`fetch_all` of `stmt` in this read's snapshot."""
        raise NotImplementedError

    def session(self) -> Session:
        """The ORM session, in the same snapshot."""
        raise NotImplementedError


def session_rows(session: Session) -> Callable[[Any, dict], list]:
    """`fetch_all` in the session's transaction as a function of (statement, params): what the plain-row
    reads take (`lookup.Rows`, a declared read's `op.rows`) when a caller holds a session."""
    return lambda stmt, params: fetch_all(session.connection(), stmt, params)


class _SessionReads(Reads):
    """A read in a session `run(readonly=True)` began (SQLite; or listeners watch the statements)."""

    def __init__(self, session: Session):
        self._session = session

    def rows(self, stmt, params: dict) -> list:
        return fetch_all(self._session.connection(), stmt, params)

    def session(self) -> Session:
        return self._session


class _Several(BaseException):  # (not an Exception: no body's `except Exception` may swallow it)
    """A read begun as one autocommit statement asked for another: run it again in a transaction."""


_REPEATABLE_READ = 3  # psycopg.IsolationLevel.REPEATABLE_READ (not imported: SQLite needs no psycopg)


class _DriverReads(Reads):
    """A read on a pooled PostgreSQL connection with no SQLAlchemy Session or Connection around it until
    the ORM is asked for (`Database.read`). `single`: the first statement runs in autocommit, and any
    further statement (or the session) raises `_Several`."""

    @staticmethod
    def sent(driver: Any, stmt: Any) -> None:
        """A hook: a statement is sent on `driver` (tests count round trips and see the transaction)."""

    def __init__(self, db: Database, shape: Hashable):
        self.db = db
        self.shape = shape
        self.single = shape not in db._several
        self.statements = 0
        self._fairy: Any = None  # the pool's connection
        self._driver: Any = None  # psycopg's
        self._level: Any = None
        self._conn: Connection | None = None  # the SQLAlchemy Connection over the same pooled connection, once the ORM is asked for
        self._session: Session | None = None

    def _checkout(self):
        with _no_ping():  # a broken connection is found by the read, and the read run again
            self._fairy = fairy = self.db.engine.raw_connection()
        driver = self._driver = fairy.driver_connection
        self._level = driver.isolation_level
        if self.single:
            driver.autocommit = True
        else:
            driver.isolation_level = _REPEATABLE_READ
        return driver

    def rows(self, stmt, params: dict) -> list:
        if self._session is not None:
            return fetch_all(self._session.connection(), stmt, params)
        if self.single and self.statements:
            self.db._several.add(self.shape)
            raise _Several
        driver = self._driver or self._checkout()
        self.statements += 1
        dialect = self.db.engine.dialect
        _DriverReads.sent(driver, stmt)
        # a transaction's first statement carries its BEGIN (`begin_ahead`: one round trip, not two)
        return _select_together(driver, dialect, [(stmt, params)])[0]

    def session(self) -> Session:
        if self._session is None:
            if self.single:  # a session's reads may be many: a transaction from the start
                if self.statements:  # a statement ran in autocommit: again from the start, in a transaction
                    self.db._several.add(self.shape)  # (as `rows` does: else it ran again single, for ever)
                    raise _Several
                self._several()
            driver = self._driver or self._checkout()
            self._conn = Connection(self.db.engine, connection=self._fairy)
            self._session = self.db.sessions(bind=self._conn)
            self._session.begin()
            assert driver is self._driver
        return self._session

    def _several(self) -> None:
        """From now on a transaction (before its first statement), for this read and those of its shape."""
        self.db._several.add(self.shape)
        self.single = False
        if self._driver is not None:
            self._driver.autocommit = False
            self._driver.isolation_level = _REPEATABLE_READ

    def finish(self) -> None:
        """The read is done: end its transaction (a COMMIT; nothing in autocommit)."""
        if self._session is not None:
            self._session.commit()
        elif self._driver is not None and not self.single:
            self._driver.commit()

    def fail(self) -> None:
        """The read failed: a broken connection leaves the pool (as SQLAlchemy invalidates one)."""
        driver = self._driver
        if driver is None:
            return
        if driver.closed or driver.broken:
            self._invalidate()

    def _invalidate(self) -> None:
        if self._conn is not None:
            self._conn.invalidate()
        elif self._fairy is not None:
            self._fairy.invalidate()

    def close(self) -> None:
        """Back to the pool as it was taken (not autocommit, the engine's isolation level)."""
        driver = self._driver
        if driver is None:
            return
        try:
            if self._session is not None:
                self._session.close()  # a transaction still open (the read failed) is rolled back
            if not driver.closed:
                if driver.info.transaction_status != 0:
                    driver.rollback()
                driver.autocommit = False
                driver.isolation_level = self._level
        except Exception:  # noqa: BLE001  a connection that cannot be put back as it was is not put back
            log.warning("a read's connection could not be reset: closed", exc_info=True)
            self._invalidate()
        finally:
            if self._conn is not None:
                self._conn.close()
            elif self._fairy is not None:
                self._fairy.close()


@contextmanager
def _locked(conn, locks: tuple[str, Sequence[object]]) -> Iterator[None]:
    """Run the statement `locks` (it takes session-level advisory locks) on `conn` in autocommit, before
    its transaction begins, and let every advisory lock of the session go when the block ends, however
    it ends.

    PostgreSQL takes a SERIALIZABLE transaction's snapshot at its first statement: a transaction that
    waits for a row lock inside it sees, once the holder has committed, a snapshot older than that
    commit and fails ("could not serialize access due to concurrent update"), and so does every other
    one queued behind the holder. Waiting here instead, before BEGIN, the snapshot is taken after the
    holder's commit. The locks protect nothing by themselves: the transaction is as SERIALIZABLE as
    any other, they only keep two transactions on the same accounts from overlapping.

    Session-level advisory locks outlive a rollback, so the release does not rely on the transaction:
    `pg_advisory_unlock_all()` after it (also after an error, a failed lock statement that may have
    taken some of its locks, a retry). When that release fails the connection is closed (the server
    then lets go of its locks), and the pool's checkin closes any connection still marked as holding
    locks: a pooled connection never keeps one."""
    fairy = conn.connection  # the pooled connection: its info lives with the DBAPI connection
    driver = fairy.driver_connection
    dialect = conn.dialect
    errors = dialect.loaded_dbapi.Error
    sql, params = locks
    fairy.info[HOLDS_LOCKS] = True  # from before the statement: a lost answer may still have locked
    outer = getattr(_unlock_at_commit, "on", None)  # (a db.run(locks=...) inside another one's work)
    try:
        try:
            _autocommit(driver, sql, params)
        except errors as exc:  # wrapped as SQLAlchemy would (the retry helper reads its SQLSTATE)
            error = DBAPIError.instance(sql, None, exc, errors, dialect=dialect)
            if is_disconnect(error) or driver.closed:
                conn.invalidate()  # (not back to the pool)
                raise _NotStarted(error) from exc
            raise error from exc
        _unlock_at_commit.on = fairy  # its commit lets them go (make_engine's do_commit)
        yield
    finally:
        _unlock_at_commit.on = outer
        _unlock_all(conn)  # when not committed, or the commit failed


def _end_failed(driver) -> None:
    """Roll back, on the driver, a transaction whose commit pipeline failed. SQLAlchemy's own rollback was
    tried inside the pipeline, failed as "pipeline aborted", and SQLAlchemy counts the transaction as
    ended, so the pool's reset skips it too: the connection would be pooled with its transaction still
    open and aborted (INERROR), and the next checkout's ping fail. A broken connection is left to the pool."""
    try:
        if not driver.closed and driver.info.transaction_status != 0:  # not IDLE
            driver.rollback()
    except Exception:  # noqa: BLE001  (a broken connection: the pool drops it)
        log.debug("rolling back after a failed pipeline failed", exc_info=True)


def _failure_behind(exc: BaseException, errors: type[BaseException]) -> BaseException | None:
    """The server's own error behind `exc`, raised in a pipeline: a statement that failed there (a
    serialization failure, a twin's unique key) makes every later one fail as "pipeline aborted", and
    when its error reaches SQLAlchemy in the middle of a commit, the rollback SQLAlchemy then tries
    fails as "pipeline aborted" too and is what propagates, the real error only in its context. The retry
    helper and the twin check need the real one (its SQLSTATE, IntegrityError). None: `exc` is no driver
    error (an error of the work's own)."""
    aborted = None
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        orig = cause.orig if isinstance(cause, DBAPIError) else cause
        if isinstance(orig, errors):
            if type(orig).__name__ != "PipelineAborted":
                return orig
            aborted = aborted or orig
        cause = cause.__cause__ or cause.__context__
    return aborted


def _autocommit(driver, sql: str, params: Sequence[object] = ()) -> None:
    """One statement outside any transaction (psycopg's autocommit), as SQLAlchemy's pre-ping runs."""
    driver.autocommit = True
    try:
        with driver.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        if not driver.closed:
            driver.autocommit = False


def _unlock_all(conn) -> None:
    """Let go of the session's advisory locks; on any failure close the connection instead."""
    if conn.invalidated or conn.closed:
        return  # its DBAPI connection is closed already: the server has let go (or will, on noticing)
    fairy = conn.connection
    if not fairy.info.get(HOLDS_LOCKS):
        return  # let go by its commit
    try:
        driver = fairy.driver_connection
        if driver.info.transaction_status != 0:  # not IDLE: the transaction did not end cleanly
            driver.rollback()
        _autocommit(driver, _UNLOCK_ALL)
    except BaseException as exc:
        # not raised (an Exception): the transaction has ended as it ended (a commit stays answered as one)
        log.warning("could not release advisory locks: connection closed", exc_info=True)
        fairy.info.pop(HOLDS_LOCKS, None)
        conn.invalidate()  # closes it: the server releases a closed session's locks
        if not isinstance(exc, Exception):
            raise
        return
    fairy.info.pop(HOLDS_LOCKS, None)


class _NotStarted(Exception):
    """`_locked`'s lock statement found the connection broken: nothing of the work ran (`_run_locked`)."""

    def __init__(self, error: DBAPIError):
        super().__init__(str(error))
        self.error = error


class _Reconnect:
    """Whether work that may be repeated should run again after `exc`: a broken connection on
    PostgreSQL, until RECONNECT_SECONDS have passed (sleeping a little between tries)."""

    def __init__(self, db: Database):
        self.db = db
        self.deadline: float | None = None

    def again(self, exc: BaseException) -> bool:
        if self.db.dialect != "postgresql" or not is_disconnect(exc):
            return False
        self.deadline = self.deadline or time.monotonic() + RECONNECT_SECONDS
        if time.monotonic() >= self.deadline:
            return False
        if sqlstate(exc) == "25006":  # pooled connections to a node that is now a standby: drop them all
            self.db.engine.dispose()
        log.warning("database connection lost (%s): trying again", type(exc).__name__)
        time.sleep(0.1 + 0.2 * random.random())
        return True


WRITES = "sscard_writes"  # connection.info: write statements run on the connection (group commit reads it)

_FAST: dict = {}  # (statement, dialect, keys or shape) -> what it compiled to; None: not for the fast path


def execute_many(conn, stmt, rows: list[dict]) -> None:
    """Run `stmt` once per row (rows all with the same keys), straight on the driver's cursor.

    For the group-commit writer's few statements of many rows: SQLAlchemy compiles the statement once
    (per dialect and key set) and its own bind processors convert the values (dates on SQLite, JSON
    columns), so the rows stored are exactly those `conn.execute(stmt, rows)` would store, without its
    per-execution bookkeeping (about a third of the writer's time on SQLite). On PostgreSQL a statement
    with one VALUES row is sent once with that row repeated for every row (psycopg's executemany
    spends ~25 µs of Python per row). A statement the fast path cannot take (a column default to
    compute, an expanding IN) goes through `conn.execute`."""
    if not rows:
        return
    dialect = conn.dialect
    keys = tuple(rows[0])
    first = rows[0].keys()
    if any(row.keys() != first for row in rows):  # a value would be dropped or missing: never silently
        raise ValueError("execute_many: every row needs the same keys")
    entry = _fast_entry(stmt, dialect, keys)
    if entry is None:
        conn.execute(stmt, rows)
        return
    sql, values, multi = entry
    conn.info[WRITES] = conn.info.get(WRITES, 0) + 1
    driver = conn.connection.driver_connection
    errors = dialect.loaded_dbapi.Error
    multi = multi if len(rows) > 1 else None
    cursor = _raw_cursor(driver) if multi is not None else driver.cursor()
    try:
        if multi is not None:
            sql = multi.sql(len(rows))
            flat: list = []
            for row in rows:
                flat.extend(multi.values.of(row))
            cursor.execute(sql, flat)
        else:
            if dialect.positional:
                params = [values.of(row) for row in rows]
            else:
                params = [dict(zip(values.names, values.of(row), strict=True)) for row in rows]
            cursor.executemany(sql, params) if len(params) > 1 else cursor.execute(sql, params[0])
    except errors as exc:  # wrapped as SQLAlchemy would (IntegrityError, OperationalError...)
        raise DBAPIError.instance(sql, None, exc, errors, dialect=dialect) from exc
    finally:
        cursor.close()


def one_statement(conn, stmt, rows: list[dict]) -> bool:
    """Does `execute_many(conn, stmt, rows)` send ONE statement (a multi-row VALUES, or a single row)?
    Only then is it all-or-nothing on an autocommit connection."""
    if len(rows) <= 1:
        return True
    entry = _fast_entry(stmt, conn.dialect, tuple(rows[0]))
    return entry is not None and entry[2] is not None


def _fast_entry(stmt, dialect, keys: tuple):
    """What `stmt` with these keys compiles to for execute_many (once per dialect), None when it is not
    for the fast path."""
    key = (stmt, dialect.name, keys)
    entry = _FAST.get(key, False)
    if entry is False:
        entry = _FAST[key] = _compile_fast(stmt, dialect, keys)
    return entry


_NAMED = re.compile(r"%\((\w+)\)s")


class _Values:
    """A row's values in a statement's order, converted by SQLAlchemy's bind processors (itemgetter
    takes them out of the dict in C; only the columns with a processor are touched in Python)."""

    def __init__(self, pairs: list[tuple[str, object]]):
        self.names = [name for name, _p in pairs]
        self._get = itemgetter(*self.names) if len(self.names) > 1 else (lambda row, n=self.names[0]: (row[n],))
        self._fixes = [(i, p) for i, (_n, p) in enumerate(pairs) if p is not None]

    def of(self, row: dict) -> list:
        values = list(self._get(row))
        for i, process in self._fixes:
            values[i] = process(values[i])
        return values


class _Rows:
    """A pyformat statement with one VALUES row, written for n rows with PostgreSQL's own $1, $2...
    placeholders (run on psycopg's RawCursor: psycopg parses, and caches only up to 4 kB, the %s form
    of a long statement on every execution)."""

    def __init__(self, before: str, row: str, after: str, order: list):
        self.before, self.row, self.after = before, row, after
        self.values = _Values(order)
        self._sql: dict[int, str] = {}

    def sql(self, n: int) -> str:
        found = self._sql.get(n)
        if found is None:
            width = len(self.values.names)
            rows = []
            for r in range(n):
                numbers = iter(range(r * width + 1, (r + 1) * width + 1))
                rows.append(_NAMED.sub(lambda _m, numbers=numbers: f"${next(numbers)}", self.row))
            found = self._sql[n] = self.before + ", ".join(rows) + self.after
        return found


def _raw_cursor(driver):
    import psycopg

    return psycopg.RawCursor(driver)


def _multi_row(sql: str, processors: dict) -> _Rows | None:
    """The statement's one VALUES row, to be repeated; None when it has none or binds outside it."""
    start = sql.find("VALUES (")
    if start < 0 or "%%" in sql:
        return None
    start += len("VALUES ")
    depth = 0
    for end in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        if depth == 0:
            break
    group = sql[start : end + 1]
    if _NAMED.search(sql[:start]) or _NAMED.search(sql[end + 1 :]):
        return None
    order = [(name, processors.get(name)) for name in _NAMED.findall(group)]
    return _Rows(sql[:start], group, sql[end + 1 :], order)


def fetch_all(conn, stmt, params: dict) -> list:
    """The rows of a SELECT, run on the driver's cursor (the reading twin of `execute_many`).

    For the group-commit writer's per-batch reads: compiled once per dialect and per length of each
    list parameter (an IN list), converted by SQLAlchemy's own bind and result processors (dates,
    booleans and UTC datetimes on SQLite), returned as named tuples with the statement's column keys."""
    return fetch_together(conn, [(stmt, params)])[0]


def fetch_together(conn, reads: list[tuple[Any, Any]]) -> list[list]:
    """The rows of several SELECTs (as `fetch_all` gives them), sent together: on PostgreSQL one round
    trip for all of them, and for the BEGIN of a transaction they start. A statement may be SQL text with
    the driver's parameters (a lock, a SET LOCAL): sent as it is, its rows as the driver gives them."""
    dialect = conn.dialect
    driver = conn.connection.driver_connection
    listen = conn if conn._has_events or conn.engine._has_events else None  # listeners still see it (SQL logging, tests)
    return _select_together(driver, dialect, reads, listen)


def _bound(dialect, stmt, params) -> tuple[str, Any, Any, tuple]:
    """A SELECT's SQL, its driver parameters, its row type and result processors (compiled once per shape);
    a statement given as SQL text with the driver's parameters is sent as it is (its rows as the driver
    gives them)."""
    if isinstance(stmt, str):
        return stmt, params, None, ()
    shape = tuple(sorted((k, len(v) if isinstance(v, list | tuple) else None) for k, v in params.items()))
    cache_key = (stmt, dialect.name, shape)
    entry = _FAST.get(cache_key)
    if entry is None:
        entry = _FAST[cache_key] = _compile_select(stmt, dialect, params)
    sql, binds, row_type, results, own = entry
    if own:
        params = {**own, **params}
    values = [p(params[k] if i is None else params[k][i]) if p else (params[k] if i is None else params[k][i])
              for _name, k, i, p in binds]  # (a bind of the statement's own, SQLite's OFFSET 0, is in `params` too)
    if not dialect.positional:
        values = {name: v for (name, *_rest), v in zip(binds, values, strict=True)}
    return sql, values, row_type, results


def _select_together(driver, dialect, reads: list[tuple[Any, dict]], listen=None) -> list[list]:
    """`fetch_together` on a driver connection (`listen`: the SQLAlchemy connection whose listeners see it)."""
    bound = [_bound(dialect, stmt, params) for stmt, params in reads]
    errors = dialect.loaded_dbapi.Error
    # PostgreSQL: the statements in one pipeline, fetched after its end, whose one sync brings every answer
    # (fetching inside it would sync for each, and once more at its end). The first statements of a
    # transaction: psycopg would send BEGIN and wait for it alone (a pipeline too syncs after its BEGIN), so
    # it is queued here, ahead of them, with the transaction's own BEGIN statement (`begin_ahead`).
    # (An autocommit connection sends the statements alone: no BEGIN to fold.)
    postgres = dialect.name == "postgresql"
    starting = postgres and driver.info.transaction_status == 0 and not driver.autocommit
    cursors = [driver.cursor() for _ in bound]  # (each keeps its own answer)
    sql = None
    try:
        with driver.pipeline() if postgres and (starting or len(bound) > 1) else contextlib.nullcontext():
            if starting:
                begin_ahead(driver)
            for cursor, (sql, values, _row_type, _results) in zip(cursors, bound, strict=True):
                if listen is not None:
                    listen.dispatch.before_cursor_execute(listen, cursor, sql, values, None, False)
                cursor.execute(sql, values)
        raws = [cursor.fetchall() if _returns_rows(cursor) else [] for cursor in cursors]
    except errors as exc:
        raise DBAPIError.instance(sql, None, exc, errors, dialect=dialect) from exc
    finally:
        for cursor in cursors:
            cursor.close()
    out = []
    for raw, (_sql, _values, row_type, results) in zip(raws, bound, strict=True):
        if row_type is None:
            out.append(raw)
            continue
        convert = [(i, f) for i, f in enumerate(results) if f]  # most columns have no processor
        if not convert:
            out.append([row_type._make(r) for r in raw])
            continue
        rows = []
        for r in raw:
            values = list(r)
            for i, f in convert:
                values[i] = f(values[i])
            rows.append(row_type._make(values))
        out.append(rows)
    return out


_TUPLES = frozenset({2, 9, 12})  # psycopg.pq.ExecStatus TUPLES_OK, SINGLE_TUPLE, TUPLES_CHUNK (not imported: as above)


def _returns_rows(cursor) -> bool:
    """`cursor.description is not None`, without psycopg building its list of Column objects (one per
    column, at every access: ~4% of the server's interpreter time in a lookup, in a medical batch's
    read-ahead) only to be told that the statement returned rows."""
    result = getattr(cursor, "pgresult", cursor)
    if result is cursor:  # not psycopg (sqlite3: a plain tuple)
        return cursor.description is not None
    return result is not None and (result.nfields > 0 or result.status in _TUPLES)


def begin_ahead(driver) -> None:
    """In an open pipeline of a connection with no transaction: queue the transaction's BEGIN (the
    statement psycopg itself would send, with the connection's isolation level) and send it, so that
    the statements queued next go in the same round trip. Sent, the connection is no longer idle and
    psycopg adds no BEGIN of its own (which it would sync alone: a round trip for BEGIN only).
    psycopg's own steps, by their private names (psycopg is pinned in constraints.txt):
    tests/ledger/test_batching.py counts the round trips of a batch on the wire."""
    driver.wait(driver._exec_command(driver._get_tx_start_command()))
    driver.wait(driver._pipeline._communicate_gen())
    assert driver.info.transaction_status != 0  # BEGIN sent: no implicit one follows


def _compile_select(stmt, dialect, params: dict):
    compiled = stmt.params(**params).compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    expanded = compiled._post_compile_expanded_state  # the IN lists as name_1, name_2, ... (None: no IN list)
    if expanded is None:
        names = list(compiled.positiontup or ()) if dialect.positional else list(dict.fromkeys(compiled.bind_names.values()))
        processors = dict(compiled._bind_processors)
        where = {}
    else:
        names = list(expanded.positiontup) if dialect.positional else list(expanded.parameters)
        processors = {**compiled._bind_processors, **expanded.processors}
        where = {name: (base, i) for base, parts in expanded.parameter_expansion.items() for i, name in enumerate(parts)}
    binds = []
    for name in names:
        base, index = where.get(name, (name, None))
        binds.append((name, base, index, processors.get(name) or processors.get(base)))
    columns = list(stmt.selected_columns)
    row_type = namedtuple("Row", [c.key for c in columns], rename=True)
    results = [c.type._cached_result_processor(dialect, None) for c in columns]
    # binds the caller does not give are the statement's own values (SQLite's LIMIT ? OFFSET 0)
    own = {base: compiled.binds[base].value for _name, base, _i, _p in binds
           if base not in params and base in compiled.binds}
    return compiled.string, binds, row_type, results, own


def _compile_fast(stmt, dialect, keys: tuple[str, ...]):
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None
    names = list(compiled.positiontup) if dialect.positional else list(compiled.bind_names.values())
    if not set(names) <= set(keys):
        return None  # binds we do not supply (column defaults SQLAlchemy would compute)
    processors = compiled._bind_processors
    multi = None if dialect.positional else _multi_row(compiled.string, processors)
    return compiled.string, _Values([(n, processors.get(n)) for n in names]), multi


class WalCheckpointer:
    """Copies SQLite's write-ahead log into the database file from a thread of its own.

    By default the connection whose commit takes the log past 1,000 pages does the checkpoint, which
    writes the log's pages into the database file and waits for the disk (fsync of the file, beyond the
    log's own fsync at each commit): the group-commit writer would stall every ~40 batches while the
    whole server waits for it. The writer's connection
    turns automatic checkpoints off and pokes this thread instead, which runs PASSIVE checkpoints (they
    never block a writer or a reader) on its own connection, as PostgreSQL's checkpointer process does.
    Other connections keep the automatic checkpoint; with the log kept short they rarely reach it."""

    def __init__(self, engine: Engine, *, every: int = 32, idle_seconds: float = 1.0):
        self.engine = engine
        self.every = every  # commits between checkpoints
        self.idle_seconds = idle_seconds  # and at least this often while commits come in
        self.checkpoints = 0
        self._commits = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="sscard-wal-checkpointer", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Called by the writer after each commit (cheap: a counter, and a poke now and then)."""
        self._commits += 1
        if self._commits % self.every == 0:
            self._wake.set()

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        seen = 0
        while not self._stop:
            self._wake.wait(self.idle_seconds)
            self._wake.clear()
            if self._commits == seen or self._stop:
                continue
            seen = self._commits
            try:
                raw = self.engine.raw_connection()  # no BEGIN (SQLAlchemy's would take the write lock)
                try:
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                finally:
                    raw.close()
                self.checkpoints += 1
            except Exception:  # noqa: BLE001  the automatic checkpoint of other connections still runs
                log.warning("WAL checkpoint failed", exc_info=True)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
