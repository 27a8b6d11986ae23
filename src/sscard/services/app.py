"""The application: database, clock, policy and secrets, handed to every service call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy.exc import DataError, DBAPIError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..config import Settings
from ..core.clock import Clock
from ..core.errors import SscardError
from ..core.passwords import Secrets
from ..core.policy import Policy, load_policy
from ..db import Database, is_overloaded

UNSTORABLE_INPUT: tuple[type[Exception], ...] = (DataError, OverflowError, StatementError)
"""What the database raises for input it cannot hold (an id beyond its integers, a NUL byte, a string too
long for its column; SQLite: OverflowError; a time that leaves the calendar when a column's type shifts
it to UTC, raised from the bind step as a StatementError): the channels answer it as malformed input,
never 500, when `unstorable` says it is one (a StatementError may be anything else too)."""


def unstorable(exc: BaseException) -> bool:
    """Is `exc` the database (or its driver's bind step) refusing a value it was given? A DataError or an
    OverflowError is; a StatementError (SQLAlchemy's wrapper of what a bind processor raised) is when what
    it wraps is an OverflowError: `0001-01-01T00:00+08:00` or `9999-12-31T23:59-12:00` has no UTC time."""
    if isinstance(exc, DataError | OverflowError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError) and isinstance(exc.orig, OverflowError)

MAYBE_BUSY: tuple[type[Exception], ...] = (DBAPIError, PoolTimeout)
"""What the database raises when it may only be overloaded (`busy` tells): a channel asks `busy` before
it lets such an error become a 500."""

RETRY_AFTER_SECONDS = 1


def busy(exc: BaseException) -> SscardError | None:
    """`service_busy` (503, retry after a second) when `exc` says the database could not take the work
    now (db.is_overloaded: its pool, its resources, used-up retries, a lost server), else None. Such
    work was rolled back: the same request, with the same Idempotency-Key, may be sent again."""
    return SscardError("service_busy", seconds=RETRY_AFTER_SECONDS) if is_overloaded(exc) else None


@dataclass
class App:
    db: Database
    clock: Clock
    policy: Policy
    secrets: Secrets
    settings: Settings
    extras: dict[str, Any] = field(default_factory=dict)  # per-area singletons (the ledger's batcher, ...)

    def close(self) -> None:
        for extra in self.extras.values():
            close = getattr(extra, "close", None)
            if close:
                close()
        self.db.dispose()


FAST_ARGON2 = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def build_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    policy: Policy | None = None,
    pool_size: int = 10,
    check_durability: bool = True,
) -> App:
    settings = settings or Settings.from_env()
    policy = policy or load_policy()
    db = Database(settings.database_url, pool_size=pool_size,
                  sqlite_synchronous=policy.storage.sqlite_synchronous)
    if check_durability:
        db.warn_if_not_durable()  # a warning in the log when acknowledged writes could be lost
    return App(
        db=db,
        clock=clock or Clock(),
        policy=policy,
        secrets=Secrets(settings.secret_key, FAST_ARGON2 if settings.fast_hashing else None),
        settings=settings,
    )
