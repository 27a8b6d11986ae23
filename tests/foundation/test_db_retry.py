"""db.Database.run: a transaction that loses a serialization race is retried whole, and concurrent
increments of one row end with the exact total, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from sscard.db import Database, is_retryable
from sscard.models.foundation import Bank, Person


class FakeDriverError(Exception):
    def __init__(self, sqlstate: str):
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


def driver_error(sqlstate: str) -> DBAPIError:
    return DBAPIError("UPDATE ...", {}, FakeDriverError(sqlstate))


@pytest.fixture
def db(db_url):
    database = Database(db_url, pool_size=4)
    yield database
    database.dispose()


def _bank_count(db: Database) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Bank))


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_a_serialization_failure_is_retried_and_only_the_last_attempt_counts(db, sqlstate):
    attempts = []

    def work(session):
        attempts.append(1)
        session.add(Bank(code=f"B{len(attempts)}", name="bank", bin=f"62{len(attempts):04d}", hotline="1"))
        session.flush()
        if len(attempts) == 1:
            raise driver_error(sqlstate)
        return "done"

    assert db.run(work) == "done"
    assert len(attempts) == 2
    with db.session() as s:
        assert s.scalars(select(Bank.code)).all() == ["B2"]  # the failed attempt's write was rolled back


def test_other_errors_are_not_retried(db):
    attempts = []

    def work(session):
        attempts.append(1)
        raise driver_error("23505")  # unique_violation: retrying cannot help

    with pytest.raises(DBAPIError):
        db.run(work)
    assert len(attempts) == 1

    def boom(session):
        attempts.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        db.run(boom)
    assert len(attempts) == 2


def test_retries_stop_after_max_attempts(db_url):
    db = Database(db_url, pool_size=2, max_attempts=3)
    attempts = []

    def work(session):
        attempts.append(1)
        raise driver_error("40001")

    try:
        with pytest.raises(DBAPIError):
            db.run(work)
        assert len(attempts) == 3
    finally:
        db.dispose()


def test_what_counts_as_retryable():
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.orm.exc import StaleDataError

    assert is_retryable(driver_error("40001")) and is_retryable(driver_error("40P01"))
    assert is_retryable(StaleDataError("version mismatch"))
    assert is_retryable(OperationalError("BEGIN", {}, Exception("database is locked")))
    assert not is_retryable(OperationalError("BEGIN", {}, Exception("disk I/O error")))
    assert not is_retryable(IntegrityError("INSERT", {}, FakeDriverError("23505")))
    assert not is_retryable(ValueError("x"))


def _person(db: Database) -> int:
    with db.session() as s:
        p = Person(citizen_id="11010519491231002X", name="计数", sex="F", birth_date=date(1949, 12, 31),
                   area_code="110105", created_at=datetime(2026, 1, 5, tzinfo=UTC))
        s.add(p)
        s.flush()
        return p.id


def test_two_threads_incrementing_one_row_end_with_the_exact_total(db):
    pid = _person(db)
    per_thread = 25
    errors: list[BaseException] = []

    def increment(session):
        person = session.get(Person, pid)  # read ...
        person.query_pw_failures += 1  # ... modify, write: a lost update unless serialized

    def worker():
        try:
            for _ in range(per_thread):
                db.run(increment)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with db.session() as s:
        assert s.get(Person, pid).query_pw_failures == 2 * per_thread


def test_a_forced_write_conflict_on_postgresql_is_retried(db, caplog):
    """Both transactions read before either writes: SERIALIZABLE fails one, run() retries it.

    (SQLite takes its write lock at BEGIN, so there the second simply waits: nothing to force.)"""
    if db.dialect != "postgresql":
        pytest.skip("SQLite serializes writers at BEGIN IMMEDIATE; the race cannot happen there")
    caplog.set_level(logging.DEBUG, logger="sscard.db")
    pid = _person(db)
    both_read = threading.Barrier(2, timeout=10)
    first_attempt = threading.local()
    errors: list[BaseException] = []

    def increment(session):
        person = session.get(Person, pid)
        if not getattr(first_attempt, "done", False):
            first_attempt.done = True
            both_read.wait()
        person.query_pw_failures += 1
        session.flush()

    def worker():
        try:
            db.run(increment)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with db.session() as s:
        assert s.get(Person, pid).query_pw_failures == 2
    assert any("retrying transaction" in r.getMessage() for r in caplog.records)
