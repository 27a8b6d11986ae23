"""The group-commit writer's own rules, driven deterministically: a batch is built by hand and given to
the writer's `_process` in the test's thread, so which requests share a transaction is certain.

The writer first assumes every idempotency key is new and lets the unique index find the retries;
these tests pin down each way a retry can come back and must still get its first answer."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text

from sscard.core.errors import SscardError
from sscard.models.foundation import AuditRecord, IdempotencyRecord
from sscard.models.ledger import LedgerTransfer
from sscard.services import banking, batching
from sscard.services.batching import _Request
from sscard.services.operation import Request

from .helpers import PIN, activated, balance_of, invariants, terminal

_APP: list = []  # the test's App (a request's fingerprint is keyed with its secret key)


@pytest.fixture(autouse=True)
def _the_app(app):
    _APP[:] = [app]
    yield
    _APP.clear()


def _req(op_fn, actor, *args, key=None, **kwargs) -> _Request:
    return _Request(Request(_APP[0], op_fn, actor, args, kwargs, key))


def _run(app, *reqs: _Request) -> list:
    """Process these requests as ONE batch; the answers in order (an exception instance for a refusal)."""
    writer = batching.batcher(app)
    writer._process(list(reqs))
    return [r.answer for r in reqs]


def _count(app, model, **where) -> int:
    with app.db.session() as s:
        q = select(func.count()).select_from(model)
        for name, value in where.items():
            q = q.where(getattr(model, name) == value)
        return s.scalar(q)


@pytest.fixture
def pos(city):
    return terminal(city, "POS-1")


def test_a_batch_commits_every_payment_with_one_transfer_audit_and_key_each(city, app, pos):
    card = activated(city, opening_fen=10_000)
    answers = _run(app, *[_req(banking.purchase, pos, card.pan, 100 * (i + 1), PIN, key=f"k{i}") for i in range(5)])
    assert [a["amount_fen"] for a in answers] == [100, 200, 300, 400, 500]
    # each request saw the ones before it in the same transaction
    assert [a["balance_fen"] for a in answers] == [9_900, 9_700, 9_400, 9_000, 8_500]
    assert balance_of(app, card.pan) == 8_500
    assert _count(app, LedgerTransfer, code="payment") == 5
    assert _count(app, AuditRecord, operation="bank.purchase") == 5
    assert _count(app, IdempotencyRecord) >= 5
    assert invariants(app)["ok"]


def test_a_retried_payment_in_a_later_batch_is_answered_from_its_key_not_paid_twice(city, app, pos):
    card = activated(city, opening_fen=10_000)
    first = _run(app, _req(banking.purchase, pos, card.pan, 700, PIN, key="pay-1"))[0]
    other = activated(city, name="李四", opening_fen=10_000)
    # the retry shares a batch with a new payment: the unique index refuses the stored key, and the
    # batch runs again reading the stored answers first
    retry, fresh = _run(app, _req(banking.purchase, pos, card.pan, 700, PIN, key="pay-1"),
                        _req(banking.purchase, pos, other.pan, 300, PIN, key="pay-2"))
    assert retry == first
    assert fresh["balance_fen"] == 9_700
    assert balance_of(app, card.pan) == 9_300
    assert _count(app, LedgerTransfer, code="payment") == 2
    assert invariants(app)["ok"]


def test_a_retried_capture_whose_rerun_would_refuse_gets_its_first_answer(city, app, pos):
    """A rerun of an answered capture refuses (pending_already_resolved) without storing anything, so
    the unique index cannot catch it: the writer must read the stored answers."""
    card = activated(city, opening_fen=10_000)
    hold = _run(app, _req(banking.authorize_payment, pos, card.pan, 2_000, PIN, key="auth-1"))[0]
    captured = _run(app, _req(banking.capture_payment, pos, hold["transfer_id"], key="cap-1"))[0]
    again = _run(app, _req(banking.capture_payment, pos, hold["transfer_id"], key="cap-1"))[0]
    assert again == captured
    fresh_key = _run(app, _req(banking.capture_payment, pos, hold["transfer_id"], key="cap-2"))[0]
    assert isinstance(fresh_key, SscardError) and fresh_key.code == "pending_already_resolved"
    assert balance_of(app, card.pan) == 8_000


def test_a_key_reused_with_another_body_is_refused_and_changes_nothing(city, app, pos):
    card = activated(city, opening_fen=10_000)
    _run(app, _req(banking.purchase, pos, card.pan, 100, PIN, key="same"))
    reused = _run(app, _req(banking.purchase, pos, card.pan, 999, PIN, key="same"))[0]
    assert isinstance(reused, SscardError) and reused.code == "idempotency_key_reused"
    assert balance_of(app, card.pan) == 9_900


def test_twins_in_one_batch_pay_once_and_get_the_same_answer(city, app, pos):
    card = activated(city, opening_fen=10_000)
    a, b = _run(app, _req(banking.purchase, pos, card.pan, 500, PIN, key="twin"),
                _req(banking.purchase, pos, card.pan, 500, PIN, key="twin"))
    assert a == b
    assert balance_of(app, card.pan) == 9_500
    assert _count(app, LedgerTransfer, code="payment") == 1


def test_refusals_in_a_batch_leave_the_other_requests_and_the_ledger_exact(city, app, pos):
    rich = activated(city, opening_fen=10_000)
    poor = activated(city, name="李四", opening_fen=50)
    ok, short, wrong, unknown = _run(
        app,
        _req(banking.purchase, pos, rich.pan, 1_000, PIN, key="r"),
        _req(banking.purchase, pos, poor.pan, 1_000, PIN, key="p"),  # after the PIN: committed refusal
        _req(banking.purchase, pos, rich.pan, 1_000, "000000", key="w"),  # PIN counter kept
        _req(banking.purchase, pos, "6222020000000000000", 1_000, PIN, key="u"),  # refused before any write
    )
    assert ok["balance_fen"] == 9_000
    assert short.code == "insufficient_funds" and wrong.code == "wrong_pin" and unknown.code == "account_not_found"
    assert balance_of(app, rich.pan) == 9_000 and balance_of(app, poor.pan) == 50
    # the committed refusals are answered again from their keys; the first PIN miss stays counted
    again = _run(app, _req(banking.purchase, pos, poor.pan, 1_000, PIN, key="p"),
                 _req(banking.purchase, pos, rich.pan, 1_000, "000000", key="w"))
    assert [e.code for e in again] == ["insufficient_funds", "wrong_pin"]
    with app.db.session() as s:
        from sscard.models.foundation import BankAccount

        assert s.scalar(select(BankAccount.pin_failures).where(BankAccount.pan == rich.pan)) == 1
    assert invariants(app)["ok"]


def test_a_request_that_fails_unexpectedly_is_answered_alone_and_the_rest_commit(city, app, pos, monkeypatch):
    card = activated(city, opening_fen=10_000)

    def broken(op, *args, **kwargs):
        raise RuntimeError("a bug")

    bad = _req(banking.purchase, pos, card.pan, 1, PIN, key="bad")
    bad.frame.fn = broken
    good = _req(banking.purchase, pos, card.pan, 400, PIN, key="good")
    bad_answer, good_answer = _run(app, bad, good)
    # run alone through the ordinary frame, by the writer after the batch: its caller raises the bug
    assert isinstance(bad_answer, RuntimeError) and str(bad_answer) == "a bug"
    assert good_answer["balance_fen"] == 9_600
    assert _count(app, LedgerTransfer, code="payment") == 1


def test_a_transfer_in_a_batch_to_a_card_not_yet_activated_opens_its_ledger_account(city, app):
    """The batch reads accounts as read-only views; the first credit to a card never activated must
    create its ledger account on the real object (and the answer must see it)."""
    from sscard.models.foundation import BankAccount

    atm = terminal(city, "ATM-GSB-1")
    payer = activated(city, opening_fen=10_000)
    newcomer = city.issued_card(name="王五")
    with app.db.session() as s:
        assert s.scalar(select(BankAccount.ledger_account_id).where(BankAccount.pan == newcomer.pan)) is None
    sent, again = _run(app, _req(banking.transfer, atm, payer.pan, newcomer.pan, 1_500, PIN, key="t1"),
                       _req(banking.transfer, atm, payer.pan, newcomer.pan, 500, PIN, key="t2"))
    assert sent["balance_fen"] == 8_500 and again["balance_fen"] == 8_000
    assert balance_of(app, newcomer.pan) == 2_000
    assert invariants(app)["ok"]


def test_a_view_loaded_by_a_batch_refuses_a_write_instead_of_losing_it(city, app):
    from sscard.services.banking import AccountView, prefetch_accounts

    card = activated(city, opening_fen=100)
    with app.db.session() as s:
        prefetch_accounts(s, {card.pan}, (), app.clock.now())
        view = s.info["sscard_accounts_by_pan"][card.pan]
        assert isinstance(view, AccountView) and view.pan == card.pan
        with pytest.raises(AttributeError):
            view.pin_failures = 3


def test_two_server_processes_writers_queue_instead_of_aborting_each_other(city, app, make_app):
    """Two Apps on one database stand for two server processes, each with its own group-commit writer.
    Every payment credits the same merchant account: on PostgreSQL the writers take turns (an advisory
    lock), on SQLite its write lock does the same; none of the payments fails."""
    import threading

    other_app = make_app()
    cards_ = [activated(city, name=f"持卡人{i}", opening_fen=100_000) for i in range(4)]
    pos = terminal(city, "POS-1")
    failures: list[str] = []

    def pay(which_app, worker: int) -> None:
        for n in range(25):
            card = cards_[(worker + n) % len(cards_)]
            try:
                batching.call(which_app, banking.purchase, pos, card.pan, 10, PIN, idempotency_key=f"w{worker}-{n}")
            except Exception as exc:  # noqa: BLE001  counted: there must be none
                failures.append(repr(exc))

    threads = [threading.Thread(target=pay, args=(app if w % 2 else other_app, w)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    # they queued: no batch was aborted by the other writer's
    assert batching.batcher(app).conflicts == 0 and batching.batcher(other_app).conflicts == 0
    assert sum(balance_of(app, c.pan) for c in cards_) == 4 * 100_000 - 6 * 25 * 10
    assert _count(app, LedgerTransfer, code="payment") == 150
    assert invariants(app)["ok"]


def test_sqlite_writers_of_two_processes_take_turns_on_a_lock_file(city, app, make_app):
    """On SQLite a second process's writer waits on the lock file (woken at once when the turn is
    released) instead of polling SQLite's busy handler: while one writer holds the turn, the other's
    batch does not start; once released, it commits."""
    import threading

    if app.db.dialect != "sqlite":
        pytest.skip("the lock file is SQLite's (PostgreSQL writers take an advisory lock)")
    other_app = make_app()
    card = activated(city, opening_fen=100_000)
    pos = terminal(city, "POS-1")
    answered = threading.Event()

    def pay() -> None:
        batching.call(other_app, banking.purchase, pos, card.pan, 10, PIN, idempotency_key="turn-1")
        answered.set()

    with batching.batcher(app)._file_turn():  # the first "process" holds the turn
        payer = threading.Thread(target=pay)
        payer.start()
        assert not answered.wait(0.5)
    assert answered.wait(10)
    payer.join()
    assert balance_of(app, card.pan) == 100_000 - 10


def test_a_postgresql_writer_keeps_its_turn_only_while_requests_keep_coming(city, app):
    """Between busy batches the writers' advisory lock is handed over in one statement; once the writer
    has nothing to do it lets the lock go, so another process's writer is never kept waiting by an idle
    one."""
    import time

    from sqlalchemy import text

    if app.db.dialect != "postgresql":
        pytest.skip("the writers' advisory lock is PostgreSQL's")
    card = activated(city, opening_fen=100_000)
    pos = terminal(city, "POS-1")
    writer = batching.batcher(app)
    batching.call(app, banking.purchase, pos, card.pan, 10, PIN, idempotency_key="idle-1")

    def free() -> bool:
        with app.db.engine.connect() as c:
            got = c.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": batching.WRITER_LOCK_KEY}).scalar()
            if got:
                c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": batching.WRITER_LOCK_KEY})
            c.rollback()
            return got

    deadline = time.monotonic() + 5
    while not free() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert free() and not writer._turn_held
    batching.call(app, banking.purchase, pos, card.pan, 10, PIN, idempotency_key="idle-2")  # takes it again
    assert balance_of(app, card.pan) == 100_000 - 20


def test_a_writer_that_hangs_holding_the_turn_loses_it_after_its_lease_and_the_others_write_on(
        city, app, make_app, monkeypatch):
    """Session 22's reliability probe: one worker SIGSTOPped under load held the writers' advisory lock, and
    the other worker wrote nothing for 60 s, until uvicorn killed the stopped one. The server now ends the
    lock's session once it has been idle for the lease (idle_session_timeout): a writer that keeps the turn
    and stops asking (here: told never to let it go) loses it, and the other process's writer goes on;
    the hung one, when it wakes, takes new connections and writes on too."""
    import threading
    import time

    if app.db.dialect != "postgresql":
        pytest.skip("the writers' advisory lock is PostgreSQL's")
    monkeypatch.setattr(batching, "WRITER_LEASE_SECONDS", 1.0)
    card = activated(city, opening_fen=100_000)
    pos = terminal(city, "POS-1")
    hung = batching.batcher(app)
    hung.turn_idle = 3600.0  # keeps the turn however long nothing comes: as a stopped process does
    batching.call(app, banking.purchase, pos, card.pan, 10, PIN, idempotency_key="lease-1")
    assert hung._turn_held
    other_app = make_app()
    answered = threading.Event()
    started = time.monotonic()

    def pay() -> None:
        batching.call(other_app, banking.purchase, pos, card.pan, 10, PIN, idempotency_key="lease-2")
        answered.set()

    payer = threading.Thread(target=pay)
    payer.start()
    assert answered.wait(10), "the other writer waited on past the hung one's lease"
    payer.join()
    assert time.monotonic() - started < 5
    batching.call(app, banking.purchase, pos, card.pan, 10, PIN, idempotency_key="lease-3")  # the hung one wakes
    assert balance_of(app, card.pan) == 100_000 - 30
    assert invariants(app)["ok"]


def test_a_busy_postgresql_writer_keeps_its_turn_without_a_round_trip_and_lets_a_waiting_writer_in(city, app):
    """While requests keep coming the writer keeps the advisory lock from batch to batch without asking
    for it again (each batch's commit pipeline asks pg_locks whether another writer waits); a writer of
    another process that waits for the lock gets it after a batch or two, although requests never stop."""
    import threading
    import time

    from sqlalchemy import text

    if app.db.dialect != "postgresql":
        pytest.skip("the writers' advisory lock is PostgreSQL's")
    card = activated(city, opening_fen=1_000_000)
    pos = terminal(city, "POS-1")
    writer = batching.batcher(app)
    writer.turn_idle = 5.0  # a loaded host's pauses between batches must not count as idleness here
    stop = threading.Event()

    def busy() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            batching.call(app, banking.purchase, pos, card.pan, 1, PIN,
                          idempotency_key=f"busy-{threading.get_ident()}-{i}")

    payers = [threading.Thread(target=busy) for _ in range(3)]
    for t in payers:
        t.start()
    try:
        time.sleep(0.3)
        asked = {"n": 0}

        def count(conn, cursor, statement, *args):
            asked["n"] += "pg_advisory" in statement

        from sqlalchemy import event

        event.listen(app.db.engine, "before_cursor_execute", count)
        batches = writer.batches
        time.sleep(0.3)
        event.remove(app.db.engine, "before_cursor_execute", count)
        assert writer.batches - batches >= 3 and asked["n"] <= 1  # the turn kept, not asked for per batch
        with app.db.engine.connect() as other:  # another process's writer, waiting for its turn
            other.execute(text("SET lock_timeout = '5s'"))
            started = time.monotonic()
            other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": batching.WRITER_LOCK_KEY})
            waited = time.monotonic() - started
            held_from = writer.batches
            time.sleep(0.2)
            assert writer.batches - held_from <= 1  # while the other holds it, this writer waits
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": batching.WRITER_LOCK_KEY})
            other.rollback()
        assert waited < 5
    finally:
        stop.set()
        for t in payers:
            t.join()
    assert invariants(app)["ok"]


def test_a_request_that_would_break_double_entry_fails_alone_and_the_rest_of_its_batch_commits(
        city, app, pos, monkeypatch):
    """The book asserts, before the batch's transaction writes, that its debits equal its credits; a
    request whose code would create money (here: a payment of 777 fen credits the merchant twice) rolls
    the batch back, the writer runs its requests one by one, and only that request fails."""
    from sscard.services.book import Book, LedgerInvariantBroken

    real = Book.add_transfer

    def creates_money(self, row, sums):
        if row["amount"] == 777:
            sums = {k: (dp, cp * 2, dpe, cpe) for k, (dp, cp, dpe, cpe) in sums.items()}
        return real(self, row, sums)

    monkeypatch.setattr(Book, "add_transfer", creates_money)
    card = activated(city, opening_fen=10_000)
    reqs = [_req(banking.purchase, pos, card.pan, amount, PIN, key=f"inv-{amount}") for amount in (100, 777, 200)]
    answers = _run(app, *reqs)
    # the batch could not commit: the writer ran each alone, after it, and only the bad one failed
    assert answers[0]["amount_fen"] == 100 and answers[2]["amount_fen"] == 200
    assert isinstance(answers[1], LedgerInvariantBroken)
    assert banking.purchase(app, pos, card.pan, 100, PIN, idempotency_key="inv-100") == answers[0]  # from its key
    assert banking.purchase(app, pos, card.pan, 200, PIN, idempotency_key="inv-200") == answers[2]
    assert balance_of(app, card.pan) == 9_700
    assert invariants(app)["ok"]


def test_a_customer_account_is_never_written_overdrawn(city, app, pos, monkeypatch):
    """If the balance check were skipped, the book's own assertion still refuses to write the overdraft."""
    from sscard.services.book import Account, LedgerInvariantBroken

    card = activated(city, opening_fen=1_000)
    monkeypatch.setattr(Account, "available", property(lambda self: 10**12))  # the service's check, fooled
    with pytest.raises(LedgerInvariantBroken):
        banking.purchase(app, pos, card.pan, 5_000, PIN, idempotency_key="overdraw")
    monkeypatch.undo()
    assert balance_of(app, card.pan) == 1_000
    assert invariants(app)["ok"]


def test_an_operation_declared_batched_is_group_committed_whoever_calls_it(city, app):
    """The declaration decides, not the channel: a teller's deposit called as a plain function goes
    through the writer, as the API's route does."""
    card = activated(city)
    writer = batching.batcher(app)
    before = writer.requests
    out = banking.deposit(app, city.actor("teller"), card.pan, 1_234, idempotency_key="d1")
    assert writer.requests == before + 1 and out["balance_fen"] == 1_234
    assert banking.deposit.declaration.batched and not banking.change_pin.declaration.batched


def _records(app, key: str) -> tuple[dict, dict]:
    """The audit record and idempotency record a request left, without what differs by nature."""
    with app.db.session() as s:
        audit = s.scalars(select(AuditRecord).where(AuditRecord.idempotency_key == key)).one()
        memo = s.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == key)).one()
        drop = {"transfer_id", "at", "pan"}
        response = {k: v for k, v in json.loads(memo.response).items() if k not in drop}
        return ({c: getattr(audit, c) for c in ("operation", "actor_id", "actor_role", "channel", "object_type", "before", "after", "result")}
                | {"detail": {k: v for k, v in audit.detail.items() if k not in drop}, "whose": audit.person_id is not None},
                {"status": memo.status, "response": response})


