"""Every change of a card's SS state or its bank account's state goes through services.card_lifecycle.

Two guards: one reads the source (no other module assigns a state, or sets one in an UPDATE), one
watches the database while a whole card's life runs through the services (applied to replaced, bank
side activated, lost, frozen, closed, swept): every state written was written by the lifecycle module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

import sscard
from sscard.core.errors import SscardError
from sscard.core.states import SsStatus
from sscard.models.foundation import BankAccount, Card
from sscard.services import banking, card_lifecycle, cards, loss, production, replacement
from tests.support import SYSTEM

SRC = Path(sscard.__file__).parent
LIFECYCLE = SRC / "services" / "card_lifecycle.py"
# `status` that is not a card's or an account's: a production batch, a hotline call, an error's HTTP status.
OTHER_STATUSES = {"batch.status", "call.status", "self.status"}
# The demo's bulk loader writes a synthetic past (dated states of thousands of cards) straight into empty
# tables, outside any operation; it is not a state change of a running city.
NOT_A_RUNNING_CITY = SRC / "demo"
# The migrations declare the columns (`columns(ss_status=s(16), ...)`): a schema, not a state written.
SCHEMA = SRC / "migrations"


def _state_writes(path: Path) -> list[str]:
    """Where a module assigns `x.ss_status` / `x.status`, or passes `ss_status=` / `status=` to anything but
    the constructor of a new card or account (which starts in the machine's first state)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
            if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr in ("ss_status", "status") \
                    and ast.unparse(target) not in OTHER_STATUSES:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(target)} =")
        if isinstance(node, ast.Call) and ast.unparse(node.func) not in ("Card", "BankAccount"):
            for kw in node.keywords:
                if kw.arg == "ss_status" or (kw.arg == "status" and ast.unparse(node.func).endswith(".values")):
                    found.append(f"{path.name}:{node.lineno}: {ast.unparse(node.func)}({kw.arg}=...)")
    return found


def test_no_module_but_the_lifecycle_writes_a_card_or_account_state():
    writes = [w for path in sorted(SRC.rglob("*.py")) if path != LIFECYCLE
              and NOT_A_RUNNING_CITY not in path.parents and SCHEMA not in path.parents
              for w in _state_writes(path)]
    assert writes == []


def test_the_source_guard_sees_an_assignment_and_a_bulk_update(tmp_path):
    bypass = tmp_path / "bypass.py"
    bypass.write_text("card.ss_status = 'normal'\n"
                      "session.execute(update(BankAccount).values(status='active'))\n", encoding="utf-8")
    assert len(_state_writes(bypass)) == 2


@pytest.fixture
def watched(app, monkeypatch):
    """Record the cards and accounts whose state the database was asked to change outside the lifecycle."""
    inside = {"depth": 0}
    bypasses: list[str] = []

    def through_lifecycle(fn):
        def call(*args, **kwargs):
            inside["depth"] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                inside["depth"] -= 1
        return call

    for name in ("ss_transition_all", "bank_transition_all"):
        monkeypatch.setattr(card_lifecycle, name, through_lifecycle(getattr(card_lifecycle, name)))
    changed_by_lifecycle: set[int] = set()

    def note(fn):
        def call(op, row, event):
            before = fn(op, row, event)
            changed_by_lifecycle.add(id(row))
            return before
        return call

    monkeypatch.setattr(card_lifecycle, "_apply_ss", note(card_lifecycle._apply_ss))
    monkeypatch.setattr(card_lifecycle, "_apply_bank", note(card_lifecycle._apply_bank))

    def before_flush(session, _context, _instances):
        for obj in session.dirty:
            attr = "ss_status" if isinstance(obj, Card) else "status" if isinstance(obj, BankAccount) else None
            if attr and inspect(obj).attrs[attr].history.added and id(obj) not in changed_by_lifecycle:
                bypasses.append(f"{type(obj).__name__} {obj.id}: {attr} -> {getattr(obj, attr)}")

    def bulk(orm_state):
        if orm_state.is_update and inside["depth"] == 0:
            table = getattr(orm_state.statement, "table", None)
            if table is not None and table.name in (Card.__tablename__, BankAccount.__tablename__):
                bypasses.append(f"bulk UPDATE of {table.name}")

    event.listen(Session, "before_flush", before_flush)
    event.listen(Session, "do_orm_execute", bulk)
    yield bypasses
    event.remove(Session, "before_flush", before_flush)
    event.remove(Session, "do_orm_execute", bulk)


def test_a_card_life_from_application_to_closed_account_changes_states_only_through_the_lifecycle(
        city, app, clock, watched):
    clerk, teller, bsup = city.actor("clerk"), city.actor("teller"), city.actor("bsup")
    card = city.issued_card()  # applied, in production, ready, collected
    banking.activate(app, teller, card.pan, card.citizen_id, "730418", "730418", cardholder_in_person=True)
    banking.freeze(app, bsup, card.pan, reason="court order")
    banking.unfreeze(app, bsup, card.pan, reason="order lifted")
    loss.report_oral_loss(app, teller, card.pan)
    loss.report_temporary_loss(app, clerk, card.card_number)
    clock.advance(days=8)  # both losses lapse
    loss.sweep_lapsed(app, SYSTEM)
    new = replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, payment="cash",
                            record_formal_loss=True)
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    cards.collect_card(app, clerk, new["card_number"], card.citizen_id)  # cancels the old card
    banking.activate(app, teller, city.pan_of(new["card_number"]), card.citizen_id, "730419", "730419",
                     cardholder_in_person=True)  # closes the old account
    assert watched == []


def test_the_runtime_guard_sees_a_state_written_around_the_lifecycle(city, app, watched):
    card = city.issued_card()
    with app.db.session() as s:
        row = s.scalar(select(Card).where(Card.card_number == card.card_number))
        card_id = row.id
        row.ss_status = SsStatus.TEMPORARY_LOSS
        s.flush()
        s.rollback()
    assert watched == [f"Card {card_id}: ss_status -> temporary_loss"]


def test_an_event_with_more_than_one_starting_state_is_not_applied_in_bulk(city, app):
    with pytest.raises(ValueError, match="card by card"):
        card_lifecycle._single_step({"cancel": {SsStatus.NORMAL: SsStatus.CANCELLED,
                                                SsStatus.READY: SsStatus.CANCELLED}}, "cancel")


def test_unsealing_a_card_in_use_is_refused_by_the_transition_table(city, app):
    card = city.issued_card()
    with pytest.raises(SscardError) as err:
        cards.unseal_card(app, city.actor("clerk"), card.card_number, card.citizen_id)
    assert (err.value.code, err.value.params) == ("illegal_transition", {"state": "normal", "event": "unseal"})
