"""Round trips to PostgreSQL, counted on the wire (libpq's trace of a connection: the server answers every
sync with one ReadyForQuery, and the client waits for each). What an operation waits for, it waits for
under its accounts' locks and with the callers behind it: a round trip for nothing is latency for all."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from sscard.models.foundation import IdempotencyRecord
from sscard.services import banking
from sscard.services.operation import one_by_one
from tests.support import on_the_wire, sent, waits

from .helpers import PIN, activated, balance_of, terminal


def _traced(app, work) -> list[tuple[str, str]]:
    """The wire of every connection the pool hands out while `work()` runs."""
    return on_the_wire(work, engine=app.db.engine)[1]


@pytest.fixture
def postgres_only(app):
    if app.db.dialect != "postgresql":
        pytest.skip("PostgreSQL's wire")


def test_a_read_outside_the_serializable_regime_is_its_statement_alone_without_begin_or_commit(app, postgres_only):
    """`Database.read_committed` (a stored answer's lookup, the publisher's, the sealer's): each statement
    in autocommit, a snapshot of its own as READ COMMITTED gives, with no BEGIN and no COMMIT to wait for."""
    def read():
        with app.db.read_committed() as s:
            s.execute(select(IdempotencyRecord.key).limit(1)).all()

    wire = _traced(app, read)
    assert not any("BEGIN" in m or "COMMIT" in m for m in sent(wire)), sent(wire)
    assert waits(wire) <= 2  # (the pool's ping) and the read


def test_a_transfer_run_alone_begins_with_its_locks_and_read_ahead_in_one_round_trip(city, app, postgres_only):
    """One per transaction (the bench's (d)): BEGIN, the row locks and the accounts' read-ahead go together;
    psycopg alone would send BEGIN and wait for it first."""
    a, b = activated(city, opening_fen=10_000), activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    one_by_one(app, banking.transfer, atm, a.pan, b.pan, 5, PIN, idempotency_key="first")
    wire = _traced(app, lambda: one_by_one(app, banking.transfer, atm, a.pan, b.pan, 7, PIN, idempotency_key="k"))
    begin = next(i for i, (d, m) in enumerate(wire) if d == "F" and "BEGIN ISOLATION LEVEL SERIALIZABLE" in m)
    answered = next(i for i, (d, m) in enumerate(wire) if i > begin and d == "B" and m.startswith("ReadyForQuery"))
    between = [m for d, m in wire[begin:answered] if d == "F"]
    assert any("FOR UPDATE" in m or "SELECT id FROM ledger_accounts" in m for m in between), between
    assert any("bank_accounts.pan" in m for m in between), between
    assert balance_of(app, a.pan) == 10_000 - 12


def test_a_counter_batch_writes_its_fee_links_in_its_own_transaction_before_the_queued_commit(city, app, postgres_only):
    """A batch of a teller's deposit and withdrawal and a clerk's replacement with its fee in cash: the
    session's before-commit writes (the fee receipt linked to its ledger transfer) are sent in the batch's
    transaction, ahead of the COMMIT queued in the same pipeline (a COMMIT sent before the hooks ran left
    the link to a transaction of its own); two round trips in all: BEGIN with every area's read-ahead
    (the accounts, the old card with its holder locked, the card numbers drawn for the new card: three
    until session 31), and the commit with the new rows, the audit records and their events (the records
    whose events name them were inserted first, in a round trip of their own, until session 31)."""
    from sscard.services import batching, replacement
    from sscard.services.batching import _Request
    from sscard.services.operation import Request

    a, b = activated(city, opening_fen=10_000), activated(city, opening_fen=10_000)
    c, d, e = city.issued_card(), city.issued_card(), city.issued_card()
    teller, clerk = city.actor("teller"), city.actor("clerk")
    writer = batching.batcher(app)
    writer.turn_idle = 60.0  # the writer thread, idle, must not let the turn go meanwhile

    def run(*calls):
        reqs = [_Request(Request(app, fn, actor, args, kwargs, key)) for fn, actor, args, kwargs, key in calls]
        writer._process(reqs)
        return [r.answer for r in reqs]

    for card, key in ((c, "w1"), (e, "w2")):  # the system accounts made, then known; the writer's turn
        run((banking.deposit, teller, (a.pan, 100), {}, f"{key}d"),
            (replacement.apply, clerk, (card.card_number, "damaged", card.citizen_id), {"payment": "cash"}, key))
    assert writer._turn_held
    answers, wire = on_the_wire(lambda: run(
        (banking.deposit, teller, (a.pan, 500), {}, "k1"), (banking.withdraw, teller, (b.pan, 300, PIN), {}, "k2"),
        (replacement.apply, clerk, (d.card_number, "damaged", d.citizen_id), {"payment": "cash"}, "k3")), writer=writer)
    assert all(isinstance(x, dict) for x in answers), answers
    statements = [m for m in sent(wire) if m.startswith(("Parse", "Query"))]
    link = next(i for i, m in enumerate(statements) if "UPDATE fee_receipts" in m)
    commit = next(i for i, m in enumerate(statements) if '"COMMIT"' in m)
    assert link < commit and not any("BEGIN" in m for m in statements[commit:]), statements[link - 1:]
    assert waits(wire) == 2, sent(wire)
    first = statements[:next(i for i, m in enumerate(statements) if "INSERT" in m)]
    for read in ('"SELECT cards.id, ', '"SELECT cards.card_number ', '"SELECT bank_accounts.id, '):  # (first lines)
        assert any(read in m for m in first), (read, first)
    with app.db.session() as s:
        from sscard.models.counter import FeeReceipt

        receipt = s.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == answers[2]["receipt_no"]))
        assert receipt is not None and receipt.ledger_transfer_id is not None


def test_a_fee_receipts_link_to_its_transfer_reads_that_transfers_month_alone(city, app, postgres_only):
    """The receipt of a batch's fee is linked to its ledger transfer by the transfer's id and day: under the
    plan PostgreSQL keeps for the statement, every month's partition but the transfer's is pruned at the
    start of each run. By id alone it probed (and locked) every month of `ledger_transfers`: 445 µs a link
    and 37% of the writer's database time in the bench's counter mix (f), session 31."""
    from sscard.models.counter import FeeReceipt
    from sscard.services import replacement
    from sscard.services.book import TRANSFERS
    from tests.support import generic_plan

    card = city.issued_card()
    answer = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id,
                               payment="cash")
    with app.db.session() as s:
        receipt = s.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == answer["receipt_no"]))
        assert receipt is not None and receipt.ledger_transfer_id is not None
        tid, day = s.execute(select(TRANSFERS.c.transfer_id, TRANSFERS.c.day)
                             .where(TRANSFERS.c.id == receipt.ledger_transfer_id)).one()
        months = s.scalar(select(text("count(*)")).select_from(text("pg_inherits"))
                          .where(text("inhparent = 'ledger_transfers'::regclass")))
    plan = generic_plan(app, replacement._LINK_FEE, {"rid": receipt.id, "tid": tid, "day": day})
    scanned = [line for line in plan if " on ledger_transfers_" in line]
    assert months > 3 and len(scanned) == 1, plan
    assert any(f"Subplans Removed: {months - 1}" in line for line in plan), plan


def test_a_batch_of_replacements_writes_their_new_rows_with_its_commit_one_statement_per_table(city, app, postgres_only):
    """Three applications in one batch: their new cards, bank accounts, applications and receipts go in
    the commit's round trip, one INSERT per table for the three, after which the fee links are written;
    the batch waits as often as a batch of one application (each used to cost a round trip of its own)."""
    from sscard.models.counter import FeeReceipt, ReplacementApplication
    from sscard.models.events import Event
    from sscard.models.foundation import AuditRecord, Card
    from sscard.services import batching, replacement
    from sscard.services.batching import _Request
    from sscard.services.operation import Request

    a = activated(city, opening_fen=10_000)
    cards = [city.issued_card() for _ in range(5)]
    teller, clerk = city.actor("teller"), city.actor("clerk")
    writer = batching.batcher(app)
    writer.turn_idle = 60.0

    def run(*calls):
        reqs = [_Request(Request(app, fn, actor, args, kwargs, key)) for fn, actor, args, kwargs, key in calls]
        writer._process(reqs)
        return [r.answer for r in reqs]

    def apply(card, key):
        return (replacement.apply, clerk, (card.card_number, "damaged", card.citizen_id), {"payment": "cash"}, key)

    for n in range(2):  # the system accounts made, then known; the writer's turn
        run((banking.deposit, teller, (a.pan, 100), {}, f"w{n}d"), apply(cards[n], f"w{n}"))
    answers, wire = on_the_wire(lambda: run((banking.deposit, teller, (a.pan, 500), {}, "k0"),
                                            *(apply(card, f"k{i}") for i, card in enumerate(cards[2:], 1))),
                                writer=writer)
    assert all(isinstance(x, dict) for x in answers), answers
    statements = [m for m in sent(wire) if m.startswith(("Parse", "Query"))]
    commit = next(i for i, m in enumerate(statements) if '"COMMIT"' in m)
    for table in ("cards", "bank_accounts", "replacement_applications", "fee_receipts"):
        inserts = [i for i, m in enumerate(statements) if f"INSERT INTO {table} " in m]
        assert len(inserts) == 1 and inserts[0] < commit, (table, statements)
    assert waits(wire) == 2, sent(wire)  # as a batch of one application (five until session 31)
    with app.db.session() as s:
        for answer in answers[1:]:
            new = s.scalar(select(Card).where(Card.card_number == answer["card_number"]))
            assert new is not None and new.replaces_card_id is not None
            application = s.get(ReplacementApplication, answer["application_id"])
            assert application is not None and application.new_card_id == new.id
            receipt = s.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == answer["receipt_no"]))
            assert receipt is not None and receipt.ledger_transfer_id is not None
            # its new card's event names the application's own audit record (each written alone, its
            # events after it, naming the id its insert took: none returned to the writer)
            event = s.scalar(select(Event).where(Event.card_number == answer["card_number"]))
            record = s.get(AuditRecord, event.audit_id)
            assert record.operation == "replacement.apply" and record.object_id == answer["card_number"], (
                record.operation, record.object_id)


def test_a_read_of_several_statements_sends_its_begin_with_the_first(city, app, postgres_only):
    """A bank statement (the account, a month's transfers, their other sides) in one REPEATABLE READ
    snapshot: its BEGIN goes with its first statement, and each statement is one round trip, then the
    COMMIT: four, not five."""
    card = activated(city, "对账", opening_fen=10_000)
    teller = city.actor("teller")
    banking.statement(app, teller, card.pan, limit=5)  # (the first teaches the frame that it reads several)
    wire = _traced(app, lambda: banking.statement(app, teller, card.pan, limit=5))
    messages = sent(wire)
    begin = next(i for i, m in enumerate(messages) if "BEGIN ISOLATION LEVEL REPEATABLE READ" in m)
    assert "Sync" not in messages[begin + 1], messages  # the first statement follows before any sync
    assert waits(wire) == 4, messages


def test_a_transfer_run_alone_takes_five_round_trips_with_no_ping_and_its_records_in_the_commit(city, app, postgres_only):
    """One per transaction, keyed: the stored answer's lookup; the advisory locks (the connection's first
    statement, no pre-ping before it: a broken connection fails there, before anything ran); BEGIN with
    the row locks and the read-ahead; the day's limit usage; and the writes with the audit record, the
    idempotency record, the COMMIT and the locks' release. The ORM's flush of the two records cost two
    more, under the accounts' locks."""
    a, b = activated(city, opening_fen=10_000), activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    one_by_one(app, banking.transfer, atm, a.pan, b.pan, 5, PIN, idempotency_key="first")
    wire = _traced(app, lambda: one_by_one(app, banking.transfer, atm, a.pan, b.pan, 7, PIN, idempotency_key="k2"))
    assert waits(wire) == 5, sent(wire)
    assert not any(m.startswith("Query") and '";"' in m for m in sent(wire)), sent(wire)  # no ping
    last = [m for d, m in wire if d == "F"]
    commit = max(i for i, m in enumerate(last) if '"COMMIT"' in m)
    before_commit = " ".join(last[max(0, commit - 12):commit])
    assert "INSERT INTO audit_records" in before_commit and "INSERT INTO idempotency_records" in before_commit
    assert balance_of(app, a.pan) == 10_000 - 12


def test_a_transfer_run_alone_on_a_dropped_pooled_connection_runs_once_on_a_fresh_one(city, app, postgres_only):
    """No pre-ping before a locked operation: when the pool's connection was cut (a restarted server, a
    failover), the lock statement finds it and the work runs on a fresh connection, exactly once, keyed
    or not."""
    from sqlalchemy import text

    a, b = activated(city, opening_fen=10_000), activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    one_by_one(app, banking.transfer, atm, a.pan, b.pan, 5, PIN, idempotency_key="warm")  # pooled connections
    with app.db.engine.connect() as killer:
        killer.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        killer.commit()
    one_by_one(app, banking.transfer, atm, a.pan, b.pan, 7, PIN)  # unkeyed
    assert balance_of(app, a.pan) == 10_000 - 12
    assert balance_of(app, b.pan) == 10_000 + 12


def _marker_before_commit(wire) -> None:
    """The commit marker's INSERT goes in the commit's pipeline: after it, the COMMIT, with no sync between."""
    statements = [m for m in sent(wire) if m.startswith(("Parse", "Query", "Sync"))]
    marker = next(i for i, m in enumerate(statements) if "INSERT INTO commit_markers" in m)
    commit = next(i for i, m in enumerate(statements) if i > marker and '"COMMIT"' in m)
    assert not any(m.startswith("Sync") for m in statements[marker:commit]), statements[marker:commit + 1]


def test_an_unkeyed_transfer_batch_queues_its_commit_marker_with_its_commit_and_waits_twice(city, app, postgres_only):
    """Group-committed transfers without keys (in-process callers): the batch's commit marker (services/
    batching.py) is sent with its writes and the COMMIT, no round trip of its own: two, as a keyed batch
    (tests/ledger/test_batching.py), and as before markers."""
    from sscard.services import batching
    from sscard.services.batching import _Request
    from sscard.services.operation import Request

    a, b = activated(city, opening_fen=10_000), activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    writer = batching.batcher(app)
    writer.turn_idle = 60.0  # the writer thread, idle, must not let the turn go meanwhile

    def run(amounts, key=None):
        reqs = [_Request(Request(app, banking.transfer, atm, (a.pan, b.pan, n, PIN), {}, key and f"{key}{n}"))
                for n in amounts]
        writer._process(reqs)
        return [r.answer for r in reqs]

    for _ in range(2):  # the connections, the turn
        run([1])
        if writer._turn_held:
            break
    assert writer._turn_held
    answers, wire = on_the_wire(lambda: run([10, 20, 30]), writer=writer)
    assert [x["amount_fen"] for x in answers] == [10, 20, 30], answers
    assert waits(wire) == 2, sent(wire)
    _marker_before_commit(wire)
    answers, wire = on_the_wire(lambda: run([40, 50], key="k"), writer=writer)
    assert [x["amount_fen"] for x in answers] == [40, 50], answers
    assert waits(wire) == 2, sent(wire)
    assert not any("commit_markers" in m for m in sent(wire))  # keyed: their records answer a lost commit


def test_a_batch_of_operations_declared_unkeyed_writes_no_commit_marker(city, app, postgres_only):
    """Balance inquiries (declared keyed=False: run again, they do no harm, which is why they need no key over
    the network) write no commit marker: a lost answer runs them again, as a retried request would."""
    from sscard.services import batching
    from sscard.services.batching import _Request
    from sscard.services.operation import Request

    a = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    writer = batching.batcher(app)
    writer.turn_idle = 60.0

    def run(n):
        reqs = [_Request(Request(app, banking.balance_inquiry, atm, (a.pan, PIN), {}, None)) for _ in range(n)]
        writer._process(reqs)
        return [r.answer for r in reqs]

    run(1)
    answers, wire = on_the_wire(lambda: run(3), writer=writer)
    assert all(x["balance_fen"] == 10_000 for x in answers), answers
    assert not any("commit_markers" in m for m in sent(wire)), sent(wire)


def test_an_unkeyed_transfer_run_alone_queues_its_commit_marker_with_its_commit(city, app, postgres_only):
    """One per transaction without a key (operation.execute): the commit marker goes in the pipeline of the
    COMMIT, no round trip of its own: the locks, BEGIN with the read-ahead, the limit usage, the COMMIT."""
    a, b = activated(city, opening_fen=10_000), activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    one_by_one(app, banking.transfer, atm, a.pan, b.pan, 5, PIN)
    wire = _traced(app, lambda: one_by_one(app, banking.transfer, atm, a.pan, b.pan, 7, PIN))
    _marker_before_commit(wire)
    assert waits(wire) == 4, sent(wire)  # (6 before this session: a ping, and the ORM flush of the audit record)


@pytest.mark.parametrize("failing", ["twin_key", "check"])
def test_a_statement_failing_in_the_commit_pipeline_raises_its_own_error_not_pipeline_aborted(app, postgres_only,
                                                                                             failing):
    """A write queued with the COMMIT that the server refuses (a twin's idempotency key, a constraint) makes
    the COMMIT fail as "pipeline aborted", and so does the rollback SQLAlchemy then tries: what reaches
    the frame must be the refused statement's own error, which the twin check (IntegrityError) and the
    retry helper (its SQLSTATE) read; and the connection must go back to the pool rolled back (SQLAlchemy
    counts its failed rollback as done: the next checkout's ping failed on the aborted transaction)."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, text
    from sqlalchemy.exc import IntegrityError

    from sscard.db import execute_many, sqlstate
    from sscard.services.operation import INSERT_KEYS

    row = {"scope": "test", "key": "twin", "request_hash": "h", "status": 200, "response": "{}",
           "created_at": datetime(2026, 1, 1, tzinfo=UTC)}
    with app.db.session() as s:
        s.execute(insert(IdempotencyRecord).values(**row))
    with pytest.raises(IntegrityError) as caught, app.db.engine.connect() as conn:
        from sqlalchemy.orm import Session

        with Session(bind=conn) as s:
            s.begin()
            s.execute(text("SELECT 1"))
            with app.db.pipeline(s, commit=True):
                if failing == "twin_key":
                    execute_many(s.connection(), INSERT_KEYS, [row])
                else:
                    execute_many(s.connection(), INSERT_KEYS, [{**row, "key": "fresh", "scope": None}])
                s.commit()
    assert sqlstate(caught.value) in {"23505", "23502"}, caught.value
    with app.db.session() as s:
        assert s.scalar(select(IdempotencyRecord.key).where(IdempotencyRecord.key == "fresh")) is None
