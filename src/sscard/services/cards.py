"""Collecting a card (first or replacement, by the cardholder or an agent), sealing and unsealing an
uncollected one, and what a card's two sides look like now."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..core.clock import shanghai_day
from ..core.errors import About, SscardError
from ..core.identifiers import mask_card_number, mask_citizen_id, mask_name, mask_pan, validate_card_number
from ..core.roles import ALL_ROLES_BUT_TERMINAL, CENTER_STAFF, Role
from ..core.states import (
    BankStatus,
    SsStatus,
    effective_bank_status,
    effective_seal_status,
    effective_ss_status,
)
from ..models.counter import PowerOfAttorney, ReplacementApplication
from ..models.foundation import Bank, BankAccount, Card, Person, ServiceCenter
from . import access, attorney, lookup
from . import card_lifecycle as lifecycle
from .access import Scope
from .operation import Op, operation, query


class BankRef(TypedDict):
    """How pages and slips name a card's bank, in both languages."""

    code: str
    name: str
    name_en: str
    hotline: str


class BankSide(BankRef):
    pan: str | None
    status: BankStatus | None
    activation_deadline: date | None
    activation_days_left: int | None


class PersonRef(TypedDict):
    name: str
    citizen_id: str


class SsPasswordState(TypedDict):
    initial: bool
    locked: bool


class CardView(TypedDict):
    """Both sides of a card in effect now: what the portal, the consoles, the kiosk and the API show."""

    card_number: str
    person: PersonRef
    ss_status: SsStatus
    ss_loss_expires_at: datetime | None
    reason: str
    applied_at: datetime
    ready_at: datetime | None
    ready_center: str | None
    ready_center_en: str | None
    collected_at: datetime | None
    issue_date: date | None
    expiry_date: date | None
    spec_version: str
    ss_password: SsPasswordState
    bank: BankSide


class Collected(TypedDict):
    """A card handed over: the window's confirmation and the API's answer."""

    card_number: str
    ss_status: str
    issue_date: date | None
    expiry_date: date | None
    activation_deadline: date | None
    cancelled_old_card: str | None
    collected_by: str  # cardholder | agent
    bank_status: str
    activation_required: bool
    bank: BankRef
    pan: str


class CenterRef(TypedDict):
    code: str
    name: str


class CollectionReceipt(TypedDict):
    receipt_no: str
    card_number: str
    person: PersonRef
    collected_at: datetime | None
    issue_date: date | None
    expiry_date: date | None
    center: CenterRef | None
    reason: str
    old_card_number: str | None
    old_card_status: str | None
    bank: BankRef
    pan: str
    bank_status: str
    activation_deadline: date | None
    activation_days: int
    agent: PersonRef | None
    application_id: int | None


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@operation("card.collect", roles=CENTER_STAFF, scope=Scope.CENTER)
def collect_card(op: Op, card_number: str, presented_citizen_id: str, attorney_id: int | None = None,
                 agent_citizen_id: str | None = None) -> Collected:
    """Hand over a ready card after the ID check (an agent: a power of attorney naming `card.collect`, and
    their own ID): it is issued (normal) with SS password 123456, and the card keeps who collected it.

    The 60-day activation window of the bank side starts today. A replacement's old card is cancelled on
    the SS side now; its bank account waits for the new one's activation, unless the new card keeps the
    PAN, when that account moves to the new card now (RULES §6). First cards and replacements alike,
    whichever route or console collects them."""
    card = lookup.card_by_number(op.session, card_number)
    access.require_center(op.actor, card.ready_center_id, about=About("card", card.card_number, card.person_id))  # handed over where it is ready, nowhere else
    poa = attorney.agent_for(op, attorney_id, agent_citizen_id, card.person_id, "card.collect")
    person = lookup.person_by_id(op.session, card.person_id)
    lookup.check_presented_id(person, presented_citizen_id)
    if lifecycle.sealed(op, card):
        raise SscardError("card_sealed")
    before = lifecycle.ss_transition(op, card, "collect")
    today = op.app.clock.today()
    card.issue_date = today
    card.expiry_date = add_years(today, op.policy.card.validity_years)
    card.collecting_attorney_id = poa.id if poa else None
    card.ss_pw_digest = None  # the initial 123456
    card.ss_pw_failures = 0
    card.ss_pw_locked = False
    if person.first_card_number is None:
        person.first_card_number = card.card_number
    account = _account_to_hand_over(op, card)
    account.activation_deadline = today + timedelta(days=op.policy.activation.window_days)
    old_number = None
    if card.replaces_card_id:
        old = op.session.get(Card, card.replaces_card_id)
        if old is not None and old.ss_status != SsStatus.CANCELLED:
            lifecycle.ss_transition(op, old, "cancel")
            old_number = old.card_number
    collected_by = "agent" if poa else "cardholder"
    op.audit("card", card.card_number, before=before, after=card.ss_status, person_id=person.id,
             on_behalf_of=person.id if poa else None, attorney_id=poa.id if poa else None,
             cancelled_old_card=old_number, collected_by=collected_by)
    bank = op.session.get(Bank, card.bank_id)
    assert bank is not None  # cards.bank_id is a NOT NULL foreign key
    return {
        "card_number": card.card_number,
        "ss_status": card.ss_status,
        "issue_date": card.issue_date,
        "expiry_date": card.expiry_date,
        "activation_deadline": account.activation_deadline,
        "cancelled_old_card": old_number,
        "collected_by": collected_by,
        "bank_status": account.status,
        "activation_required": account.status == BankStatus.NOT_ACTIVATED,
        "bank": bank_ref(bank),
        "pan": mask_pan(account.pan),
    }


