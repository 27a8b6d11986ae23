"""Finding people, cards and accounts from what a channel was given, with the right refusal."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, Select, bindparam, func, inspect, or_, select
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_dict

from ..core.errors import About, SscardError
from ..core.identifiers import validate_card_number, validate_citizen_id, validate_pan
from ..core.roles import Actor
from ..core.states import SsStatus
from ..db import session_rows
from ..models.foundation import Bank, BankAccount, Card, Outlet, Person, ServiceCenter
from . import access

T = TypeVar("T")


def _one(session: Session, statement: Select[T], *, missing_code: str, **params: Any) -> T:
    """The one row `statement` finds, or the refusal `missing_code` (with its message's params; the keyword
    shows api/contract.py the code this module may answer)."""
    found = session.scalar(statement)
    if found is None:
        raise SscardError(missing_code, **params)
    return found


Owned = TypeVar("Owned", Card, BankAccount)


def _owned(session: Session, statement: Select[Owned], actor: Actor | None, *, missing_code: str) -> Owned:
    """A card or bank account, in the actor's scope when an actor is given (else refused as missing)."""
    found = _one(session, statement, missing_code=missing_code)
    if actor is not None:
        access.require_own(actor, _about(found), bank_id=found.bank_id, missing=missing_code)
    reached = session.info.get(access.REACHED)
    if reached is not None:  # the operation's record names it, even if it is refused after
        reached(_about(found))
    return found


def _about(found: Card | BankAccount) -> About:
    """A card or account as its refused attempt's audit record names it."""
    if isinstance(found, Card):
        return About("card", found.card_number, found.person_id)
    return About("bank_account", found.pan, found.person_id)


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
    person = _one(session, select(Person).where(Person.citizen_id == number), missing_code="person_not_found")
    if actor is not None:
        _person_in_scope(session, actor, person)
    return person


def person_facts_by_citizen_id(rows: Rows, citizen_id: str, actor: Actor) -> Any:
    """Who has this citizen ID (id, name, citizen_id, birth_date, sex): `person_by_citizen_id`'s checks and
    refusals, as a plain row for a read that shows only that. Loading the whole Person through the ORM
    (fifteen columns, an identity map, a statement built per call) was most of a staff lookup's time.
    `rows`: the transaction's `fetch_all` (a declared read's `op.rows`: no ORM session at all)."""
    number = validate_citizen_id(citizen_id)
    found = rows(_PERSON_FACTS, {"number": number})
    if not found:
        raise SscardError("person_not_found")
    person_in_scope(rows, actor, found[0].id)
    return found[0]


def person_facts_by_card_number(rows: Rows, card_number: str, actor: Actor) -> Any:
    """The holder of this card (id, name, citizen_id, birth_date, sex) in one query: `card_by_number`'s
    checks and refusals for the card (in the actor's scope, else card_not_found), then its holder (a NOT
    NULL foreign key: always there). Another bank's card is not found, as another bank's customer is by
    citizen ID (`require_bank_customer`): `wrong_bank` told a teller that the card exists and where it banks
    (session 22's probe)."""
    number = validate_card_number(card_number)
    found = rows(_HOLDER_FACTS, {"number": number})
    if not found or (access.is_bank_side(actor) and actor.bank_id != found[0].bank_id):
        raise SscardError("card_not_found")
    access.require_own(actor, About("card", number, found[0].id), bank_id=found[0].bank_id, missing="card_not_found")
    return found[0]


Rows = Callable[[Any, dict[str, Any]], list[Any]]  # fetch_all in a transaction: (statement, params) -> rows

_PERSON_FACTS = select(Person.id, Person.name, Person.citizen_id, Person.birth_date, Person.sex).where(
    Person.citizen_id == bindparam("number"))
_HOLDER_FACTS = select(Person.id, Person.name, Person.citizen_id, Person.birth_date, Person.sex, Card.bank_id).join(
    Card, Card.person_id == Person.id).where(Card.card_number == bindparam("number"))
_BANKS_OF_PERSON = select(Card.bank_id).where(Card.person_id == bindparam("pid"))


def _person_in_scope(session: Session, actor: Actor, person: Person) -> None:
    _in_scope(session, actor, person.id)


def _in_scope(session: Session, actor: Actor, person_id: int) -> None:
    person_in_scope(session_rows(session), actor, person_id)


def person_in_scope(rows: Rows, actor: Actor, person_id: int, *, about: About | None = None) -> None:
    """A cardholder only themself; the bank side only a customer of its bank (one of the person's cards).
    `about`: what the bank side's refusal is recorded as reaching for (`require_bank_customer`), for a read
    that answers another bank's customer and a person of nobody alike (the audit read of a person's trail);
    None, a refusal not recorded, where a person of nobody is refused before (a look-up by citizen ID)."""
    access.require_self(actor, person_id)
    if access.is_bank_side(actor):
        banks = {r.bank_id for r in rows(_BANKS_OF_PERSON, {"pid": person_id})}
        access.require_bank_customer(actor, banks, about=about)


