"""Registering an insured person and applying for their first card."""

from __future__ import annotations

import secrets as pysecrets
from typing import Any

from sqlalchemy import bindparam, select, union_all
from sqlalchemy.orm import Session

from ..core.errors import About, SscardError
from ..core.identifiers import (
    citizen_id_facts,
    make_card_number,
    make_ident_code,
    make_pan,
    mask_citizen_id,
    validate_citizen_id,
)
from ..core.roles import CENTER_STAFF, Role
from ..core.states import BankStatus, SsStatus
from ..models.foundation import Bank, BankAccount, Card, Person
from . import access, lookup
from .access import Scope
from .operation import Op, operation

_rng = pysecrets.SystemRandom()


def person_view(person: Person, *, masked: bool = True) -> dict[str, Any]:
    return {
        "id": person.id,
        "citizen_id": mask_citizen_id(person.citizen_id) if masked else person.citizen_id,
        "name": person.name,
        "sex": person.sex,
        "birth_date": person.birth_date,
        "area_code": person.area_code,
    }


@operation("person.register", roles=CENTER_STAFF | {Role.OPERATOR}, scope=Scope.CITY)
def register_person(op: Op, citizen_id: str, name: str, phone: str = "", address: str = "") -> dict[str, Any]:
    """Birth date, sex and area come from the citizen ID itself, so they can never disagree with it."""
    facts = citizen_id_facts(citizen_id)
    number = validate_citizen_id(citizen_id)  # normalised: the same person cannot be typed two ways
    name = name.strip()
    if not (1 <= len(name) <= 32) or len(phone) > 20 or len(address) > 128:  # the columns' sizes
        raise SscardError("invalid_request")
    if op.session.scalar(select(Person.id).where(Person.citizen_id == number)) is not None:
        raise SscardError("already_exists", what=("该参保人员", "This person"))
    person = Person(
        citizen_id=number,
        name=name,
        sex=facts.sex,
        birth_date=facts.birth_date,
        area_code=facts.area_code,
        phone=phone,
        address=address,
        created_at=op.now,
    )
    op.session.add(person)
    op.session.flush()
    op.audit("person", person.id, after="registered", person_id=person.id)
    return person_view(person)


def new_card_numbers(op: Op, area_code: str, bank: Bank, pan: str | None = None) -> tuple[str, str, str]:
    """A fresh card number, identification code and PAN, none of them used before."""
    for _ in range(20):
        number = make_card_number(_rng)
        code = make_ident_code(area_code, _rng)
        new_pan = pan or make_pan(bank.bin, _rng)
        taken = op.session.scalar(
            select(Card.id).where((Card.card_number == number) | (Card.ident_code == code)).limit(1)
        ) or (pan is None and op.session.scalar(select(BankAccount.id).where(BankAccount.pan == new_pan)))
        if not taken:
            return number, code, new_pan
    raise RuntimeError("could not find a free card number")


SPARE_NUMBERS = 2  # card numbers drawn for a batch beyond its need: a taken one is replaced without a read


def card_number_candidates(n: int) -> list[str]:
    """n + SPARE_NUMBERS distinct card numbers drawn for a batch, to be checked (`TAKEN_NUMBERS`) with its
    first round trip: a card number does not depend on the holder or the bank, so it needs no read first."""
    drawn: dict[str, None] = {}
    while len(drawn) < n + SPARE_NUMBERS:
        drawn[make_card_number(_rng)] = None
    return list(drawn)


# which of a batch's candidate card numbers are taken
TAKEN_NUMBERS = select(Card.card_number).where(Card.card_number.in_(bindparam("numbers", expanding=True)))


def numbers_for_batch(session: Session, wanted: list[tuple[str, str]], candidates: list[str],
                      taken: set[str]) -> list[tuple[str, str, str]]:
    """For a group-committed batch: a card number, identification code and PAN for each (area code, BIN).
    The card numbers come from `candidates` less those `taken` (read with the batch's first round trip);
    should too few be left, the rest are drawn and checked whole (`reserve_numbers`, a read more). The
    identification code (64 random bits) and the PAN (12 random digits) are drawn unchecked: of ten million
    cards one draw repeats a code once in 10^12 and a PAN once in 100,000 (a card number, 26 x 10^7, once
    in 26: it is checked), and a repeat is refused by the column's unique index when the batch commits,
    after which the batch runs again with fresh draws (services.batching, db.is_duplicate). A check of
    each would cost every batch of replacements a round trip after its read-ahead."""
    free = [c for c in candidates if c not in taken]
    n = min(len(free), len(wanted))
    out = [(number, make_ident_code(area, _rng), make_pan(bin_, _rng))
           for number, (area, bin_) in zip(free[:n], wanted[:n], strict=True)]
    if n < len(wanted):
        out += reserve_numbers(session, wanted[n:])
    return out


