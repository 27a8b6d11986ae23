"""Each transfer records, for each side, the day of that account's previous transfer (migration 0018), and a
statement follows those days back one month, one partition, per query (`ledger.history_by_months`).

Over random histories on both databases (several transfers of one account in one transaction, weeks or
years between them, a clock set back, transfers written before 0018 with no prev day), the walk answers
every page of every size exactly as one query over all months does, or, for an account marked out of
order, exactly as the walk before 0018 did; `ledger.check_invariants` holds. Then what it saves: a sparse
account's statement reads the months that hold its transfers, one partition each, where the walk before
0018 read every month since the account was opened; and what keeps it honest: the check reports a wrong
prev day, a missing one and an unmarked account written out of order."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
from datetime import UTC, date, datetime, timedelta
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from sscard.core.clock import shanghai_day
from sscard.core.roles import SYSTEM_ACTOR
from sscard.db import session_rows
from sscard.models.ledger import NO_EARLIER_DAY
from sscard.services import ledger, partitions
from sscard.services.book import Book, book_of
from sscard.services.operation import Op

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
_names = itertools.count()

# a transaction of one to three transfers among three accounts (debit, credit, amount in fen), a wait of
# some days (up to a quarter), a clock set back some days (a write out of order: never before the start)
_move = st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(1, 5_000))
step = st.one_of(
    st.tuples(st.just("txn"), st.lists(_move, min_size=1, max_size=3)),
    st.tuples(st.just("wait"), st.integers(0, 90)),
    st.tuples(st.just("back"), st.integers(1, 45)),
)


def _accounts(app, n: int) -> list[int]:
    """n new accounts (system accounts: they may go below zero, so any transfer among them is allowed)."""
    with app.db.session() as s:
        return [ledger.system_account(s, f"chain:{next(_names)}", now=app.clock.now()) for _ in range(n)]


def _transfer(app, s, debit: int, credit: int, amount: int) -> None:
    ledger.transfer(Op(app, s, SYSTEM_ACTOR, "test.chain", None), debit, credit, amount, "test")


def _legacy_link(self, row, logging) -> None:
    """The book before migration 0018: no prev days."""
    row["debit_prev_day"] = row["credit_prev_day"] = None


def _migrate_0018(app) -> None:
    """What migration 0018 does to the transfers already there: mark the accounts written out of order."""
    migration = importlib.import_module("sscard.migrations.versions.0018_transfer_chain")
    with app.db.engine.begin() as conn:
        conn.execute(text(migration.mark_out_of_order(app.db.dialect)))


def _pages(app, account_id: int, limit: int, by_months: bool) -> list[list[int]]:
    """Every page of the account's history (ids), paged by `before_id`: by months, or in one query."""
    pages, before = [], None
    today = shanghai_day(app.clock.now()) if by_months else None
    while True:
        with app.db.session() as s:
            ids = [r.id for r in ledger.history(s, account_id, limit=limit, before_id=before, today=today)]
        pages.append(ids)
        if len(ids) < limit:
            return pages
        before = ids[-1]


def _pages_as_before(app, account_id: int, limit: int) -> list[list[int]]:
    """Every page as the walk before 0018 answered it (months, two months, the rest)."""
    pages, before = [], None
    with app.db.session() as s:
        opened, newest = s.execute(select(ledger.ACCOUNTS.c.created_at, ledger.ACCOUNTS.c.last_transfer_day)
                                   .where(ledger.ACCOUNTS.c.id == account_id)).one()
        while True:
            ids = [r.id for r in ledger._by_months_as_before(session_rows(s), account_id, limit=limit,
                                                              before_id=before, opened=opened, newest=newest)] \
                if newest else []
            pages.append(ids)
            if len(ids) < limit:
                return pages
            before = ids[-1]


