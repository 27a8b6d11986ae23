"""The card's two state machines as the database keeps them (RULES §3): the one place a card's SS status
or its bank account's status is written.

`core/states.py` says which event leads from which state to which; this module applies an event to a row
(or, in bulk, to every row in the event's one starting state) and keeps the timestamps that go with it:
`status_changed_at` always, the end of a temporary SS loss or an oral bank loss, `ready_at`,
`collected_at`, `activated_at`. A lapse that the clock says has happened (a temporary loss past its days,
an oral loss past its days, a ready card uncollected past its seal date) is recorded first, so the
transition table always sees the state in effect.

A change through the ORM is queued as a partner event by the outbox's flush hook; a bulk change queues
its events here, one per card, since no ORM object sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import update

from ..core.states import (
    BANK_TRANSITIONS,
    SS_TRANSITIONS,
    BankStatus,
    SsStatus,
    bank_next,
    effective_bank_status,
    effective_seal_status,
    effective_ss_status,
    ss_next,
)
from ..models.foundation import BankAccount, Card
from .operation import Op

# The moment each event stamps, besides status_changed_at.
_SS_STAMPS = {"finish_production": "ready_at", "unseal": "ready_at", "collect": "collected_at"}
_BANK_STAMPS = {"activate": "activated_at"}


# ---------------------------------------------------------------- in effect now


def ss_status(op: Op, card: Card) -> SsStatus:
    """The card's SS state in effect: a lapsed temporary loss counts as normal before any sweep."""
    return effective_ss_status(card.ss_status, card.loss_expires_at, op.now)


def bank_status(op: Op, account: BankAccount) -> BankStatus:
    """The account's state in effect: a lapsed oral loss counts as active before any sweep."""
    return effective_bank_status(account.status, account.loss_expires_at, op.now)


def sealed(op: Op, card: Card) -> bool:
    """A ready card left uncollected past policy card.uncollected_seal_days is sealed, swept or not."""
    days = op.policy.card.uncollected_seal_days
    return effective_seal_status(card.ss_status, card.ready_at, op.now, days) == SsStatus.SEALED


# ---------------------------------------------------------------- one card, one account


def refresh_ss(op: Op, card: Card) -> None:
    """Record a lapsed temporary loss before acting on the card, so the state machine sees the truth."""
    if ss_status(op, card) != card.ss_status:
        _apply_ss(op, card, "lapse_temporary_loss")


def refresh_bank(op: Op, account: BankAccount) -> None:
    """Record a lapsed oral loss before acting on the account."""
    if bank_status(op, account) != account.status:
        _apply_bank(op, account, "lapse_oral_loss")


def ss_transition(op: Op, card: Card, event: str) -> SsStatus:
    """Apply an SS-side event (after recording any lapse); returns the state it left."""
    refresh_ss(op, card)
    if event == "unseal" and sealed(op, card):
        _apply_ss(op, card, "seal")  # the seal that lapsed unswept is recorded before it is undone
    return _apply_ss(op, card, event)


def bank_transition(op: Op, account: BankAccount, event: str) -> BankStatus:
    """Apply a bank-side event (after recording any lapse); returns the state it left."""
    refresh_bank(op, account)
    return _apply_bank(op, account, event)


def _apply_ss(op: Op, card: Card, event: str) -> SsStatus:
    before = SsStatus(card.ss_status)
    card.ss_status = ss_next(before, event)
    lapses = card.ss_status == SsStatus.TEMPORARY_LOSS
    _stamp(op, card, _SS_STAMPS.get(event), op.policy.ss_loss.temporary_days if lapses else None)
    return before


def _apply_bank(op: Op, account: BankAccount, event: str) -> BankStatus:
    before = BankStatus(account.status)
    account.status = bank_next(before, event)
    lapses = account.status == BankStatus.ORAL_LOSS
    _stamp(op, account, _BANK_STAMPS.get(event), op.policy.bank_loss.oral_days if lapses else None)
    return before


def _stamp(op: Op, row: Card | BankAccount, moment: str | None, lapse_days: int | None) -> None:
    """The times a state change keeps: when it changed, when a loss that lapses ends (none otherwise),
    and the event's own moment (ready, collected, activated)."""
    row.status_changed_at = op.now
    row.loss_expires_at = op.now + timedelta(days=lapse_days) if lapse_days is not None else None
    if moment is not None:
        setattr(row, moment, op.now)


# ---------------------------------------------------------------- many cards at once


def ss_transition_all(op: Op, event: str, *where: Any, event_detail: dict[str, Any] | None = None,
                      **values: Any) -> list[int]:
    """Apply an SS-side event to every card in its one starting state that matches `where`, in one
    UPDATE (a production batch, the nightly seal sweep); `values` are further columns to set. Returns
    the card ids, each with its partner event queued."""
    before, after = _single_step(SS_TRANSITIONS, event)
    stamps: dict[str, datetime | None] = {_SS_STAMPS[event]: op.now} if event in _SS_STAMPS else {}
    stamps["loss_expires_at"] = (op.now + timedelta(days=op.policy.ss_loss.temporary_days)
                                 if after == SsStatus.TEMPORARY_LOSS else None)
    ids = op.session.scalars(
        update(Card).where(Card.ss_status == before, *where)
        .values(ss_status=after, status_changed_at=op.now, version=Card.version + 1, **stamps, **values)
        .returning(Card.id).execution_options(synchronize_session=False)
    ).all()
    for card_id in sorted(ids):
        op.event("card.ss_status_changed", card_id, before=before, after=after, **(event_detail or {}))
    return list(ids)


def bank_transition_all(op: Op, event: str, *where: Any) -> list[int]:
    """Apply a bank-side event to every account in its one starting state that matches `where`, in one
    UPDATE (the nightly lapse sweep). Returns the accounts' card ids, each with its partner event queued."""
    before, after = _single_step(BANK_TRANSITIONS, event)
    stamps: dict[str, datetime | None] = {_BANK_STAMPS[event]: op.now} if event in _BANK_STAMPS else {}
    stamps["loss_expires_at"] = (op.now + timedelta(days=op.policy.bank_loss.oral_days)
                                 if after == BankStatus.ORAL_LOSS else None)
    card_ids = op.session.scalars(
        update(BankAccount).where(BankAccount.status == before, *where)
        .values(status=after, status_changed_at=op.now, version=BankAccount.version + 1, **stamps)
        .returning(BankAccount.card_id).execution_options(synchronize_session=False)
    ).all()
    for card_id in sorted(card_ids):
        op.event("card.bank_status_changed", card_id, before=before, after=after)
    return list(card_ids)


S = TypeVar("S", SsStatus, BankStatus)


def _single_step(table: Mapping[str, Mapping[S, S]], event: str) -> tuple[S, S]:
    """An event applied in bulk must start from exactly one state, read from the transition table, so the
    UPDATE's WHERE clause is the table's and no one else's."""
    steps = table[event]
    if len(steps) != 1:
        raise ValueError(f"{event!r} starts from {len(steps)} states: apply it card by card")
    ((before, after),) = steps.items()
    return before, after


def lapse_losses(op: Op) -> tuple[list[int], list[int]]:
    """The nightly sweep's writes: every temporary SS loss and oral bank loss whose days have run out."""
    cards = ss_transition_all(op, "lapse_temporary_loss", Card.loss_expires_at <= op.now)
    accounts = bank_transition_all(op, "lapse_oral_loss", BankAccount.loss_expires_at <= op.now)
    return cards, accounts