def bank_ref(bank: Bank) -> BankRef:
    """How a page or a slip names a card's bank, in both languages, with its hotline."""
    return {"code": bank.code, "name": bank.name, "name_en": bank.name_en, "hotline": bank.hotline}


def _account_to_hand_over(op: Op, card: Card) -> BankAccount:
    """The bank account that goes with the card handed over. A replacement that keeps the PAN (policy
    bank.keep_pan_on_replacement) has none of its own: the old card's account moves to it now, whichever
    route or console collects it."""
    account = op.session.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
    if account is None and card.replaces_card_id:
        account = op.session.scalar(select(BankAccount).where(BankAccount.card_id == card.replaces_card_id))
        if account is not None:
            account.card_id = card.id
            op.session.flush()
    if account is None:
        raise SscardError("account_not_found")
    return account


@operation("card.unseal", roles=CENTER_STAFF, scope=Scope.CENTER)
def unseal_card(op: Op, card_number: str, presented_citizen_id: str) -> dict[str, Any]:
    """The window visit a sealed card needs: ID check, then the card is ready again (a new year to collect)."""
    card = lookup.card_by_number(op.session, card_number)
    access.require_center(op.actor, card.ready_center_id, about=About("card", card.card_number, card.person_id))
    person = lookup.person_by_id(op.session, card.person_id)
    lookup.check_presented_id(person, presented_citizen_id)
    lifecycle.ss_transition(op, card, "unseal")  # a seal that lapsed unswept is recorded first
    op.audit("card", card.card_number, before=SsStatus.SEALED, after=card.ss_status, person_id=person.id)
    return {"card_number": card.card_number, "ss_status": card.ss_status}


@operation("card.seal_uncollected", roles={Role.SYSTEM, Role.OPERATOR}, scope=Scope.CITY)
def seal_uncollected(op: Op) -> dict[str, Any]:
    """Record every ready card left uncollected for `card.uncollected_seal_days` as sealed (a nightly job)."""
    deadline = op.now - timedelta(days=op.policy.card.uncollected_seal_days)
    sealed = lifecycle.ss_transition_all(op, "seal", Card.ready_at <= deadline)
    op.audit("sweep", "uncollected_cards", cards=len(sealed))
    return {"sealed": len(sealed)}


_UNREAD = object()


def card_view(session: Session, card: Card, now: datetime, *, masked: bool, seal_days: int | None = None,
              account: BankAccount | None | object = _UNREAD) -> CardView:
    """Both sides in effect at `now`; with `seal_days`, an uncollected ready card past it shows as sealed.
    `account`: the card's bank account (or None) when the caller already read it."""
    person = session.get(Person, card.person_id)
    bank = session.get(Bank, card.bank_id)
    assert person is not None and bank is not None  # cards.person_id, cards.bank_id: NOT NULL foreign keys
    if account is _UNREAD:
        account = session.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
    assert account is None or isinstance(account, BankAccount)
    center = session.get(ServiceCenter, card.ready_center_id) if card.ready_center_id else None
    return sides_view(card, person, bank, account, center, now, masked=masked, seal_days=seal_days,
                      password_initial=card.ss_pw_digest is None)