def test_the_batched_and_the_one_by_one_path_answer_audit_and_remember_alike(city, app, pos):
    """One frame: the same request through the writer and on its own gives the same answer, the same audit
    record and the same idempotency record, for a payment and for a refusal that commits (a wrong PIN)."""
    from sscard.services.operation import one_by_one

    one, two = (activated(city, name=n, opening_fen=10_000) for n in ("甲", "乙"))
    batched = batching.call(app, banking.purchase, pos, one.pan, 700, PIN, idempotency_key="same-b")
    alone = one_by_one(app, banking.purchase, pos, two.pan, 700, PIN, idempotency_key="same-a")
    drop = {"transfer_id", "at", "pan"}
    assert {k: v for k, v in batched.items() if k not in drop} == {k: v for k, v in alone.items() if k not in drop}
    assert _records(app, "same-b") == _records(app, "same-a")
    refusals = []
    for run, card, key in ((batching.call, one, "wrong-b"), (one_by_one, two, "wrong-a")):
        with pytest.raises(SscardError) as err:
            run(app, banking.purchase, pos, card.pan, 5, "000000", idempotency_key=key)
        refusals.append((err.value.code, err.value.params))
    assert refusals[0] == refusals[1] and refusals[0][0] == "wrong_pin"
    assert _records(app, "wrong-b") == _records(app, "wrong-a")
    # and a retry of each is answered from its key, by either path
    assert batching.call(app, banking.purchase, pos, two.pan, 700, PIN, idempotency_key="same-a") == alone
    assert one_by_one(app, banking.purchase, pos, one.pan, 700, PIN, idempotency_key="same-b") == batched