@SETTINGS
@given(steps=st.lists(step, min_size=6, max_size=24), legacy=st.integers(0, 3))
def test_the_walk_by_prev_days_answers_as_one_query_over_all_months(app, clock, steps, legacy):
    """The first `legacy` transactions are written as before 0018 (NULL prev days): a walk that reaches
    one reads the rest in one query, with the same answer."""
    start = clock.now()
    accounts = _accounts(app, 3)
    done, migrated = 0, legacy == 0
    for kind, arg in steps:
        if kind == "txn" and done == legacy and not migrated:
            _migrate_0018(app)  # what the migration marks, between the last write before it and the first after
            migrated = True
        if kind == "wait":
            clock.advance(days=arg)
        elif kind == "back":
            clock.set(max(start, clock.now() - timedelta(days=arg)))
        else:
            def write(s, arg=arg) -> None:
                for debit, credit, amount in arg:
                    if debit != credit:
                        _transfer(app, s, accounts[debit], accounts[credit], amount)

            with mock.patch.object(Book, "_link", _legacy_link) if done < legacy else contextlib.nullcontext():
                # retried whole on a serialization failure, as every writer of the app is (one failed here
                # once, SSI "pivot, during write", against a transaction of the app's own background work)
                app.db.run(write)
            done += 1
    if not migrated:
        _migrate_0018(app)
    with app.db.session() as s:
        report = ledger.check_invariants(s)
        marked = set(s.scalars(select(ledger.ACCOUNTS.c.id).where(ledger.ACCOUNTS.c.id.in_(accounts),
                                                                  ledger.ACCOUNTS.c.out_of_order)))
    assert report["ok"], report["problems"]
    for account_id in accounts:
        every = _pages(app, account_id, 1000, by_months=False)[0]
        assert sorted(_pages(app, account_id, 1000, by_months=True)[0]) == sorted(every)  # none left out
        for limit in (1, 2, 3, 5, 8):
            walked = _pages(app, account_id, limit, by_months=True)
            if account_id in marked:  # written out of month order: read as before 0018, the same answer
                assert walked == _pages_as_before(app, account_id, limit), (account_id, limit)
            else:
                assert walked == _pages(app, account_id, limit, by_months=False), (account_id, limit)


def test_transfers_of_one_account_in_one_transaction_each_follow_the_one_before(app, clock):
    """In one transaction (a group-commit batch is one too) each transfer's prev day is the day of the
    transfer the book recorded before it, not the day stored when the transaction began; one undone by
    a rollback to a mark (a refused linked transfer) leaves no trace in the next one's."""
    a, b, c = _accounts(app, 3)
    with app.db.session() as s:
        _transfer(app, s, a, b, 100)
        s.commit()
    first = shanghai_day(clock.now())
    clock.advance(days=40)
    with app.db.session() as s:
        _transfer(app, s, a, b, 200)  # a's and b's second
        second = shanghai_day(clock.now())
        clock.advance(days=3)
        book = book_of(s)
        mark = book.mark()
        clock.advance(days=30)
        _transfer(app, s, a, c, 300)  # undone below: its day must not be anyone's prev day
        book.rollback(mark)
        clock.set(clock.now() - timedelta(days=30))
        _transfer(app, s, b, a, 400)  # a's and b's third, three days after the second
        third = shanghai_day(clock.now())
        _transfer(app, s, c, a, 500)  # c's first, a's fourth (the same day)
        s.commit()
    with app.db.session() as s:
        rows = s.execute(select(ledger.TRANSFERS).where(ledger.TRANSFERS.c.debit_account_id.in_([a, b, c]))
                         .order_by(ledger.TRANSFERS.c.id)).all()
        assert [(r.amount, r.debit_prev_day, r.credit_prev_day) for r in rows] == [
            (100, NO_EARLIER_DAY, NO_EARLIER_DAY),
            (200, first, first),
            (400, second, second),
            (500, NO_EARLIER_DAY, third),
        ]
        assert ledger.check_invariants(s)["ok"]


def test_a_write_into_an_earlier_month_marks_the_account_and_its_statement_reads_as_before(app, clock):
    """A transfer dated in an earlier month than one written before it (a clock set back across a
    month's end) breaks what the prev days rely on: the book marks that account out of order (not the
    other side, whose first transfer it is), the check agrees, and its history is read by months as before
    0018, with every transfer in it."""
    a, b, c = _accounts(app, 3)
    clock.set(datetime(2026, 3, 2, 4, 0, tzinfo=UTC))
    with app.db.session() as s:
        _transfer(app, s, a, b, 100)
        s.commit()
    clock.set(datetime(2026, 2, 27, 4, 0, tzinfo=UTC))  # February, after March: out of order for a
    with app.db.session() as s:
        _transfer(app, s, c, a, 200)
        s.commit()
    clock.set(datetime(2026, 3, 5, 4, 0, tzinfo=UTC))
    with app.db.session() as s:
        _transfer(app, s, b, c, 300)  # in order for b and c
        s.commit()
    with app.db.session() as s:
        assert ledger.check_invariants(s)["ok"]
        marked = dict(s.execute(select(ledger.ACCOUNTS.c.id, ledger.ACCOUNTS.c.out_of_order)
                                .where(ledger.ACCOUNTS.c.id.in_([a, b, c]))).all())
    assert marked == {a: True, b: False, c: False}
    for account_id in (a, b, c):
        for limit in (1, 2, 5):
            assert _pages(app, account_id, limit, by_months=True) == _pages_as_before(app, account_id, limit)
        assert sorted(_pages(app, account_id, 50, by_months=True)[0]) == sorted(
            _pages(app, account_id, 50, by_months=False)[0])


