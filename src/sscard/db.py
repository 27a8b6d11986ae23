"""Engines, transactions and the one retry helper for serialization failures and deadlocks.

PostgreSQL runs SERIALIZABLE (as CockroachDB and YugabyteDB do by default), so any transaction may be
asked to retry; SQLite takes its write lock at BEGIN (BEGIN IMMEDIATE), so writers queue instead of
deadlocking. Every service transaction goes through `Database.run`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

log = logging.getLogger("sscard.db")
T = TypeVar("T")

MIGRATIONS = Path(__file__).parent / "migrations"
RETRY_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def default_url() -> str:
    return "sqlite:///var/sscard.db"


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=pool_size)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # writers take the lock at BEGIN (no upgrade deadlocks); reads stay deferred, and in WAL
            # mode they neither wait for the writer nor hold it up
            readonly = conn.get_execution_options().get("sscard_readonly")
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(
        url, isolation_level="SERIALIZABLE", pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


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


def is_duplicate(exc: BaseException) -> bool:
    """A unique index refused a row."""
    state = sqlstate(exc)
    if state is not None:
        return state == "23505"  # unique_violation
    return isinstance(exc, IntegrityError) and "UNIQUE constraint failed" in str(exc.orig)  # SQLite


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_attempts: int = 30):
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
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
        """A short read outside the SERIALIZABLE regime (PostgreSQL): no predicate locks taken."""
        if self.dialect != "postgresql":
            with self.read_sessions() as s, s.begin():
                yield s
            return
        with self.engine.connect().execution_options(isolation_level="READ COMMITTED") as conn:
            with Session(bind=conn) as s, s.begin():
                yield s

    @contextmanager
    def pipeline(self, session: Session) -> Iterator[None]:
        """On PostgreSQL, send the statements of the block without waiting for each answer (psycopg's
        pipeline mode: one round trip for many writes); elsewhere, nothing changes. Only for statements
        whose results are not read in the block; errors surface at the end of the block."""
        if self.dialect != "postgresql":
            yield
            return
        with session.connection().connection.dbapi_connection.pipeline():
            yield

    def run(self, work: Callable[[Session], T], *, readonly: bool = False) -> T:
        """Run `work` in a transaction, retrying it whole on serialization failure or deadlock (up to
        30 attempts, backing off to 0.1-0.3 s: a few seconds in all, so that under heavy contention on a
        few hot rows a transaction waits its turn instead of failing; 12 attempts lost 5-9 of ~1450
        transfers at 8 threads on 20 accounts).

        `readonly=True` is for reads that write nothing (queries, token lookups)."""
        maker = self.read_sessions if readonly else self.sessions
        for attempt in range(1, self.max_attempts + 1):
            try:
                with maker() as s, s.begin():
                    return work(s)
            except Exception as exc:
                if not is_retryable(exc) or attempt == self.max_attempts:
                    raise
                delay = min(0.2, 0.002 * 2**attempt) * (0.5 + random.random())
                log.debug("retrying transaction after %s (attempt %d)", type(exc).__name__, attempt)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def migrate(self) -> None:
        """Build or upgrade the schema: the only way tables come to exist."""
        if self.url.startswith("sqlite:///"):
            Path(self.url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        cfg = alembic_config(self.url)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