def test_the_bulk_operations_go_through_the_writer_alone_with_their_audit_and_key(city, app, clock, pos):
    """The sweep of expired holds and a month's medical credits are declared batched and `alone`: the writer
    runs each in a transaction of its own between two batches, through the one frame (audit record,
    idempotency record: a retry answers the first answer, another body under the key is refused)."""
    from sscard.core.roles import SYSTEM_ACTOR
    from sscard.services import medical

    assert banking.expire_pending.declaration.alone and medical.credit_month.declaration.alone
    card = activated(city, opening_fen=10_000)
    banking.authorize_payment(app, pos, card.pan, 5_000, PIN, timeout_seconds=600)
    clock.advance(minutes=11)
    writer = batching.batcher(app)
    requests, alone = writer.requests, writer.alone
    operator = city.actor("operator")
    assert banking.expire_pending(app, operator, idempotency_key="sweep-1") == {"expired": 1}
    assert banking.expire_pending(app, operator, idempotency_key="sweep-1") == {"expired": 1}  # the first answer
    credits = [{"person_id": card.person_id, "amount_fen": 20_000}]
    first = medical.credit_month(app, SYSTEM_ACTOR, "2026-01", credits, idempotency_key="month-1")
    assert first == {"month": "2026-01", "credited": 1, "skipped": 0, "total_fen": 20_000}
    assert medical.credit_month(app, SYSTEM_ACTOR, "2026-01", credits, idempotency_key="month-1") == first
    with pytest.raises(SscardError) as e:
        medical.credit_month(app, SYSTEM_ACTOR, "2026-01", [{**credits[0], "amount_fen": 1}], idempotency_key="month-1")
    assert e.value.code == "idempotency_key_reused"
    assert writer.requests - requests == 5 and writer.alone - alone == 5  # each through the writer, alone
    assert balance_of(app, card.pan) == 10_000
    with app.db.session() as s:
        audits = s.scalars(select(AuditRecord).where(AuditRecord.idempotency_key.in_(["sweep-1", "month-1"]))).all()
        assert sorted((a.operation, a.result) for a in audits) == [("bank.expire_pending", "ok"),
                                                                   ("medical.credit_month", "ok")]
        assert s.scalar(select(func.count()).select_from(IdempotencyRecord)
                        .where(IdempotencyRecord.key.in_(["sweep-1", "month-1"]))) == 2


