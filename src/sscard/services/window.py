"""What a service-center window reads (the console's and the counter API's screens): a person with every
card, both sides and any replacement with its receipt; the people of a name and birth date; the cards
waiting at the clerk's own center, the applications not yet in production and the batches.

What a clerk may see unmasked and what the cardholder is handed (RULES §2): the citizen ID in full on an
explicit "show" (`window.reveal_citizen_id`, a viewed record with `unmasked="citizen_id"` the cardholder
sees on the portal's access page); receipts with the cardholder's own full name and new card number, the
collecting unit and the clerk's name and staff number (`window.holder_*_receipt`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypedDict

from sqlalchemy import Select, select

from ..core.errors import About, SscardError
from ..core.identifiers import ascii_digits, mask_card_number, mask_citizen_id, mask_name
from ..core.roles import CENTER_STAFF, Role
from ..core.states import SsStatus
from ..models.counter import FeeReceipt, ReplacementApplication
from ..models.foundation import AuditRecord, Card, Person, ProductionBatch, ServiceCenter, StaffUser
from . import access, cards, lookup, loss, replacement
from .access import Scope
from .operation import Op, query


class ReplacementRef(TypedDict):
    application_id: int
    fee_fen: int
    fee_status: str
    receipt_no: str | None


class CardRow(cards.CardView):
    """A card as the window lists it: both sides, and the replacement it was applied for as, if any."""

    id: int
    replacement: ReplacementRef | None
    replaced: bool  # a replacement has been applied for this card


class QueryPasswordState(TypedDict):
    initial: bool
    locked_until: datetime | None


class PersonAtWindow(TypedDict):
    id: int
    name: str
    citizen_id: str
    birth_date: date
    sex: str
    query_password: QueryPasswordState


class PersonOverview(TypedDict):
    """What the window (console and counter API) shows about a person."""

    person: PersonAtWindow
    cards: list[CardRow]


def _card_row(op: Op, card: Card) -> CardRow:
    view = cards.card_view(op.session, card, op.now, masked=True)
    application = op.session.scalar(
        select(ReplacementApplication).where(ReplacementApplication.new_card_id == card.id)
    )
    receipt_no = None
    if application is not None:
        receipt_no = op.session.scalar(
            select(FeeReceipt.receipt_no).where(FeeReceipt.application_id == application.id)
        )
    return {
        "id": card.id,
        **view,
        "replacement": {
            "application_id": application.id,
            "fee_fen": application.fee_fen,
            "fee_status": application.fee_status,
            "receipt_no": receipt_no,
        } if application else None,
        "replaced": loss.replacement_applied(op, card),
    }


@query("window.person", roles=CENTER_STAFF, scope=Scope.OWN)
def person_overview(op: Op, person_id: int) -> PersonOverview:
    """What the window shows about a person: masked identity, every card with both sides, and
    replacement applications with their receipts."""
    person = lookup.person_by_id(op.session, person_id)
    rows = op.session.scalars(select(Card).where(Card.person_id == person.id).order_by(Card.id.desc())).all()
    op.audit("person", person.id, person_id=person.id)
    return {
        "person": {"id": person.id, "name": mask_name(person.name), "citizen_id": mask_citizen_id(person.citizen_id),
                   "birth_date": person.birth_date, "sex": person.sex,
                   "query_password": {"initial": bool(person.query_pw_initial),
                                      "locked_until": person.query_pw_locked_until}},
        "cards": [_card_row(op, c) for c in rows],
    }


@query("window.card_number", roles=CENTER_STAFF, scope=Scope.OWN)
def card_number_of(op: Op, person_id: int, card_id: int) -> dict[str, Any]:
    """For the console only: the full number of one of this person's cards (pages carry card ids)."""
    card = op.session.get(Card, card_id)
    if card is None or card.person_id != person_id:
        raise SscardError("card_not_found")
    op.audit("card", card.card_number, person_id=card.person_id)
    return {"card_number": card.card_number}


def persons_named(name: str, day: date) -> Select[Person]:
    """The people of that name and birth date (index ix_persons_name_birth: a million people, 0.05 ms)."""
    return select(Person).where(Person.name == name, Person.birth_date == day).order_by(Person.id).limit(50)


def ready_cards(center_id: int) -> Select[Card, str]:
    """The cards ready for collection at a center, oldest first, with their holder's name in the same
    query (index ix_cards_ready_center; the names were a query per card)."""
    return (select(Card, Person.name).join(Person, Person.id == Card.person_id)
            .where(Card.ready_center_id == center_id, Card.ss_status == SsStatus.READY)
            .order_by(Card.ready_at).limit(200))


@query("window.find_by_name", roles=CENTER_STAFF | {Role.OPERATOR}, scope=Scope.CITY)
def find_by_name(op: Op, name: str, birth_date: date | str) -> dict[str, Any]:
    """Name + birth date (people share names: every match is listed, masked)."""
    day = date.fromisoformat(birth_date) if isinstance(birth_date, str) else birth_date
    wanted = (name or "").strip()
    if not wanted or day is None:
        raise SscardError("invalid_request")
    rows = op.session.scalars(persons_named(wanted, day)).all()
    return {"persons": [{"id": p.id, "name": mask_name(p.name), "citizen_id": mask_citizen_id(p.citizen_id),
                         "birth_date": p.birth_date, "sex": p.sex} for p in rows]}


