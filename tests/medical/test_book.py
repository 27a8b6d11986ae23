"""The medical book (services/medical_book.py): a group-committed batch's settlements written with one
statement per table, the same answers as one by one, and its invariants asserted before the write."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.medical import MedicalSettlement, PersonalAccount, PersonalAccountMovement
from sscard.services import batching, medical
from sscard.services.batching import _Request
from sscard.services.operation import Request

from . import helpers as h


@pytest.fixture
def med(city):
    h.set_up(city)
    return city


def _run(app, *calls) -> list:
    """These calls as ONE batch of the writer; the answers in order (an exception for a refusal)."""
    reqs = [_Request(Request(app, fn, actor, args, {}, key)) for fn, actor, args, key in calls]
    batching.batcher(app)._process(reqs)
    return [r.answer for r in reqs]


def _settle(term, quote: dict, card, code: str, key: str):
    return (medical.settle, term, (quote["quote"], card.card_number, code, "123456"), key)


def _movements(app, person_id: int) -> list[tuple[str, int, int, int | None]]:
    with app.db.session() as s:
        rows = s.execute(select(PersonalAccountMovement.kind, PersonalAccountMovement.amount_fen,
                                PersonalAccountMovement.balance_after_fen, PersonalAccountMovement.settlement_id)
                         .where(PersonalAccountMovement.person_id == person_id)
                         .order_by(PersonalAccountMovement.id)).all()
        return [tuple(r) for r in rows]


def test_one_batch_settles_two_visits_of_one_person_and_refuses_a_quote_settled_twice_without_going_alone(med, app):
    """Two quotes of the same person settled in one batch see each other (the second takes what the first
    left of the personal account); the first quote again under another key, in the same batch, and in a
    later batch, is refused `quote_already_settled` before anything is recorded: no request of either
    batch is answered alone."""
    card = med.issued_card()
    h.insure(app, card.person_id, 10_000)
    term = h.terminal(med, "PHAR-P1-1")  # a pharmacy: the personal account pays the covered part
    code = h.ident_code(app, card.card_number)
    q1 = medical.pre_settle(app, term, card.card_number, code, h.lines(covered=6_000))
    q2 = medical.pre_settle(app, term, card.card_number, code, h.lines(covered=6_000))
    writer = batching.batcher(app)
    alone = writer.alone
    first, second, twice = _run(app, _settle(term, q1, card, code, "b1"), _settle(term, q2, card, code, "b2"),
                                _settle(term, q1, card, code, "b3"))
    assert first["personal_balance_after_fen"] == 4_000 and first["split"]["personal_fen"] == 6_000
    # the second quote was made before the first settled: its split is outdated, refused as one by one
    assert isinstance(second, SscardError) and second.code == "quote_outdated"
    assert isinstance(twice, SscardError) and twice.code == "quote_already_settled"
    [later] = _run(app, _settle(term, q1, card, code, "b4"))
    assert isinstance(later, SscardError) and later.code == "quote_already_settled"
    assert writer.alone == alone
    q3 = medical.pre_settle(app, term, card.card_number, code, h.lines(covered=3_000))
    q4 = medical.pre_settle(app, term, card.card_number, code, h.lines(covered=2_000))
    third, fourth = _run(app, _settle(term, q3, card, code, "b5"), _settle(term, q4, card, code, "b6"))
    assert third["personal_balance_after_fen"] == 1_000
    assert isinstance(fourth, SscardError) and fourth.code == "quote_outdated"  # q4 was quoted at 4,000 left
    account = medical.personal_account(app, SYSTEM_ACTOR, card.person_id)
    assert account["balance_fen"] == 1_000
    with app.db.session() as s:
        ids = dict(s.execute(select(MedicalSettlement.code, MedicalSettlement.id)).all())
    assert _movements(app, card.person_id) == [("credit", 10_000, 10_000, None),
                                               ("settlement", -6_000, 4_000, ids[first["code"]]),
                                               ("settlement", -3_000, 1_000, ids[third["code"]])]
    # a refund in a batch: the account, the usage and the movement come back, named by the refund's id
    [refund] = _run(app, (medical.refund, term, (first["code"],), "r1"))
    assert refund["kind"] == "refund" and refund["personal_balance_after_fen"] == 7_000
    [again] = _run(app, (medical.refund, term, (first["code"],), "r2"))
    assert isinstance(again, SscardError) and again.code == "already_refunded"
    with app.db.session() as s:
        refund_id = s.scalar(select(MedicalSettlement.id).where(MedicalSettlement.code == refund["code"]))
        assert s.scalar(select(PersonalAccount.balance_fen).where(PersonalAccount.person_id == card.person_id)) == 7_000
    assert _movements(app, card.person_id)[-1] == ("refund", 6_000, 7_000, refund_id)
    assert writer.alone == alone


def test_a_settlement_whose_book_breaks_an_invariant_fails_alone_and_the_rest_of_its_batch_commits(
        med, app, monkeypatch):
    """The medical book asserts, before the batch writes, that every account's change is the sum of its
    movements: a settlement whose movement would not match (here: one of 777 fen is recorded twice) rolls
    the batch back, the writer answers its requests one by one, and only that one fails."""
    from sscard.services.medical_book import MedicalBook, MedicalInvariantBroken

    real = MedicalBook.move

    def moves_twice(self, account, kind, amount, **kw):
        real(self, account, kind, amount, **kw)
        if amount == -777:
            self._movements.append(dict(self._movements[-1]))

    monkeypatch.setattr(MedicalBook, "move", moves_twice)
    term = h.terminal(med, "PHAR-P1-1")
    cards = [med.issued_card() for _ in range(3)]
    calls = []
    for card, amount in zip(cards, (100, 777, 200), strict=True):
        h.insure(app, card.person_id, 10_000)
        code = h.ident_code(app, card.card_number)
        quote = medical.pre_settle(app, term, card.card_number, code, h.lines(covered=amount))
        calls.append(_settle(term, quote, card, code, f"inv-{amount}"))
    answers = _run(app, *calls)
    assert answers[0]["split"]["personal_fen"] == 100 and answers[2]["split"]["personal_fen"] == 200
    assert isinstance(answers[1], MedicalInvariantBroken)
    balances = [medical.personal_account(app, SYSTEM_ACTOR, c.person_id)["balance_fen"] for c in cards]
    assert balances == [9_900, 10_000, 9_800]
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(MedicalSettlement)) == 2


def _selects(app):
    """The SELECT statements the batch sends (not the writers' turn on PostgreSQL: pg_advisory_lock, pg_locks)."""
    from sqlalchemy import event

    seen: list[str] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip()[:6].upper() == "SELECT" and "pg_advisory" not in statement and "pg_locks" not in statement:
            seen.append(statement)

    return seen, lambda: event.listen(app.db.engine, "before_cursor_execute", listen), \
        lambda: event.remove(app.db.engine, "before_cursor_execute", listen)


def test_a_batch_of_quotes_and_settlements_reads_ahead_in_one_statement_and_answers_as_one_by_one(med, app):
    """A batch of pre-settlements and settlements at two institutions reads its cards, holders, banks,
    personal accounts, usage, insured months, terminals, institutions and settled quotes in ONE statement
    (as plain values: only the card becomes an ORM object), and nothing more: the bodies and their answers
    (the institution, the masked holder, the bank) read no other row. The answers are those of one by one."""
    pharmacy, hospital = h.terminal(med, "PHAR-P1-1"), h.terminal(med, "HOSP-H3-1")
    a, b = med.issued_card(), med.issued_card()
    for card in (a, b):
        h.insure(app, card.person_id, 10_000)
    code_a, code_b = h.ident_code(app, a.card_number), h.ident_code(app, b.card_number)
    quote_a = medical.pre_settle(app, pharmacy, a.card_number, code_a, h.lines(covered=1_000))
    quote_b = medical.pre_settle(app, hospital, b.card_number, code_b, h.lines(covered=30_000, uncovered=500))
    seen, start, stop = _selects(app)
    start()
    try:
        again_a, settled_a, settled_b = _run(
            app, (medical.pre_settle, pharmacy, (a.card_number, code_a, h.lines(covered=1_000)), None),
            _settle(pharmacy, quote_a, a, code_a, "one-a"), _settle(hospital, quote_b, b, code_b, "one-b"))
    finally:
        stop()
    assert len(seen) == 1, seen
    assert again_a["split"] == quote_a["split"] and again_a["institution"] == quote_a["institution"]
    assert again_a["card_number"] == quote_a["card_number"]
    for settled, quote in ((settled_a, quote_a), (settled_b, quote_b)):
        assert settled["split"] == quote["split"]
        alone = medical.get_settlement(app, SYSTEM_ACTOR, settled["code"])  # read back one by one
        for field in ("institution", "terminal", "card_number", "person", "bank", "split", "self_pay_method",
                      "personal_balance_after_fen", "lines", "refunded_by", "reverses", "year", "kind"):
            assert settled[field] == alone[field], field
    assert settled_a["personal_balance_after_fen"] == 9_000 and settled_b["institution"]["code"] == "H3"
    assert settled_b["bank"] is not None and settled_b["person"]["id"] == b.person_id


def test_three_wrong_ss_passwords_in_one_batch_lock_the_card_read_ahead(med, app):
    """The card a batch read ahead is the session's ORM object: each wrong SS password of the batch counts
    on it and is committed, so the third one of the same batch locks it and a later settlement is refused."""
    term = h.terminal(med, "PHAR-P1-1")
    card = med.issued_card()
    h.insure(app, card.person_id, 10_000)
    code = h.ident_code(app, card.card_number)
    quotes = [medical.pre_settle(app, term, card.card_number, code, h.lines(covered=100)) for _ in range(4)]
    calls = [(medical.settle, term, (q["quote"], card.card_number, code, "999999"), f"wrong-{i}")
             for i, q in enumerate(quotes[:3])]
    answers = _run(app, *calls)
    assert [getattr(a, "code", a) for a in answers] == ["wrong_password", "wrong_password", "password_locked"]
    [later] = _run(app, _settle(term, quotes[3], card, code, "right"))
    assert isinstance(later, SscardError) and later.code == "password_locked"
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(MedicalSettlement)) == 0