def test_a_counter_batch_reads_no_outlet_once_its_tellers_outlet_is_known(city, app):
    """Outlets are reference data (only ever inserted): a teller's outlet is read once per engine, not by
    every batch; the deposits still go to that outlet's cash drawer, and the book balances."""
    from sqlalchemy import event

    from sscard.services import ledger

    card = activated(city, opening_fen=10_000)
    teller = city.actor("teller")
    _run(app, _req(banking.deposit, teller, card.pan, 100, key="d-0"))
    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(app.db.engine, "before_cursor_execute", listen)
    try:
        answers = _run(app, *[_req(banking.deposit, teller, card.pan, 100, key=f"d-{i}") for i in range(1, 4)])
    finally:
        event.remove(app.db.engine, "before_cursor_execute", listen)
    assert [a["balance_fen"] for a in answers] == [10_200, 10_300, 10_400]
    assert not [s for s in seen if "FROM outlets" in s]
    with app.db.session() as s:
        drawer = ledger.system_account(s, f"cash:{teller.place}", now=app.clock.now())
        assert ledger.balance(s, drawer).posted == -400
    assert invariants(app)["ok"]


def test_a_postgresql_batch_waits_for_the_server_twice_its_read_ahead_then_its_writes_with_the_commit(city, app, pos):
    """A batch of payments on PostgreSQL (the writer holding its turn): BEGIN with the accounts' and the
    terminal's read-ahead, then the transfers, balances, audit and idempotency records with the COMMIT,
    each sent together and synced once. Counted on the wire: every sync is answered by one ReadyForQuery,
    and the writer waits for each. (psycopg syncs a BEGIN alone, and a pipeline synced inside its block,
    to fetch rows or to commit, syncs again at its end: 5 a batch, before.)"""
    from tests.support import on_the_wire, sent, waits

    if app.db.dialect != "postgresql":
        pytest.skip("round trips of PostgreSQL's pipelines")
    cards = [activated(city, opening_fen=10_000) for _ in range(3)]
    writer = batching.batcher(app)
    writer.turn_idle = 60.0  # the writer thread, idle, must not let the turn go meanwhile
    for warm in ("warm", "warm2"):  # the connections, the turn
        _run(app, _req(banking.purchase, pos, cards[0].pan, 1, PIN, key=warm))
        if writer._turn_held:
            break
    assert writer._turn_held
    answers, wire = on_the_wire(lambda: _run(
        app, *[_req(banking.purchase, pos, c.pan, 100, PIN, key=f"rt{i}") for i, c in enumerate(cards)]), writer=writer)
    assert [a["amount_fen"] for a in answers] == [100, 100, 100]
    # the whole wire in the message (once, under a loaded suite, this saw 6 waits: a ledger account's id
    # looked up in the batch; the wire will say which next time)
    assert waits(wire) == 2, "\n".join([*sent(wire), f"turn held: {writer._turn_held}, conflicts: {writer.conflicts}"])