def _relations(plan) -> set[str]:
    """The tables a plan (EXPLAIN's JSON) reads."""
    found = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= _relations(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _relations(value)
    return found


def _reads(app, s, statement, params) -> set[str]:
    """The partitions of ledger_transfers that PostgreSQL plans to read for one query of the walk (the
    planner prunes with the month bounds as given; a prepared statement's generic plan would prune at
    execution instead, to the same partitions)."""
    compiled = statement.compile(dialect=s.get_bind().dialect)
    plan = s.connection().exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}",
                                          compiled.construct_params(params)).scalar()
    return {r for r in _relations(json.loads(plan) if isinstance(plan, str) else plan) if r.startswith("ledger_transfers")}


@contextlib.contextmanager
def _own_months(app, first: date, n: int):
    """On PostgreSQL, n monthly partitions of ledger_transfers from `first`, made for a test's far-future
    months and dropped at its end (they hold only its rows); nothing on SQLite."""
    postgres = app.db.dialect == "postgresql"
    spec = next(t for t in partitions.TABLES if t.table == "ledger_transfers")
    months = [partitions.add_months(first, k) for k in range(n)]
    if postgres:
        with app.db.engine.begin() as conn:
            for month in months:
                partitions.create_partition(conn, spec, month)
    try:
        yield months
    finally:
        if postgres:
            with app.db.engine.begin() as conn:
                for month in months:
                    conn.execute(text(f'DROP TABLE IF EXISTS "{spec.partition(month)}"'))


def _credited_at(app, clock, times: list[datetime]) -> tuple[int, datetime, date]:
    """A new account credited once at each of `times`, in order: its id, when its ledger row was opened
    and the day of its newest transfer."""
    account, other = _accounts(app, 2)
    for when in times:
        clock.set(when)
        with app.db.session() as s:
            _transfer(app, s, other, account, 1_000)
            s.commit()
    with app.db.session() as s:
        opened, newest = s.execute(select(ledger.ACCOUNTS.c.created_at, ledger.ACCOUNTS.c.last_transfer_day)
                                   .where(ledger.ACCOUNTS.c.id == account)).one()
    return account, opened, newest


def test_a_sparse_account_reads_one_partition_for_each_month_it_moved_in(app, clock):
    """An account that moved in three months of three years: the walk by prev days sends three queries,
    each bounded by one month (on PostgreSQL: one partition each, three in all), where the walk before
    0018 sent three queries, the third over every month since the account was opened (thirty-odd
    partitions planned and probed)."""
    clock.set(datetime(2041, 1, 10, 4, 0, tzinfo=UTC))
    postgres = app.db.dialect == "postgresql"
    with _own_months(app, date(2041, 1, 1), 40):
        sparse, opened, newest = _credited_at(app, clock, [datetime(2041, 1, 10, 4, 0, tzinfo=UTC),
                                                           datetime(2042, 8, 3, 4, 0, tzinfo=UTC),
                                                           datetime(2043, 11, 20, 4, 0, tzinfo=UTC)])
        clock.set(datetime(2043, 12, 30, 4, 0, tzinfo=UTC))
        with app.db.session() as s:
            asked: dict[str, list[dict]] = {"walk": [], "before": []}
            statements: dict[str, list] = {"walk": [], "before": []}

            def recorder(way):
                def rows(statement, params):
                    asked[way].append(dict(params))
                    statements[way].append(statement)
                    return session_rows(s)(statement, params)
                return rows

            walked = ledger.history_by_months(recorder("walk"), sparse, limit=5, before_id=None, opened=opened,
                                              newest=newest, out_of_order=False)
            before = ledger._by_months_as_before(recorder("before"), sparse, limit=5, before_id=None,
                                                 opened=opened, newest=newest)
            assert [r.id for r in walked] == [r.id for r in before] and len(walked) == 3

            def span(params) -> int:  # months from lower up to the day before upper
                last = params["upper"] - timedelta(days=1)
                return (last.year - params["lower"].year) * 12 + last.month - params["lower"].month + 1

            assert [span(p) for p in asked["walk"]] == [1, 1, 1]
            assert [p["lower"] for p in asked["walk"]] == [date(2043, 11, 1), date(2042, 8, 1), date(2041, 1, 1)]
            assert [span(p) for p in asked["before"]] == [1, 2, 32]  # January 2041 to August 2043
            if postgres:
                walk_reads = [_reads(app, s, st, p) for st, p in zip(statements["walk"], asked["walk"], strict=True)]
                before_reads = [_reads(app, s, st, p) for st, p in zip(statements["before"], asked["before"],
                                                                       strict=True)]
                assert walk_reads == [{"ledger_transfers_p2043_11"}, {"ledger_transfers_p2042_08"},
                                      {"ledger_transfers_p2041_01"}]
                assert [len(r) for r in before_reads][:2] == [1, 2] and len(before_reads[2]) >= 32
        if postgres:
            _one_month_queries_keep_custom_plans(app, sparse, opened, newest)