def test_a_formal_loss_recorded_earlier_in_the_batch_refuses_the_settlement_of_that_card(med, app):
    """Another area's request of the same batch that changes the card (a replacement for a lost card, which
    records its formal loss) changes the very object the medical read-ahead holds: the settlement after it
    in the batch sees the loss and is refused, as one by one."""
    from sscard.services import replacement

    term = h.terminal(med, "PHAR-P1-1")
    card = med.issued_card()
    h.insure(app, card.person_id, 10_000)
    code = h.ident_code(app, card.card_number)
    quote = medical.pre_settle(app, term, card.card_number, code, h.lines(covered=100))
    writer = batching.batcher(app)
    alone = writer.alone
    applied, settled = _run(
        app, (replacement.apply, med.actor("clerk"), (card.card_number, "lost", card.citizen_id, "cash", None, None, True), "rep-1"),
        _settle(term, quote, card, code, "after-loss"))
    assert not isinstance(applied, Exception), applied
    assert isinstance(settled, SscardError) and settled.code == "card_lost", settled
    assert writer.alone == alone


def test_a_postgresql_batch_of_quotes_and_settlements_waits_for_the_server_twice(med, app):
    """On PostgreSQL the batch's BEGIN goes with its one read-ahead statement, and its writes with the
    COMMIT: two round trips a batch (the writer holding its turn), counted on the wire."""
    from tests.support import on_the_wire, sent, waits

    if app.db.dialect != "postgresql":
        pytest.skip("round trips of PostgreSQL's pipelines")
    pharmacy = h.terminal(med, "PHAR-P1-1")
    a, b = med.issued_card(), med.issued_card()
    for card in (a, b):
        h.insure(app, card.person_id, 10_000)
    code_a, code_b = h.ident_code(app, a.card_number), h.ident_code(app, b.card_number)
    quote_a = medical.pre_settle(app, pharmacy, a.card_number, code_a, h.lines(covered=1_000))
    writer = batching.batcher(app)
    writer.turn_idle = 60.0  # the writer thread, idle, must not let the turn go meanwhile
    _run(app, (medical.pre_settle, pharmacy, (b.card_number, code_b, h.lines(covered=500)), None))
    if not writer._turn_held:
        _run(app, (medical.pre_settle, pharmacy, (b.card_number, code_b, h.lines(covered=500)), None))
    assert writer._turn_held
    (quote_b, settled_a), wire = on_the_wire(lambda: _run(
        app, (medical.pre_settle, pharmacy, (b.card_number, code_b, h.lines(covered=2_000)), None),
        _settle(pharmacy, quote_a, a, code_a, "wire-a")), writer=writer)
    assert quote_b["card_number"] and settled_a["personal_balance_after_fen"] == 9_000
    assert waits(wire) == 2, sent(wire)