def test_a_retry_of_a_key_the_writer_just_committed_does_not_throw_its_batch_away(city, app, pos):
    """Session 21's probe: clients re-sending answered keys made every batch they joined fail on the unique
    index and run again, and the other clients' payments went 3.5 times slower. The writer now remembers
    the keys it committed and reads a batch's stored answers first when one of them comes back; a retry it
    could not expect (another process's key) makes it read them first for the next second."""
    writer = batching.batcher(app)
    card = activated(city, opening_fen=10_000)
    other = activated(city, name="李四", opening_fen=10_000)
    first = _run(app, _req(banking.purchase, pos, card.pan, 700, PIN, key="r-1"))[0]
    before = writer.reruns_for_keys
    retry, fresh = _run(app, _req(banking.purchase, pos, card.pan, 700, PIN, key="r-1"),
                        _req(banking.purchase, pos, other.pan, 300, PIN, key="r-2"))
    assert retry == first and fresh["balance_fen"] == 9_700
    assert writer.reruns_for_keys == before  # read first: no batch thrown away
    # a key this writer does not remember (committed by another process, or before a restart): one rerun,
    # then the batches of the next second read their stored answers first
    writer._recent.clear()
    writer._replays_until = 0.0
    again = _run(app, _req(banking.purchase, pos, card.pan, 700, PIN, key="r-1"))[0]
    assert again == first and writer.reruns_for_keys == before + 1
    writer._recent.clear()
    assert _run(app, _req(banking.purchase, pos, other.pan, 300, PIN, key="r-2"))[0] == fresh
    assert writer.reruns_for_keys == before + 1
    assert balance_of(app, card.pan) == 9_300 and balance_of(app, other.pan) == 9_700
    assert _count(app, LedgerTransfer, code="payment") == 2
    assert invariants(app)["ok"]


