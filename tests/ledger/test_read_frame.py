"""The frame of declared reads (`Database.read`, services.operation.query): on PostgreSQL a read runs on a
pooled connection without SQLAlchemy's Session around it, a read of one statement in autocommit (one round
trip), a read of several in one REPEATABLE READ snapshot; a read whose connection is found broken runs
again on a new one. On SQLite (and wherever it runs) a read of several statements sees one snapshot."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text, update

from sscard.db import Database, _DriverReads
from sscard.models.foundation import Person
from sscard.services import banking, cards, lookup

from .helpers import activated

REPEATABLE_READ = 3  # psycopg.IsolationLevel.REPEATABLE_READ


@pytest.fixture
def sent(monkeypatch) -> list[tuple[bool, object, int]]:
    """Each statement a read sends on the driver: (autocommit, isolation level, transaction status)."""
    seen: list[tuple[bool, object, int]] = []
    monkeypatch.setattr(_DriverReads, "sent", staticmethod(
        lambda driver, _stmt: seen.append((driver.autocommit, driver.isolation_level, driver.info.transaction_status))))
    return seen


def _postgres(app) -> None:
    if app.db.dialect != "postgresql":
        pytest.skip("the driver-level read frame is PostgreSQL's")


def test_a_staff_lookup_by_citizen_id_or_card_number_is_one_autocommit_statement(city, app, sent):
    _postgres(app)
    card = activated(city, "查询")
    clerk = city.actor("clerk")
    for _ in range(2):  # the first and the later ones alike
        sent.clear()
        assert cards.find_person(app, clerk, citizen_id=card.citizen_id)["id"] == card.person_id
        assert sent == [(True, sent[0][1], 0)]  # autocommit, no transaction: one round trip, no BEGIN or COMMIT
        sent.clear()
        assert cards.card_status(app, clerk, card.card_number)["bank"]["pan"].endswith(card.pan[-4:])
        assert len(sent) == 1 and sent[0][0] is True
        sent.clear()
        assert cards.find_person(app, clerk, card_number=card.card_number)["id"] == card.person_id
        assert len(sent) == 1 and sent[0][0] is True


def test_a_statement_of_several_statements_runs_them_in_one_repeatable_read_transaction(city, app, sent):
    _postgres(app)
    card = activated(city, "对账", opening_fen=10_000)
    teller = city.actor("teller")
    banking.statement(app, teller, card.pan, limit=5)  # (the first teaches the frame that it reads several)
    sent.clear()
    out = banking.statement(app, teller, card.pan, limit=5)
    assert [e["amount_fen"] for e in out["entries"]] == [10_000] and out["balance_fen"] == 10_000
    assert len(sent) == 3  # the account and its sums, one month's transfers, their other sides
    assert all(autocommit is False and level == REPEATABLE_READ for autocommit, level, _status in sent)
    assert sent[0][2] == 0 and all(status != 0 for _a, _l, status in sent[1:])  # one transaction from the first


def test_a_read_of_several_statements_sees_one_snapshot(city, app):
    """A change committed between two statements of one read is not seen by the second (both databases)."""
    _pid, cid = city.new_person("快照")
    renamed = iter(range(100))

    def work(reads):
        first = reads.rows(lookup._PERSON_FACTS, {"number": cid})[0].name
        with app.db.session() as s:  # another transaction commits in between
            s.execute(update(Person).where(Person.citizen_id == cid).values(name=f"改名{next(renamed)}"))
        return first, reads.rows(lookup._PERSON_FACTS, {"number": cid})[0].name

    for _ in range(2):
        first, second = app.db.read(work, shape="test.snapshot")
        assert first == second


@pytest.mark.parametrize("shape", ["one statement", "several"])
def test_a_read_that_finds_its_connection_broken_runs_again_on_a_new_one(city, app, shape, caplog):
    _postgres(app)
    _pid, cid = city.new_person("断线")
    db = Database(app.db.url, pool_size=1)  # one pooled connection: the next read takes the one killed
    try:
        pids: list[int] = []

        def work(reads):
            found = reads.rows(lookup._PERSON_FACTS, {"number": cid})
            if shape == "several":
                found = reads.rows(lookup._PERSON_FACTS, {"number": cid})
            return found

        def pid_of(driver, _stmt):
            pids.append(driver.info.backend_pid)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_DriverReads, "sent", staticmethod(pid_of))
            assert db.read(lambda r: r.rows(lookup._PERSON_FACTS, {"number": cid}), shape=shape)[0].name == "断线"
            assert db.read(work, shape=shape)[0].name == "断线"
            killed = pids[-1]
            with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": killed})
            assert db.read(work, shape=shape)[0].name == "断线"
        assert pids[-1] != killed  # run again on a new connection
        assert "database connection lost" in caplog.text  # (the killed one was taken, and found broken)
        with db.engine.connect() as conn:  # and the broken one left the pool
            assert conn.execute(select(text("1"))).scalar() == 1
    finally:
        db.dispose()


def test_a_card_read_as_one_row_answers_as_the_orm_view_of_it(city, app):
    """`card.status` (the card's five sides as one plain row) answers as `card_view` over ORM objects does,
    booleans and datetimes included, for a card not yet activated and one activated (both databases)."""
    from sscard.models.foundation import Card
    from sscard.services.operation import jsonable

    clerk = city.actor("clerk")
    for card in (city.issued_card(name="行一"), activated(city, "行二")):
        answer = cards.card_status(app, clerk, card.card_number)
        with app.db.session() as s:
            orm = s.scalar(select(Card).where(Card.card_number == card.card_number))
            view = cards.card_view(s, orm, app.clock.now(), masked=True,
                                   seal_days=app.policy.card.uncollected_seal_days)
        assert answer == jsonable(view)
        assert answer["ss_password"]["initial"] is True