@query("window.queue", roles=CENTER_STAFF, scope=Scope.CENTER)
def queue(op: Op) -> dict[str, Any]:
    """The clerk's own center: cards waiting for collection here, applications not yet in production,
    batches in production."""
    center = lookup.own_center(op.session, op.actor)
    ready = op.session.execute(ready_cards(center.id)).all()
    for c, _name in ready:  # the full name (issue 17: the clerk calls it out): each holder's access log lists it
        op.listed("card", c.card_number, c.person_id)
    applied = op.session.scalar(lookup.applied_cards(center.id))
    batches = op.session.scalars(select(ProductionBatch).where(
        ProductionBatch.center_id == center.id).order_by(ProductionBatch.id.desc()).limit(20)).all()
    return {
        "center": {"code": center.code, "name": center.name},
        "ready": [{"card_id": c.id, "person_id": c.person_id, "card_number": mask_card_number(c.card_number),
                   "name": name, "reason": c.reason, "ready_at": c.ready_at} for c, name in ready],
        "applied": applied or 0,
        "batches": [{"code": b.code, "status": b.status, "cards": b.card_count, "due_date": b.due_date,
                     "created_at": b.created_at, "completed_at": b.completed_at} for b in batches],
    }


@query("window.reveal_citizen_id", roles=CENTER_STAFF, scope=Scope.OWN)
def reveal_citizen_id(op: Op, person_id: int) -> dict[str, Any]:
    """The full citizen ID, on a clerk's explicit request; the read is audited as a viewed record."""
    person = lookup.person_by_id(op.session, person_id)
    op.audit("person", person.id, person_id=person.id, unmasked="citizen_id")
    return {"person_id": person.id, "citizen_id": person.citizen_id}


def handed_over(op: Op, object_type: str, object_id: str, person_id: int, attorney_id: int | None) -> bool:
    """Who a receipt printed at the window is handed to, said by its viewed record; True: the cardholder.
    R2.8's exception (the holder's own full name and card number) is what the cardholder is handed. A receipt
    of what an agent did under a power of attorney (the application and fee, the collection) goes to the
    agent: it shows the holder masked, as every list does, and its record names the power of attorney, so the
    holder's access log says an agent was handed it (session 22 for the collection receipt; session 25's
    probe: the fee receipt of an agent's application printed the holder's full name and new card number and
    was recorded as handed to the cardholder)."""
    agent = attorney_id is not None
    op.audit(object_type, object_id, person_id=person_id, handed_to="agent" if agent else "cardholder",
             on_behalf_of=person_id if agent else None, attorney_id=attorney_id)
    return not agent


def _staff(op: Op, staff_id: str | None) -> dict[str, Any]:
    user = op.session.get(StaffUser, int(staff_id)) if staff_id and ascii_digits(str(staff_id)) else None
    return {"name": user.display_name if user else "", "number": user.username if user else ""}


def _center(center: ServiceCenter | None) -> dict[str, Any] | None:
    return {"code": center.code, "name": center.name, "name_en": center.name_en} if center else None


@query("window.holder_fee_receipt", roles=CENTER_STAFF, scope=Scope.CENTER)
def holder_fee_receipt(op: Op, receipt_no: str) -> dict[str, Any]:
    """The fee receipt handed to the cardholder: their own full name and new card number, the collecting
    unit, the clerk's name and staff number."""
    r = op.session.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == str(receipt_no)[:24]))
    if r is None:
        raise SscardError("not_found", what=("收据", "receipt"))
    access.require_center(op.actor, r.center_id, about=About("fee_receipt", r.receipt_no, r.person_id))
    to_holder = handed_over(op, "fee_receipt", r.receipt_no, r.person_id, r.attorney_id)
    data = replacement.receipt_view(op, r)
    application = op.session.get(ReplacementApplication, r.application_id)
    assert application is not None  # fee_receipts.application_id is a NOT NULL foreign key
    new = op.session.get(Card, application.new_card_id)
    assert new is not None  # replacement_applications.new_card_id is a NOT NULL foreign key
    shown = {} if not to_holder else {
        "person": {**data["person"], "name": lookup.person_by_id(op.session, r.person_id).name},
        "new_card_number": new.card_number}
    return {**data, **shown, "center": _center(op.session.get(ServiceCenter, r.center_id)),
            "clerk": _staff(op, r.staff_id)}


@query("window.holder_collection_receipt", roles=CENTER_STAFF, scope=Scope.CENTER)
def holder_collection_receipt(op: Op, person_id: int, card_id: int) -> dict[str, Any]:
    """The collection receipt (领卡回执) handed over with the card: the cardholder's full name and card
    number, and the clerk who handed it over (name, staff number); it is signed by the collector."""
    card = op.session.get(Card, int(card_id))
    if card is None or card.person_id != int(person_id):
        raise SscardError("card_not_found")
    access.require_center(op.actor, card.ready_center_id, about=About("card", card.card_number, card.person_id))
    if card.collected_at is None:
        raise SscardError("illegal_transition", state=card.ss_status, event="collection_receipt")
    to_holder = handed_over(op, "card", card.card_number, card.person_id, card.collecting_attorney_id)
    data = cards.collection_receipt_view(op, card)
    handed = op.session.scalar(
        select(AuditRecord).where(AuditRecord.object_id == card.card_number, AuditRecord.result == "ok",
                                  AuditRecord.operation.in_(("counter.collect", "card.collect")))
        .order_by(AuditRecord.id.desc()).limit(1)
    )
    shown = {} if not to_holder else {
        "person": {**data["person"], "name": lookup.person_by_id(op.session, card.person_id).name},
        "card_number": card.card_number}
    return {**data, **shown,
            "center": _center(op.session.get(ServiceCenter, card.ready_center_id) if card.ready_center_id else None),
            "clerk": _staff(op, handed.actor_id if handed else None)}
