"""The two state machines of RULES.md §3: the card's social security side and its bank side.

Each side has its own staff and its own events; an event not allowed in a state is refused with
`illegal_transition`, naming both. Lapses (a temporary SS loss after 7 days, an oral bank loss after
5) are computed from the clock, so a card's effective state is right even before a sweep records it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from .clock import as_utc
from .errors import SscardError


class SsStatus(StrEnum):
    APPLIED = "applied"
    IN_PRODUCTION = "in_production"
    READY = "ready"
    SEALED = "sealed"
    NORMAL = "normal"  # issued and in use
    TEMPORARY_LOSS = "temporary_loss"
    FORMAL_LOSS = "formal_loss"
    CANCELLED = "cancelled"


class BankStatus(StrEnum):
    NOT_ACTIVATED = "not_activated"
    ACTIVE = "active"
    ORAL_LOSS = "oral_loss"
    WRITTEN_LOSS = "written_loss"
    FROZEN = "frozen"
    CLOSED = "closed"


S = SsStatus
B = BankStatus
State = TypeVar("State", SsStatus, BankStatus)

SS_TRANSITIONS: dict[str, dict[SsStatus, SsStatus]] = {
    "start_production": {S.APPLIED: S.IN_PRODUCTION},
    "finish_production": {S.IN_PRODUCTION: S.READY},
    "seal": {S.READY: S.SEALED},
    "unseal": {S.SEALED: S.READY},
    "collect": {S.READY: S.NORMAL},
    "report_temporary_loss": {S.NORMAL: S.TEMPORARY_LOSS},
    "report_formal_loss": {S.NORMAL: S.FORMAL_LOSS, S.TEMPORARY_LOSS: S.FORMAL_LOSS},
    "cancel_loss": {S.TEMPORARY_LOSS: S.NORMAL, S.FORMAL_LOSS: S.NORMAL},
    "lapse_temporary_loss": {S.TEMPORARY_LOSS: S.NORMAL},
    # an old card at a replacement's collection, or an application withdrawn
    "cancel": {
        S.APPLIED: S.CANCELLED,
        S.READY: S.CANCELLED,
        S.SEALED: S.CANCELLED,
        S.NORMAL: S.CANCELLED,
        S.TEMPORARY_LOSS: S.CANCELLED,
        S.FORMAL_LOSS: S.CANCELLED,
    },
}

BANK_TRANSITIONS: dict[str, dict[BankStatus, BankStatus]] = {
    "activate": {B.NOT_ACTIVATED: B.ACTIVE},
    "report_oral_loss": {B.ACTIVE: B.ORAL_LOSS},
    "report_written_loss": {B.ACTIVE: B.WRITTEN_LOSS, B.ORAL_LOSS: B.WRITTEN_LOSS},
    "cancel_loss": {B.ORAL_LOSS: B.ACTIVE, B.WRITTEN_LOSS: B.ACTIVE},
    "lapse_oral_loss": {B.ORAL_LOSS: B.ACTIVE},
    "freeze": {B.ACTIVE: B.FROZEN},
    "unfreeze": {B.FROZEN: B.ACTIVE},
    "close": {
        B.NOT_ACTIVATED: B.CLOSED,
        B.ACTIVE: B.CLOSED,
        B.ORAL_LOSS: B.CLOSED,
        B.WRITTEN_LOSS: B.CLOSED,
        B.FROZEN: B.CLOSED,
    },
}


def ss_next(state: SsStatus | str, event: str) -> SsStatus:
    return _next(SS_TRANSITIONS, SsStatus(state), event)


def bank_next(state: BankStatus | str, event: str) -> BankStatus:
    return _next(BANK_TRANSITIONS, BankStatus(state), event)


def _next(table: dict[str, dict[State, State]], state: State, event: str) -> State:
    if event not in table:
        raise ValueError(f"unknown event {event!r}")
    try:
        return table[event][state]
    except KeyError:
        raise SscardError("illegal_transition", state=str(state), event=event) from None


def effective_ss_status(status: str, loss_expires_at: datetime | None, now: datetime) -> SsStatus:
    """A temporary loss whose days have run out is, in effect, normal again."""
    st = SsStatus(status)
    if st is S.TEMPORARY_LOSS and loss_expires_at is not None and as_utc(now) >= as_utc(loss_expires_at):
        return S.NORMAL
    return st


def effective_seal_status(status: str, ready_at: datetime | None, now: datetime, seal_days: int) -> SsStatus:
    """A ready card not collected within `card.uncollected_seal_days` is, in effect, sealed."""
    st = SsStatus(status)
    if st is S.READY and ready_at is not None and as_utc(now) >= as_utc(ready_at) + timedelta(days=seal_days):
        return S.SEALED
    return st


def effective_bank_status(status: str, loss_expires_at: datetime | None, now: datetime) -> BankStatus:
    """An oral loss not made written in time lapses back to active."""
    st = BankStatus(status)
    if st is B.ORAL_LOSS and loss_expires_at is not None and as_utc(now) >= as_utc(loss_expires_at):
        return B.ACTIVE
    return st


SS_LOST = frozenset({S.TEMPORARY_LOSS, S.FORMAL_LOSS})
BANK_DEBIT_REFUSED = {
    B.NOT_ACTIVATED: "not_activated",
    B.ORAL_LOSS: "account_lost",
    B.WRITTEN_LOSS: "account_lost",
    B.FROZEN: "account_frozen",
    B.CLOSED: "account_closed",
}
BANK_CREDIT_REFUSED = {B.CLOSED: "account_closed"}
# A PIN change is refused in the same states as a debit (R3.4), in words that say what was refused: the
# debit's "debits are refused" told a caller changing a lost card's PIN about spending (session 26)
BANK_PIN_CHANGE_REFUSED = {
    **BANK_DEBIT_REFUSED,
    B.ORAL_LOSS: "account_lost_pin_change",
    B.WRITTEN_LOSS: "account_lost_pin_change",
    B.FROZEN: "account_frozen_pin_change",
}


def check_ss_usable(status: SsStatus) -> None:
    """SS application (medical use, kiosks) works only on a normal card."""
    if status in SS_LOST:
        raise SscardError("card_lost")
    if status is S.CANCELLED:
        raise SscardError("card_cancelled")
    if status is not S.NORMAL:
        raise SscardError("card_not_usable", state=str(status))


def check_bank_debit(status: BankStatus) -> None:
    """Withdrawal, transfer out and payment need an active account."""
    code = BANK_DEBIT_REFUSED.get(status)
    if code:
        raise SscardError(code)


def check_bank_pin_change(status: BankStatus) -> None:
    """A PIN change (old, new twice) needs an active account, as a debit does (R3.4)."""
    code = BANK_PIN_CHANGE_REFUSED.get(status)
    if code:
        raise SscardError(code)


def takes_credit(status: BankStatus) -> bool:
    """Does an account in this state take a credit (check_bank_credit's rule, asked instead of raised: a
    refund or a fee that goes back the way it came has somewhere else to go when it does not)?"""
    return status not in BANK_CREDIT_REFUSED


def check_bank_credit(status: BankStatus) -> None:
    """Credits (pension, wages, transfers in) are accepted even while lost or frozen; not once closed.

    Before activation a credit is accepted too: pensions are paid into the account the card carries."""
    code = BANK_CREDIT_REFUSED.get(status)
    if code:
        raise SscardError(code)


def check_card_in_date(expiry_date: date | None, today: date) -> None:
    """A card is in date up to and including its expiry date (RULES R2.7: issue date + card.validity_years),
    in Shanghai days; from the day after, a terminal's debit on it is refused `card_expired` (docs/RULES.md
    R10.14). A card not yet collected has no expiry date: not this rule's (the account is not activated)."""
    if expiry_date is not None and today > expiry_date:
        raise SscardError("card_expired", expiry=expiry_date.isoformat())