def sides_view(card: Any, person: Any, bank: Any, account: Any, center: Any, now: datetime, *, masked: bool,
               seal_days: int | None, password_initial: bool) -> CardView:
    """`card_view` of a card, its holder, bank, bank account (or None) and ready center (or None), read as
    ORM objects or as plain rows with the same attribute names."""
    ss = effective_ss_status(card.ss_status, card.loss_expires_at, now)
    if seal_days is not None:
        ss = effective_seal_status(ss, card.ready_at, now, seal_days)
    bank_status = effective_bank_status(account.status, account.loss_expires_at, now) if account else None
    days_left = None
    if account is not None and account.status == "not_activated" and account.activation_deadline:
        days_left = max(0, (account.activation_deadline - shanghai_day(now)).days)
    return {
        "card_number": mask_card_number(card.card_number) if masked else card.card_number,
        "person": {
            "name": mask_name(person.name) if masked else person.name,
            "citizen_id": mask_citizen_id(person.citizen_id),
        },
        "ss_status": ss,
        "ss_loss_expires_at": card.loss_expires_at if ss == SsStatus.TEMPORARY_LOSS else None,
        "reason": card.reason,
        "applied_at": card.applied_at,
        "ready_at": card.ready_at,
        "ready_center": center.name if center else None,
        "ready_center_en": (center.name_en or center.name) if center else None,
        "collected_at": card.collected_at,
        "issue_date": card.issue_date,
        "expiry_date": card.expiry_date,
        "spec_version": card.spec_version,
        "ss_password": {"initial": password_initial, "locked": card.ss_pw_locked},
        "bank": {
            **bank_ref(bank),
            "pan": mask_pan(account.pan) if account else None,
            "status": bank_status,
            "activation_deadline": account.activation_deadline if account else None,
            "activation_days_left": days_left,
        },
    }


@query("card.collection_receipt", roles=CENTER_STAFF, scope=Scope.CENTER)
def collection_receipt(op: Op, card_number: str) -> CollectionReceipt:
    """What the collection slip says: the card, both sides, the old card it replaces and, when an agent
    collected it, the agent (masked) from the power of attorney the card keeps."""
    card = lookup.card_by_number(op.session, card_number)
    access.require_center(op.actor, card.ready_center_id, about=About("card", card.card_number, card.person_id))
    if card.collected_at is None:
        raise SscardError("illegal_transition", state=card.ss_status, event="collection_receipt")
    op.audit("card", card.card_number, person_id=card.person_id)
    return collection_receipt_view(op, card)


def collection_receipt_view(op: Op, card: Card) -> CollectionReceipt:
    """The collection slip's data for a collected card (the caller checked who may read it)."""
    person = op.session.get(Person, card.person_id)
    assert person is not None  # cards.person_id is a NOT NULL foreign key
    account = lookup.account_for_card(op.session, card)
    center = op.session.get(ServiceCenter, card.ready_center_id) if card.ready_center_id else None
    old = op.session.get(Card, card.replaces_card_id) if card.replaces_card_id else None
    application_id = op.session.scalar(
        select(ReplacementApplication.id).where(ReplacementApplication.new_card_id == card.id))
    poa = op.session.get(PowerOfAttorney, card.collecting_attorney_id) if card.collecting_attorney_id else None
    bank = op.session.get(Bank, card.bank_id)
    assert bank is not None  # cards.bank_id is a NOT NULL foreign key
    return {
        "receipt_no": f"L{card.id:08d}",
        "card_number": mask_card_number(card.card_number),
        "person": {"name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id)},
        "collected_at": card.collected_at,
        "issue_date": card.issue_date,
        "expiry_date": card.expiry_date,
        "center": {"code": center.code, "name": center.name} if center else None,
        "reason": card.reason,
        "old_card_number": mask_card_number(old.card_number) if old else None,
        "old_card_status": old.ss_status if old else None,
        "bank": bank_ref(bank),
        "pan": mask_pan(account.pan),
        "bank_status": account.status,
        "activation_deadline": account.activation_deadline if account.status == BankStatus.NOT_ACTIVATED else None,
        "activation_days": op.policy.activation.window_days,
        "agent": {"name": mask_name(poa.agent_name), "citizen_id": mask_citizen_id(poa.agent_citizen_id)}
        if poa else None,
        "application_id": application_id,
    }


@query("card.status", roles=ALL_ROLES_BUT_TERMINAL, scope=Scope.OWN)
def card_status(op: Op, card_number: str) -> CardView:
    """Both sides of a card, in effect now (lapsed losses shown as lapsed). Numbers masked. Not to a terminal:
    a kiosk shows a card only with its SS password (`passwords.card_status_with_password`, session 26).

    `lookup.card_by_number`'s checks and refusals, with the holder, the bank, the bank account and the
    ready center read in the same query, as plain rows (one statement: in a declared read, one round
    trip and no ORM session; loading the five as ORM objects was most of a card lookup's time)."""
    number = validate_card_number(card_number)
    found = op.rows(_CARD_AND_SIDES, {"number": number})
    if not found:
        lookup.refuse_unknown_card(number, op.actor)  # to the bank side, as another bank's card is (R1.3)
        raise SscardError("card_not_found")
    row = found[0]
    card = _Side(row, "card_")
    access.require_own(op.actor, About("card", card.card_number, card.person_id), bank_id=card.bank_id,
                       missing="card_not_found")
    op.audit("card", card.card_number, person_id=card.person_id)  # staff reads leave a "viewed" record
    account = _Side(row, "account_") if row.account_id is not None else None
    center = _Side(row, "center_") if row.center_id is not None else None
    return sides_view(card, _Side(row, "person_"), _Side(row, "bank_"), account, center, op.now, masked=True,
                      seal_days=op.policy.card.uncollected_seal_days, password_initial=row.card_pw_initial)


class _Side:
    """One table's columns of `_CARD_AND_SIDES`'s row, by their attribute names (`card_status`)."""

    __slots__ = ("_row", "_prefix")

    def __init__(self, row: Any, prefix: str):
        self._row, self._prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)


