"""The numbers of a replacement's new card in a group-committed batch (session 31): its card number drawn
before the batch's read-ahead and checked in the same round trip, its identification code and PAN drawn
unchecked, a repeat of either refused by the unique index and the batch run again with fresh draws."""

from __future__ import annotations

from sqlalchemy import select

from sscard.models.foundation import BankAccount, Card
from sscard.services import batching, enrolment, replacement


def _pan_of(app, card_number: str) -> str:
    with app.db.session() as s:
        card = s.scalar(select(Card).where(Card.card_number == card_number))
        account = s.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
        return account.pan


def test_a_drawn_pan_that_another_account_holds_makes_the_batch_run_again_with_a_fresh_one(city, app, monkeypatch):
    """The first draw of the new account's PAN is one another cardholder's account already has: the
    batch's commit is refused by the unique index, nothing of it stays, and it runs again; the application
    is answered with a PAN of its own, and the other account is untouched."""
    holder, other = city.issued_card("张三"), city.issued_card("李四")
    taken = other.pan
    drawn: list[str] = []
    real = enrolment.make_pan

    def make_pan(bin_, rng):
        pan = taken if not drawn else real(bin_, rng)
        drawn.append(pan)
        return pan

    monkeypatch.setattr(enrolment, "make_pan", make_pan)
    writer = batching.batcher(app)
    runs = writer.batches
    answer = replacement.apply(app, city.actor("clerk"), holder.card_number, "damaged", holder.citizen_id,
                               payment="cash", idempotency_key="numbers-1")
    assert writer.batches > runs  # group-committed, as every application
    assert len(drawn) >= 2 and drawn[0] == taken
    pan = _pan_of(app, answer["card_number"])
    assert pan != taken and pan in drawn[1:]
    with app.db.session() as s:
        assert len(s.scalars(select(BankAccount).where(BankAccount.pan == taken)).all()) == 1
        old_id = s.scalar(select(Card.id).where(Card.card_number == holder.card_number))
        assert len(s.scalars(select(Card).where(Card.replaces_card_id == old_id)).all()) == 1


def test_card_numbers_all_taken_among_the_candidates_are_drawn_again_and_checked(city, app):
    """Should every candidate drawn ahead be taken, the batch's new cards still get free numbers (drawn
    and checked whole, a read more), never a taken one."""
    cards = [city.issued_card() for _ in range(3)]
    taken = [c.card_number for c in cards]
    with app.db.session() as s:
        got = enrolment.numbers_for_batch(s, [("110101", "622202"), ("110101", "622202")], taken, set(taken))
    assert len(got) == 2 and len({g[0] for g in got}) == 2
    assert not {g[0] for g in got} & set(taken)
    for _number, code, pan in got:
        assert code.startswith("110101") and pan.startswith("622202")


def test_the_candidates_are_distinct_with_spares_and_the_free_ones_are_used_first(city, app):
    candidates = enrolment.card_number_candidates(3)
    assert len(candidates) == 3 + enrolment.SPARE_NUMBERS == len(set(candidates))
    with app.db.session() as s:
        got = enrolment.numbers_for_batch(s, [("110101", "622202")] * 3, candidates, {candidates[-1]})
    assert {g[0] for g in got} <= set(candidates[:-1])