def test_a_batch_reads_its_stored_answers_by_the_keys_index_not_the_whole_table(city, app, pos):
    """The batch's look-up of its keys named the keys alone, which are not the first column of the primary key
    (scope, key): PostgreSQL read the whole table for every batch that looked (6.7 ms at 31,000 records in
    session 21's probe, growing with every request ever answered). It now names both, and walks the index."""
    if app.db.dialect != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    from sqlalchemy.dialects import postgresql

    card = activated(city, opening_fen=10_000)
    _run(app, _req(banking.purchase, pos, card.pan, 100, PIN, key="ix-1"))
    sql = batching._SELECT_KEYS.params(scopes=["x"], keys=["ix-1"]).compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    with app.db.session() as s:
        s.execute(text("SET LOCAL enable_seqscan = off"))  # a tiny table: make the planner show its index use
        plan = "\n".join(r[0] for r in s.execute(text("EXPLAIN " + str(sql))).all())
    assert "Index Cond" in plan and "scope" in plan.split("Index Cond", 1)[1], plan
    writer = batching.batcher(app)
    writer._replays_until = float("inf")  # look the keys up first, as in a burst of retries
    try:
        again = _run(app, _req(banking.purchase, pos, card.pan, 100, PIN, key="ix-1"))[0]
    finally:
        writer._replays_until = 0.0
    assert again["balance_fen"] == 9_900 and balance_of(app, card.pan) == 9_900
