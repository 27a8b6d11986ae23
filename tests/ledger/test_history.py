"""An account's history looked up month by month (so PostgreSQL reads only the months' partitions) gives
the same answer as one query over every month: an account whose transfers span several months (some
months with several, some with none), one with a single old transfer, one with none; every page size
and page."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select

from sscard.core.clock import shanghai_day
from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.foundation import BankAccount
from sscard.services import banking, ledger

from .helpers import activated


def _ledger_id(app, pan: str) -> int:
    with app.db.session() as s:
        return s.scalar(select(BankAccount.ledger_account_id).where(BankAccount.pan == pan))


def _pages(app, account_id: int, limit: int, today) -> tuple[list[list[int]], list[list[int]]]:
    """Every page of the history, both ways: (one query over all months, month by month)."""
    out: tuple[list[list[int]], list[list[int]]] = ([], [])
    for way, by_month in ((out[0], None), (out[1], today)):
        before = None
        while True:
            with app.db.session() as s:
                ids = [r.id for r in ledger.history(s, account_id, limit=limit, before_id=before, today=by_month)]
            way.append(ids)
            if len(ids) < limit:
                break
            before = ids[-1]
    return out


def test_history_by_month_answers_as_one_query_over_all_months(city, app, clock):
    many = activated(city, "多月")
    once = activated(city, "一次", opening_fen=50_000)
    none = activated(city, "从无")
    for month, credits in enumerate((2, 1, 0, 0, 3, 1, 0, 1)):  # eight months, some empty
        for i in range(credits):
            banking.credit_pension(app, SYSTEM_ACTOR, many.pan, 10_000 + 100 * month + i, period=f"m{month}-{i}")
        clock.advance(days=31)
    today = shanghai_day(clock.now())
    every = {pan: _ledger_id(app, pan) for pan in (many.pan, once.pan, none.pan)}
    with app.db.session() as s:
        days = {r.day.replace(day=1) for r in ledger.history(s, every[many.pan], limit=200)}
    assert len(days) >= 5  # spread over five months or more, with gaps
    for pan, account_id in every.items():
        for limit in (1, 2, 3, 5, 20):
            whole, by_month = _pages(app, account_id, limit, today)
            assert by_month == whole, (pan, limit)
    assert _pages(app, every[none.pan], 5, today) == ([[]], [[]])
    assert _pages(app, every[once.pan], 5, today)[1] == [[_single(app, every[once.pan])]]

    # the statement pages the same way, through the teller
    teller = city.actor("teller")
    first = banking.statement(app, teller, many.pan, limit=4)
    second = banking.statement(app, teller, many.pan, limit=4, before_id=first["next_before_id"])
    with app.db.session() as s:
        expected = [r.id for r in ledger.history(s, every[many.pan], limit=8)]
    assert [e["id"] for e in first["entries"] + second["entries"]] == expected


def _single(app, account_id: int) -> int:
    with app.db.session() as s:
        return s.scalar(select(ledger.TRANSFERS.c.id).where(ledger.TRANSFERS.c.credit_account_id == account_id))


def test_history_by_month_names_its_months_in_every_query(city, app, clock):
    """Every query of the transfers names a lower bound on `day` (what lets PostgreSQL prune partitions)."""
    card = activated(city, "剪枝", opening_fen=10_000)
    clock.advance(days=70)
    account_id = _ledger_id(app, card.pan)
    seen: list[str] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if "FROM ledger_transfers" in statement:
            seen.append(statement)

    event.listen(app.db.engine, "before_cursor_execute", note)
    try:
        with app.db.session() as s:
            rows = ledger.history(s, account_id, limit=5, today=shanghai_day(clock.now()))
    finally:
        event.remove(app.db.engine, "before_cursor_execute", note)
    assert len(rows) == 1 and seen and all("ledger_transfers.day >=" in q for q in seen)


def test_an_idle_account_is_found_in_the_month_of_its_newest_transfer(city, app, clock):
    """The book keeps each account's last_transfer_day with its sums, so the statement of an account idle
    for months reads one month's transfers (one query, bounded by that month), not every month since;
    `sscard account check` verifies the day against the transfers and reports a wrong one."""
    card = activated(city, "久未动", opening_fen=10_000)
    account_id = _ledger_id(app, card.pan)
    opened_day = shanghai_day(clock.now())
    clock.advance(days=200)
    with app.db.session() as s:
        kept = s.scalar(select(ledger.ACCOUNTS.c.last_transfer_day).where(ledger.ACCOUNTS.c.id == account_id))
    assert kept == opened_day
    seen: list[tuple[str, object]] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if "FROM ledger_transfers" in statement:
            seen.append((statement, parameters))

    event.listen(app.db.engine, "before_cursor_execute", note)
    try:
        out = banking.statement(app, city.actor("teller"), card.pan, limit=5)
    finally:
        event.remove(app.db.engine, "before_cursor_execute", note)
    assert [e["amount_fen"] for e in out["entries"]] == [10_000]
    assert len(seen) == 1, seen  # one month's query found it: no probing of the 200 days since
    bound = opened_day.replace(day=1)
    given = seen[0][1].values() if isinstance(seen[0][1], dict) else seen[0][1]
    for day in (bound, opened_day + timedelta(days=1)):  # from its month, up to its day: no later partition
        assert day in given or day.isoformat() in given, (day, given)  # (SQLite binds dates as text)

    # a pension today moves the day on; the check agrees, and refuses a day that is wrong
    banking.credit_pension(app, SYSTEM_ACTOR, card.pan, 20_000, period="idle-1")
    with app.db.session() as s:
        assert s.scalar(select(ledger.ACCOUNTS.c.last_transfer_day).where(ledger.ACCOUNTS.c.id == account_id)) \
            == shanghai_day(clock.now())
        assert ledger.check_invariants(s)["ok"]
        s.execute(ledger.ACCOUNTS.update().where(ledger.ACCOUNTS.c.id == account_id)
                  .values(last_transfer_day=opened_day))
        report = ledger.check_invariants(s)
        s.rollback()
    assert not report["ok"] and any("last transfer day" in p for p in report["problems"])