# which of a batch's drawn card numbers, identification codes and PANs are taken: one statement, built once
_TAKEN = union_all(
    TAKEN_NUMBERS,
    select(Card.ident_code).where(Card.ident_code.in_(bindparam("codes", expanding=True))),
    select(BankAccount.pan).where(BankAccount.pan.in_(bindparam("pans", expanding=True))),
)


def reserve_numbers(session: Session, wanted: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """For a group-committed batch: a fresh card number, identification code and PAN for each (area code,
    BIN), none of them used before nor twice in the list, all checked in one query (again for any taken)."""
    out: list[tuple[str, str, str] | None] = [None] * len(wanted)
    for _ in range(20):
        todo = [i for i, got in enumerate(out) if got is None]
        if not todo:
            return [got for got in out if got is not None]
        for i in todo:
            area, bin_ = wanted[i]
            out[i] = (make_card_number(_rng), make_ident_code(area, _rng), make_pan(bin_, _rng))
        fresh = [got for i in todo if (got := out[i]) is not None]
        taken = set(session.scalars(_TAKEN, {"numbers": [f[0] for f in fresh], "codes": [f[1] for f in fresh],
                                              "pans": [f[2] for f in fresh]}))
        seen: set[str] = set()
        for i, got in enumerate(out):
            if got is not None and (taken.intersection(got) or seen.intersection(got)):
                out[i] = None  # taken, or drawn twice in this batch: drawn again
            elif got is not None:
                seen.update(got)
    raise RuntimeError("could not find free card numbers")


def create_card(op: Op, person: Person, bank: Bank, center_id: int, reason: str, replaces: Card | None = None,
                pan: str | None = None, *, ids: tuple[int, int] | None = None,
                numbers: tuple[str, str, str] | None = None) -> tuple[Card, BankAccount]:
    """A card in `applied` with its not-yet-activated bank account (used by first issue and replacement).

    A group-committed batch passes what it reserved for the whole batch: `ids`, the card's and the
    account's row ids (both are then left for the caller to add to the session and flush, with its own
    rows), and `numbers`, a card number, identification code and PAN already checked unused."""
    number, code, new_pan = numbers or new_card_numbers(op, person.area_code, bank, pan)
    card = Card(
        person_id=person.id,
        card_number=number,
        ident_code=code,
        bank_id=bank.id,
        ss_status=SsStatus.APPLIED,
        reason=reason,
        replaces_card_id=replaces.id if replaces else None,
        spec_version=op.policy.card.spec_version,
        apply_center_id=center_id,
        applied_at=op.now,
        status_changed_at=op.now,
    )
    if ids is None:
        op.session.add(card)
        op.session.flush()
    else:
        card.id = ids[0]
    account = BankAccount(
        card_id=card.id,
        person_id=person.id,
        bank_id=bank.id,
        pan=new_pan,
        status=BankStatus.NOT_ACTIVATED,
        status_changed_at=op.now,
    )
    if ids is None:
        op.session.add(account)
        op.session.flush()
    else:
        account.id = ids[1]
    return card, account


@operation("card.apply_first", roles=CENTER_STAFF | {Role.OPERATOR}, scope=Scope.CENTER)
def apply_first_card(op: Op, person_id: int, bank_code: str, center_code: str) -> dict[str, Any]:
    """First issue is free; a person with a card in any state but cancelled cannot apply again."""
    person = lookup.person_by_id(op.session, person_id, lock=True)
    center = lookup.center_by_code(op.session, center_code)
    access.require_center(op.actor, center.id, about=About("person", str(person.id), person.id))
    bank = lookup.bank_by_code(op.session, bank_code)
    if lookup.current_card(op.session, person.id) is not None:
        raise SscardError("card_pending")
    card, account = create_card(op, person, bank, center.id, "first")
    op.audit("card", card.card_number, after=card.ss_status, person_id=person.id, bank=bank.code)
    return {"card_number": card.card_number, "ss_status": card.ss_status, "bank": bank.code, "pan_last4": account.pan[-4:]}
