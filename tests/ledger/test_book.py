"""The ledger book (services/book.py): what a transaction records in memory is exactly what it writes,
and a rollback to a mark restores exactly what was there at the mark.

Property tests over random sequences of recordings, marks, rollbacks and releases, on both databases;
each example runs in its own transaction, which is rolled back at the end."""

from __future__ import annotations

import copy
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from sscard.models.ledger import LedgerAccount, LimitUsage
from sscard.services import ledger
from sscard.services.book import book_of

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
DAY = date(2026, 1, 5)

record = st.one_of(
    st.tuples(st.just("transfer"), st.integers(0, 3), st.integers(0, 3), st.integers(1, 10_000), st.booleans()),
    st.tuples(st.just("usage"), st.integers(0, 3), st.sampled_from(["payment", "transfer"]), st.integers(1, 500)),
    st.tuples(st.just("close"), st.integers(0, 3)),
    st.tuples(st.just("mark")),
    st.tuples(st.just("rollback")),
    st.tuples(st.just("release")),
)


def _accounts(app, n: int = 4) -> list[int]:
    with app.db.session() as s:
        return [ledger.system_account(s, f"merchant:BOOK-{i}", now=app.clock.now()) for i in range(n)]


def _state(book) -> dict:
    return copy.deepcopy({
        "accounts": {i: (a.sums(), a.closed) for i, a in book.accounts.items()},
        "deltas": book._deltas, "usage": book._usage, "usage_delta": book._usage_delta,
        "transfers": book._transfers, "new_ids": book._new_ids, "closing": book._closing, "changes": book.changes,
    })


def _apply(book, ids, step, n: int, now=None) -> None:
    kind = step[0]
    if kind == "transfer":
        _, d, c, amount, pending = step
        debit, credit = ids[d], ids[(c if c != d else d + 1) % len(ids)]
        posted, held = (0, amount) if pending else (amount, 0)
        book.add_transfer({"transfer_id": f"t{n}", "kind": "pending" if pending else "posted",
                           "debit_account_id": debit, "credit_account_id": credit, "amount": amount,
                           "pending_id": None, "timeout_at": None, "code": "test", "ref": "", "chain": "",
                           "limit_kind": None, "day": DAY, "created_at": now},
                          {debit: (posted, 0, held, 0), credit: (0, posted, 0, held)})
    elif kind == "usage":
        _, i, limit_kind, amount = step
        book.add_usage(ids[i], DAY, limit_kind, amount)
    elif kind == "close":
        book.close(ids[step[1]])


@SETTINGS
@given(steps=st.lists(record, max_size=30))
def test_a_rollback_to_a_mark_restores_exactly_what_the_book_held_at_the_mark(app, steps):
    ids = _accounts(app)
    with app.db.sessions() as s, s.begin():
        book = book_of(s)
        book.load(ids)
        marks: list[tuple[int, dict]] = []
        for n, step in enumerate(steps):
            if step[0] == "mark":
                marks.append((book.mark(), _state(book)))
            elif step[0] == "rollback" and marks:
                mark, at_mark = marks.pop()
                book.rollback(mark)
                assert _state(book) == at_mark
            elif step[0] == "release" and marks:
                book.release(marks.pop()[0])
            else:
                _apply(book, ids, step, n)
        while marks:
            mark, at_mark = marks.pop()
            book.rollback(mark)
            assert _state(book) == at_mark
        s.rollback()


@SETTINGS
@given(steps=st.lists(record.filter(lambda step: step[0] in ("transfer", "usage", "close")), max_size=25))
def test_what_the_book_holds_is_what_it_writes(app, steps):
    ids = _accounts(app)
    with app.db.sessions() as s, s.begin():
        book = book_of(s)
        book.load(ids)
        for n, step in enumerate(steps):
            _apply(book, ids, step, n, app.clock.now())
        expected = {i: (book.accounts[i].sums(), book.accounts[i].closed) for i in ids}
        usage = {key: used for key, used in book._usage.items() if key[0] in ids}
        book.flush()
        rows = s.execute(select(LedgerAccount).where(LedgerAccount.id.in_(ids))).scalars().all()
        assert {r.id: ((r.debits_posted, r.credits_posted, r.debits_pending, r.credits_pending), r.closed)
                for r in rows} == expected
        stored = {(u.ledger_account_id, u.day, u.kind): u.used_fen
                  for u in s.execute(select(LimitUsage).where(LimitUsage.ledger_account_id.in_(ids))).scalars()}
        assert stored == usage
        s.rollback()


def test_a_flush_inside_a_linked_section_is_refused(app):
    ids = _accounts(app, 2)
    with app.db.sessions() as s, s.begin():
        book = book_of(s)
        book.mark()
        try:
            book.flush()
        except RuntimeError as exc:
            assert "linked" in str(exc)
        else:
            raise AssertionError("a flush inside a marked section must be refused")
        s.rollback()
    assert ids


def test_the_book_is_written_when_the_transaction_commits_and_forgotten_after(app):
    ids = _accounts(app, 2)
    with app.db.sessions() as s:
        with s.begin():
            book = book_of(s)
            book.add_transfer({"transfer_id": "commit-1", "kind": "posted", "debit_account_id": ids[0],
                               "credit_account_id": ids[1], "amount": 250, "pending_id": None, "timeout_at": None,
                               "code": "test", "ref": "", "chain": "", "limit_kind": None, "day": DAY,
                               "created_at": app.clock.now()}, {ids[0]: (250, 0, 0, 0), ids[1]: (0, 250, 0, 0)})
        assert "sscard_book" not in s.info  # the next transaction reads afresh
        with s.begin():
            assert ledger.balance(s, ids[1]).posted == 250
            assert ledger.balance(s, ids[0]).posted == -250
    with app.db.session() as s:
        assert ledger.check_invariants(s)["ok"]  # the stored row agrees with the stored sums