def test_an_account_that_moved_every_month_is_read_a_doubling_span_of_months_at_a_time(app, clock):
    """A transfer in each of 40 months and a page of 50 (the bank console's): while each step finds the
    month just before the last one read, the walk reads 2, 4, 8, then 12 months at a time; seven queries,
    not forty, and the same answer as one query over all months. A gap starts it again at one month."""
    clock.set(datetime(2051, 1, 10, 4, 0, tzinfo=UTC))
    with _own_months(app, date(2051, 1, 1), 44) as months:
        dense, opened, newest = _credited_at(app, clock, [datetime(m.year, m.month, 5, 4, 0, tzinfo=UTC)
                                                          for m in months[:40]])
        clock.set(datetime(2054, 6, 1, 4, 0, tzinfo=UTC))
        with app.db.session() as s:
            asked: list[dict] = []

            def rows(statement, params):
                asked.append(dict(params))
                return session_rows(s)(statement, params)

            walked = ledger.history_by_months(rows, dense, limit=50, before_id=None, opened=opened, newest=newest,
                                              out_of_order=False)
        assert len(walked) == 40 and len(asked) == 7, asked
        assert [r.id for r in walked] == _pages(app, dense, 50, by_months=False)[0]


def _one_month_queries_keep_custom_plans(app, account_id: int, opened, newest) -> None:
    """On one connection, walks (one-month queries) among histories read as before 0018 (queries over
    many months, as the fallbacks still send): psycopg prepares each statement on its fifth run, and the
    one-month statement stays planned for its parameters, one partition (a custom plan), never planned
    once for all partitions (a generic plan, which a shared statement switched to after a few queries
    over many months: 3 ms of server CPU per history instead of 0.4, measured)."""
    with app.db.engine.connect() as conn:
        rows = session_rows_of(conn)
        for _ in range(10):
            ledger._by_months_as_before(rows, account_id, limit=5, before_id=None, opened=opened, newest=newest)
            ledger.history_by_months(rows, account_id, limit=5, before_id=None, opened=opened, newest=newest,
                                     out_of_order=False)
        plans = conn.exec_driver_sql("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                                     " WHERE statement LIKE '%%FROM ledger_transfers%%'").all()
        conn.rollback()
    month = [p for p in plans if "/* one month */" in p.statement]
    assert month and month[0].custom_plans > 5 and month[0].generic_plans == 0, plans


def session_rows_of(conn):
    from sscard.db import fetch_all

    return lambda statement, params: fetch_all(conn, statement, params)


def test_the_check_reports_a_wrong_prev_day_a_missing_one_and_an_unmarked_account(app, clock):
    """`sscard account check` (ledger.check_invariants) verifies every prev day against the transfers
    written before it, that none is missing after the account's first one that has it, and that an
    account written out of month order is marked: each broken here in turn (the trigger that keeps
    transfers immutable set aside for it, in a transaction rolled back)."""
    a, b = _accounts(app, 2)
    for _ in range(3):
        with app.db.session() as s:
            _transfer(app, s, a, b, 100)
            s.commit()
        clock.advance(days=35)
    with app.db.session() as s:
        assert ledger.check_invariants(s)["ok"]
        last = s.scalar(select(ledger.TRANSFERS.c.id).where(ledger.TRANSFERS.c.debit_account_id == a)
                        .order_by(ledger.TRANSFERS.c.id.desc()).limit(1))
    breaks = {
        "debit prev day": {"debit_prev_day": date(2020, 1, 1)},
        "no credit prev day": {"credit_prev_day": None},
        "not marked out of order": {"day": date(2020, 1, 1), "debit_prev_day": None, "credit_prev_day": None},
    }
    for words, values in breaks.items():
        with app.db.session() as s:
            _without_immutability(s)
            s.execute(ledger.TRANSFERS.update().where(ledger.TRANSFERS.c.id == last).values(**values))
            if "day" in values:  # an older day written last (and no prev days, as before 0018)
                s.execute(ledger.ACCOUNTS.update().where(ledger.ACCOUNTS.c.id.in_([a, b]))
                          .values(last_transfer_day=_newest_day(s, a)))
            report = ledger.check_invariants(s)
            s.rollback()
        assert not report["ok"] and any(words in p for p in report["problems"]), (words, report["problems"])


def _newest_day(s, account_id: int) -> date:
    t = ledger.TRANSFERS.c
    return s.scalar(select(t.day).where((t.debit_account_id == account_id) | (t.credit_account_id == account_id))
                    .order_by(t.day.desc()).limit(1))


def _without_immutability(s) -> None:
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_no_update"))
    else:
        s.execute(text("DROP TRIGGER ledger_transfers_no_update"))
