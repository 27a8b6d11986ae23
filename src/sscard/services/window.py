"""What a window clerk is entitled to see unmasked, and what the cardholder is handed (issue 17, point 5).

Lists and pages stay masked (RULES §2); a clerk may still
- see a person's citizen ID in full on an explicit "show" (`counter.reveal_citizen_id`), recorded as a
  viewed record with `unmasked="citizen_id"`, which the cardholder sees on the portal's access page;
- hand the cardholder receipts that carry the cardholder's own full name and new card number, the
  collecting unit (the center) and the clerk's name and staff number (`counter.holder_*_receipt`).

These wrap the replacement area's receipt data (services/replacement.py) without changing its API answers.
"""

from __future__ import annotations

from sqlalchemy import select

from ..core.errors import SscardError
from ..core.roles import CENTER_STAFF
from ..models.counter import FeeReceipt, ReplacementApplication
from ..models.foundation import AuditRecord, Card, Person, ServiceCenter, StaffUser
from . import access, lookup, replacement
from .access import Scope
from .operation import Op, query


@query("counter.reveal_citizen_id", roles=CENTER_STAFF, scope=Scope.OWN)
def reveal_citizen_id(op: Op, person_id: int) -> dict:
    """The full citizen ID, on a clerk's explicit request; the read is audited as a viewed record."""
    person = lookup.person_by_id(op.session, person_id)
    op.audit("person", person.id, person_id=person.id, unmasked="citizen_id")
    return {"person_id": person.id, "citizen_id": person.citizen_id}


def _staff(op: Op, staff_id: str | None) -> dict:
    user = op.session.get(StaffUser, int(staff_id)) if staff_id and str(staff_id).isdigit() else None
    return {"name": user.display_name if user else "", "number": user.username if user else ""}


def _center(center: ServiceCenter | None) -> dict | None:
    return {"code": center.code, "name": center.name, "name_en": center.name_en} if center else None


@query("counter.holder_fee_receipt", roles=CENTER_STAFF, scope=Scope.CENTER)
def holder_fee_receipt(op: Op, receipt_no: str) -> dict:
    """The fee receipt handed to the cardholder: their own full name and new card number, the collecting
    unit, the clerk's name and staff number."""
    r = op.session.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == str(receipt_no)[:24]))
    if r is None:
        raise SscardError("not_found", what=("收据", "receipt"))
    access.require_center(op.actor, r.center_id)
    op.audit("fee_receipt", r.receipt_no, person_id=r.person_id, handed_to="cardholder")
    data = replacement.receipt_view(op, r)
    application = op.session.get(ReplacementApplication, r.application_id)
    new = op.session.get(Card, application.new_card_id)
    return {**data, "person": {**data["person"], "name": op.session.get(Person, r.person_id).name},
            "new_card_number": new.card_number, "center": _center(op.session.get(ServiceCenter, r.center_id)),
            "clerk": _staff(op, r.staff_id)}


@query("counter.holder_collection_receipt", roles=CENTER_STAFF, scope=Scope.CENTER)
def holder_collection_receipt(op: Op, person_id: int, card_id: int) -> dict:
    """The collection receipt (领卡回执) handed over with the card: the cardholder's full name and card
    number, and the clerk who handed it over (name, staff number); it is signed by the collector."""
    card = op.session.get(Card, int(card_id))
    if card is None or card.person_id != int(person_id):
        raise SscardError("card_not_found")
    access.require_center(op.actor, card.ready_center_id)
    if card.collected_at is None:
        raise SscardError("illegal_transition", state=card.ss_status, event="collection_receipt")
    op.audit("card", card.card_number, person_id=card.person_id, handed_to="cardholder")
    data = replacement.collection_receipt.__wrapped__(op, card.card_number)
    handed = op.session.scalar(
        select(AuditRecord).where(AuditRecord.object_id == card.card_number, AuditRecord.result == "ok",
                                  AuditRecord.operation.in_(("counter.collect", "card.collect")))
        .order_by(AuditRecord.id.desc()).limit(1)
    )
    return {**data, "person": {**data["person"], "name": op.session.get(Person, card.person_id).name},
            "card_number": card.card_number,
            "center": _center(op.session.get(ServiceCenter, card.ready_center_id) if card.ready_center_id else None),
            "clerk": _staff(op, handed.actor_id if handed else None)}