def card_by_number(session: Session, card_number: str, actor: Actor | None = None) -> Card:
    number = validate_card_number(card_number)
    return _owned(session, select(Card).where(Card.card_number == number), actor, missing_code="card_not_found")


def refuse_unknown_card(number: str, actor: Actor) -> None:
    """For a card number no card has, before `card_not_found` is answered: to the bank side (R1.3) it is
    `wrong_bank`, as another bank's real card is, its refused attempt recorded naming the number and nobody.
    A card number names no bank (a PAN does, by its BIN: `refuse_another_banks_pan`), so no card number is
    the bank's but its own cards': answering `card_not_found` for a number of nobody and `wrong_bank` for
    another bank's card told any teller which card numbers exist and bank elsewhere (session 27's probe:
    `GET /api/v1/cards/{n}`, `cards.card_status`: the one read of a card by its number the bank side may
    make; a new one calls this on its not-found path). Anyone else is left to `card_not_found`."""
    access.refuse_bank_side(actor, about=About("card", number, None))


def account_for_card(session: Session, card: Card) -> BankAccount:
    return _one(session, select(BankAccount).where(BankAccount.card_id == card.id), missing_code="account_not_found")


def account_by_pan(session: Session, pan: str, actor: Actor | None = None) -> BankAccount:
    number = validate_pan(pan)
    try:
        return _owned(session, select(BankAccount).where(BankAccount.pan == number), actor,
                      missing_code="account_not_found")
    except SscardError as refused:
        if refused.code == "account_not_found" and actor is not None:
            refuse_another_banks_pan(session_rows(session), number, actor)
        raise


_BANK_OF_BIN = select(Bank.id).where(Bank.bin == bindparam("bin"))


def refuse_another_banks_pan(rows: Rows, pan: str, actor: Actor) -> None:
    """For a PAN no account has, before `account_not_found` is answered: to the bank side (R1.3), a PAN
    under another bank's BIN is `wrong_bank`, as another bank's real card is (its refused attempt recorded,
    naming the PAN and nobody). The BIN printed in the PAN already says the bank; answering
    `account_not_found` for a PAN of nobody and `wrong_bank` for another bank's real one told any teller or
    terminal which of another bank's card numbers exist. Anyone else, and a PAN of the actor's own bank or
    of no bank of the city, is left to `account_not_found`. Only on the not-found path: no query added
    to a PAN that is found."""
    if not access.is_bank_side(actor):
        return
    banks = rows(_BANK_OF_BIN, {"bin": pan[:6]})
    if banks:
        access.require_bank(actor, banks[0].id, about=About("bank_account", pan, None))


def current_card(session: Session, person_id: int) -> Card | None:
    """The person's newest card that is not cancelled (in production, ready or issued)."""
    return session.scalar(
        select(Card).where(Card.person_id == person_id, Card.ss_status != "cancelled").order_by(Card.id.desc()).limit(1)
    )


def applied_cards(center_id: int) -> Select[int]:
    """How many applications wait at a center for production (index ix_cards_apply_center): the window's
    queue shows it, starting a batch takes them."""
    return select(func.count()).select_from(Card).where(Card.apply_center_id == center_id,
                                                        Card.ss_status == SsStatus.APPLIED)


def bank_by_code(session: Session, code: str) -> Bank:
    return _one(session, select(Bank).where(Bank.code == code), missing_code="not_found", what=("银行", "bank"))


def center_by_code(session: Session, code: str) -> ServiceCenter:
    return _one(session, select(ServiceCenter).where(ServiceCenter.code == code), missing_code="not_found",
                what=("服务网点", "service center"))


def outlet_by_code(session: Session, code: str) -> Outlet:
    return _one(session, select(Outlet).where(Outlet.code == code), missing_code="not_found", what=("银行网点", "outlet"))


def check_presented_id(person: Person, presented_citizen_id: str) -> None:
    """The identity check at a counter: the ID presented must be the cardholder's."""
    if validate_citizen_id(presented_citizen_id) != person.citizen_id:
        raise SscardError("identity_mismatch")


def own_center(session: Session, actor: Actor) -> ServiceCenter:
    """The center a clerk works at: the scope of their center's work (a replacement applied for there,
    the cards waiting there); anyone without a center is refused."""
    if actor.center_id is None:
        raise SscardError("forbidden")
    access.require_center(actor, actor.center_id, about=None)
    center = session.get(ServiceCenter, actor.center_id)
    assert center is not None  # a clerk's center_id comes from staff_users.center_id, a foreign key
    return center


