"""Finding people, cards and accounts from what a channel was given, with the right refusal."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..core.errors import SscardError
from ..core.identifiers import validate_card_number, validate_citizen_id, validate_pan
from ..core.roles import Actor
from ..models.foundation import Bank, BankAccount, Card, Outlet, Person, ServiceCenter
from . import access


def person_by_id(session: Session, person_id: int, actor: Actor | None = None, *, lock: bool = False) -> Person:
    """A person, in the actor's scope when an actor is given (a cardholder only themself, the bank side
    only its own customers); without an actor, for a second look at someone already in scope."""
    person = session.get(Person, person_id, with_for_update=lock)
    if person is None:
        raise SscardError("person_not_found")
    if actor is not None:
        _person_in_scope(session, actor, person)
    return person


def person_by_citizen_id(session: Session, citizen_id: str, actor: Actor | None = None) -> Person:
    number = validate_citizen_id(citizen_id)
    person = session.scalar(select(Person).where(Person.citizen_id == number))
    if person is None:
        raise SscardError("person_not_found")
    if actor is not None:
        _person_in_scope(session, actor, person)
    return person


def _person_in_scope(session: Session, actor: Actor, person: Person) -> None:
    access.require_self(actor, person.id)
    if access.is_bank_side(actor):
        banks = set(session.scalars(select(Card.bank_id).where(Card.person_id == person.id)))
        access.require_bank_customer(actor, banks)


def card_by_number(session: Session, card_number: str, actor: Actor | None = None) -> Card:
    number = validate_card_number(card_number)
    card = session.scalar(select(Card).where(Card.card_number == number))
    if card is None:
        raise SscardError("card_not_found")
    if actor is not None:
        access.require_own(actor, person_id=card.person_id, bank_id=card.bank_id, missing="card_not_found")
    return card


def account_for_card(session: Session, card: Card) -> BankAccount:
    account = session.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
    if account is None:
        raise SscardError("account_not_found")
    return account


def account_by_pan(session: Session, pan: str, actor: Actor | None = None) -> BankAccount:
    number = validate_pan(pan)
    account = session.scalar(select(BankAccount).where(BankAccount.pan == number))
    if account is None:
        raise SscardError("account_not_found")
    if actor is not None:
        access.require_own(actor, person_id=account.person_id, bank_id=account.bank_id, missing="account_not_found")
    return account


def current_card(session: Session, person_id: int) -> Card | None:
    """The person's newest card that is not cancelled (in production, ready or issued)."""
    return session.scalar(
        select(Card).where(Card.person_id == person_id, Card.ss_status != "cancelled").order_by(Card.id.desc()).limit(1)
    )


def bank_by_code(session: Session, code: str) -> Bank:
    bank = session.scalar(select(Bank).where(Bank.code == code))
    if bank is None:
        raise SscardError("not_found", what=("银行", "bank"))
    return bank


def center_by_code(session: Session, code: str) -> ServiceCenter:
    center = session.scalar(select(ServiceCenter).where(ServiceCenter.code == code))
    if center is None:
        raise SscardError("not_found", what=("服务网点", "service center"))
    return center


def outlet_by_code(session: Session, code: str) -> Outlet:
    outlet = session.scalar(select(Outlet).where(Outlet.code == code))
    if outlet is None:
        raise SscardError("not_found", what=("银行网点", "outlet"))
    return outlet


def check_presented_id(person: Person, presented_citizen_id: str) -> None:
    """The identity check at a counter: the ID presented must be the cardholder's."""
    if validate_citizen_id(presented_citizen_id) != person.citizen_id:
        raise SscardError("identity_mismatch")


def own_center(session: Session, actor: Actor) -> ServiceCenter:
    """The center a clerk works at: the scope of their center's work (a replacement applied for there,
    the cards waiting there); anyone without a center is refused."""
    if actor.center_id is None:
        raise SscardError("forbidden")
    access.require_center(actor, actor.center_id)
    return session.get(ServiceCenter, actor.center_id)