def _card_and_sides() -> Any:
    card = [c.label("card_" + c.key) for c in (
        Card.id, Card.person_id, Card.bank_id, Card.card_number, Card.ss_status, Card.loss_expires_at, Card.reason,
        Card.applied_at, Card.ready_at, Card.collected_at, Card.issue_date, Card.expiry_date, Card.spec_version,
        Card.ss_pw_locked)]
    person = [c.label("person_" + c.key) for c in (Person.name, Person.citizen_id)]
    bank = [c.label("bank_" + c.key) for c in (Bank.code, Bank.name, Bank.name_en, Bank.hotline)]
    account = [c.label("account_" + c.key) for c in (
        BankAccount.id, BankAccount.pan, BankAccount.status, BankAccount.loss_expires_at,
        BankAccount.activation_deadline)]
    center = [c.label("center_" + c.key) for c in (ServiceCenter.id, ServiceCenter.name, ServiceCenter.name_en)]
    return (
        select(*card, Card.ss_pw_digest.is_(None).label("card_pw_initial"), *person, *bank, *account, *center)
        .join(Person, Person.id == Card.person_id)
        .join(Bank, Bank.id == Card.bank_id)
        .outerjoin(BankAccount, BankAccount.card_id == Card.id)
        .outerjoin(ServiceCenter, ServiceCenter.id == Card.ready_center_id)
        .where(Card.card_number == bindparam("number"))
    )


_CARD_AND_SIDES = _card_and_sides()  # built once: building and keying it per call cost a fifth of a card lookup


@query("person.cards", roles=ALL_ROLES_BUT_TERMINAL, scope=Scope.OWN)
def person_cards(op: Op, person_id: int) -> dict[str, Any]:
    person = lookup.person_by_id(op.session, person_id, op.actor)
    cards = op.session.scalars(select(Card).where(Card.person_id == person.id).order_by(Card.id)).all()
    if access.is_bank_side(op.actor):  # a bank sees its own cards of the person, not another bank's
        cards = [c for c in cards if c.bank_id == op.actor.bank_id]
    op.audit("person", person.id, person_id=person.id)
    return {
        "person": {"id": person.id, "name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id)},
        "cards": [card_view(op.session, c, op.now, masked=True, seal_days=op.policy.card.uncollected_seal_days)
                  for c in cards],
    }


@query("person.find", roles=CENTER_STAFF | {Role.TELLER, Role.BANK_SUPERVISOR, Role.OPERATOR}, scope=Scope.OWN)
def find_person(op: Op, citizen_id: str | None = None, card_number: str | None = None) -> dict[str, Any]:
    """Staff look a person up by citizen ID or card number; the answer is masked like every list."""
    if citizen_id:
        person: Any = lookup.person_facts_by_citizen_id(op.rows, citizen_id, op.actor)
    elif card_number:
        person = lookup.person_facts_by_card_number(op.rows, card_number, op.actor)
    else:
        from ..core.errors import SscardError

        raise SscardError("invalid_request")
    op.audit("person", person.id, person_id=person.id)
    return {"id": person.id, "name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id),
            "birth_date": person.birth_date, "sex": person.sex}