# ---------------------------------------------------------------- reference data: outlets and service centers
#
# Outlets and service centers are only ever inserted (city.add_outlet, city.add_center; the demo city and
# the tests' fixtures the same way): no operation, CLI command or tool updates or deletes a row of either
# table (no UPDATE or DELETE of `outlets` or `service_centers` in the code: `grep -rn` for the models'
# names and for `.code =`, `.bank_id =`, `session.delete(`), so a row once read never changes. The
# group-commit writer read its tellers' outlets and its clerks' centers again in every batch (two or
# three round trips per counter batch); they are kept here per engine instead, as values (an outlet's
# code and bank) or as detached copies merged into the reading session without a query (a center).
# Only rows read from the database are kept; a row added later is read (and kept) on first use. Were an
# operation ever to change or delete one, it must call `forget_reference(session)` in its transaction.

_OUTLETS: weakref.WeakKeyDictionary[Engine, dict[int, tuple[str, int]]] = weakref.WeakKeyDictionary()
_CENTERS: weakref.WeakKeyDictionary[Engine, dict[int, ServiceCenter]] = weakref.WeakKeyDictionary()
_CENTER_COLUMNS = tuple(c.key for c in ServiceCenter.__table__.c)


def forget_reference(session: Session) -> None:
    """Drop the outlets and centers kept for this session's engine (see above)."""
    engine = session.get_bind().engine
    _OUTLETS.pop(engine, None)
    _CENTERS.pop(engine, None)


def kept_place_codes(session: Session, outlet_id: int | None, center_id: int | None) -> tuple[str | None, str | None]:
    """The codes of an outlet and a center if they are kept already (no query), else None."""
    engine = session.get_bind().engine
    outlet = _OUTLETS.get(engine, {}).get(outlet_id) if outlet_id is not None else None
    center = _CENTERS.get(engine, {}).get(center_id) if center_id is not None else None
    return (outlet[0] if outlet else None, center.code if center is not None else None)


def outlet_facts(session: Session, outlet_id: int) -> tuple[str, int] | None:
    """An outlet's code and bank id (kept per engine once read), or None when there is no such outlet."""
    kept = _OUTLETS.setdefault(session.get_bind().engine, {})
    found = kept.get(outlet_id)
    if found is None:
        outlet = session.get(Outlet, outlet_id)
        if outlet is None:
            return None
        if outlet not in session.new:
            found = kept[outlet_id] = (outlet.code, outlet.bank_id)
        else:
            return (outlet.code, outlet.bank_id)
    return found


def attach(session: Session, cls: type[T], values: dict[str, Any]) -> T:
    """A row read as plain values (db.fetch_all: every column of `cls`, keyed by attribute), made the
    session's persistent object without a query, as if the ORM had loaded it: changes to it are flushed,
    and `session.get` or a query of the same row in the transaction finds this object. For a batch's
    read-ahead, where the ORM's loading cost more than the batch's SQL (~11 against ~60 µs a card, with
    `Card(**values)` alone 23 µs: its attribute events). An object of that row already in the session
    (read by another request's read-ahead) is returned instead."""
    mapper = inspect(cls)
    found = session.identity_map.get(mapper.identity_key_from_primary_key(tuple(values[c.key] for c in mapper.primary_key)))
    if found is not None:
        return cast(T, found)
    obj = mapper.class_manager.new_instance()
    instance_dict(obj).update(values)  # loaded values, not changes: no attribute events
    make_transient_to_detached(obj)  # persistent-to-be: its key from the values, every attribute committed
    session.add(obj)
    return cast(T, obj)


def centers(session: Session, ids: Iterable[int] = (), codes: Iterable[str] = ()) -> list[ServiceCenter]:
    """The service centers of these ids and codes that exist, as persistent objects of `session` (so that
    `session.get(ServiceCenter, id)` then reads nothing while the caller holds them: the identity map holds
    objects weakly). Kept per engine once read (see above): a query only for those not yet kept."""
    kept = _CENTERS.setdefault(session.get_bind().engine, {})
    by_code = {c.code: c for c in kept.values()}
    want_ids = set(ids)
    want_codes = set(codes)
    missing_ids = sorted(i for i in want_ids if i not in kept)
    missing_codes = sorted(c for c in want_codes if c not in by_code)
    out: dict[int, ServiceCenter] = {}
    if missing_ids or missing_codes:
        for center in session.scalars(select(ServiceCenter).where(
                or_(ServiceCenter.id.in_(missing_ids), ServiceCenter.code.in_(missing_codes)))):
            out[center.id] = center
            if center not in session.new:
                copy = ServiceCenter(**{key: getattr(center, key) for key in _CENTER_COLUMNS})
                make_transient_to_detached(copy)
                kept[center.id] = copy
    for center in kept.values():
        if (center.id in want_ids or center.code in want_codes) and center.id not in out:
            out[center.id] = session.merge(center, load=False)
    return list(out.values())
