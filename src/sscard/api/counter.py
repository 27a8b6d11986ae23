"""/api/v1/counter: the window's operations for API clients (twins of the window console's pages).

Formal loss, cancel loss, password resets and starting a production batch are foundation routes
(/api/v1/cards/..., /api/v1/production-batches); this router adds powers of attorney, identity checks,
replacement and renewal with fee receipts, routing a finished batch, collection (also by an agent),
PDF receipts, the center's queue and the supervisor's day report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response
from pydantic import Field

from ..http import RouteBook, language
from ..services import (
    attorney,
    batching,
    cards,
    passwords,
    production,
    replacement,
    reports,
    reversal,
    window,
)
from . import responses as r
from .deps import ActorDep, AppDep, KeyDep
from .schemas import IsoDate, Strict

router = RouteBook(prefix="/api/v1/counter", tags=["counter"])

Reason = Literal["lost", "damaged", "expiring", "data_change", "bank_change"]


class RecordAttorney(Strict):
    person_id: int
    agent_name: str = Field(min_length=1, max_length=32)
    agent_citizen_id: str = Field(max_length=32)
    scope: list[str] = Field(max_length=10)
    valid_from: IsoDate
    valid_to: IsoDate
    document_ref: str = Field(min_length=1, max_length=64)


class Revoke(Strict):
    reason: str = Field("", max_length=128)


class Reverse(Strict):
    audit_record_id: int
    reason: str = Field(max_length=200)


class IdentityCheck(Strict):
    person_id: int
    presented_citizen_id: str = Field(max_length=32)
    attorney_id: int | None = None
    agent_citizen_id: str | None = Field(None, max_length=32)


class Apply(Strict):
    card_number: str = Field(max_length=16)
    reason: Reason
    presented_citizen_id: str = Field(max_length=32)
    payment: Literal["cash", "card"] | None = None
    pin: str | None = Field(None, max_length=12, description="bank PIN, for payment by card")
    collect_center_code: str | None = Field(None, max_length=16)
    bank_code: str | None = Field(None, max_length=16)
    record_formal_loss: bool = False
    attorney_id: int | None = None
    agent_citizen_id: str | None = Field(None, max_length=32)


class ApplyWaived(Strict):
    card_number: str = Field(max_length=16)
    reason: Reason
    presented_citizen_id: str = Field(max_length=32)
    waive_reason: str = Field(max_length=128)
    collect_center_code: str | None = Field(None, max_length=16)
    bank_code: str | None = Field(None, max_length=16)
    record_formal_loss: bool = False
    attorney_id: int | None = None
    agent_citizen_id: str | None = Field(None, max_length=32)


class AgentCollect(Strict):
    presented_citizen_id: str = Field(max_length=32)
    attorney_id: int | None = None
    agent_citizen_id: str | None = Field(None, max_length=32)


def pdf(content: bytes, name: str) -> Response:
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{name}.pdf"', "Cache-Control": "no-store"})


def receipt_pdf(render: str, data: Mapping[str, Any]) -> Response:
    """A counter receipt as a PDF named by its number, drawn by sscard.documents.receipts.<render>."""
    from ..documents import receipts  # reportlab: imported by the first receipt, not at start-up

    return pdf(getattr(receipts, render)(data), data["receipt_no"])


@router.get("/persons")
def find_by_name(app: AppDep, actor: ActorDep, name: Annotated[str, Query(max_length=32)],
                 birth_date: Annotated[IsoDate, Query()]) -> r.CounterFindByNameOut:
    return window.find_by_name(app, actor, name, birth_date)


@router.get("/persons/{person_id}")
def person_overview(person_id: int, app: AppDep, actor: ActorDep) -> r.CounterPersonOut:
    return window.person_overview(app, actor, person_id)


@router.post("/identity-checks", status_code=201)
def identity_check(body: IdentityCheck, app: AppDep, actor: ActorDep, key: KeyDep) -> r.CounterVisitOut:
    return attorney.identity_check(app, actor, body.person_id, body.presented_citizen_id, body.attorney_id,
                                   body.agent_citizen_id, idempotency_key=key)


@router.get("/visits/{visit_id}")
def get_visit(visit_id: int, app: AppDep, actor: ActorDep) -> r.CounterVisitOut:
    return attorney.get_visit(app, actor, visit_id)


@router.post("/visits/{visit_id}/end")
def end_visit(visit_id: int, app: AppDep, actor: ActorDep, key: KeyDep) -> r.CounterEndVisitOut:
    return attorney.end_visit(app, actor, visit_id, idempotency_key=key)


@router.post("/attorneys", status_code=201)
def record_attorney(body: RecordAttorney, app: AppDep, actor: ActorDep, key: KeyDep) -> r.AttorneyOut:
    return attorney.record(app, actor, body.person_id, body.agent_name, body.agent_citizen_id, body.scope,
                           body.valid_from, body.valid_to, body.document_ref, idempotency_key=key)


@router.get("/persons/{person_id}/attorneys")
def list_attorneys(person_id: int, app: AppDep, actor: ActorDep) -> r.AttorneyListOut:
    return attorney.list_for_person(app, actor, person_id)


@router.get("/attorneys/{attorney_id}")
def view_attorney(attorney_id: int, app: AppDep, actor: ActorDep) -> r.AttorneyOut:
    return attorney.view(app, actor, attorney_id)


@router.post("/attorneys/{attorney_id}/revoke")
def revoke_attorney(attorney_id: int, body: Revoke, app: AppDep, actor: ActorDep, key: KeyDep) -> r.AttorneyRevokeOut:
    return attorney.revoke(app, actor, attorney_id, body.reason, idempotency_key=key)


@router.post("/replacements", status_code=201)
async def apply(body: Apply, app: AppDep, actor: ActorDep, key: KeyDep) -> r.ReplacementApplyOut:
    """A card payment carries the bank PIN: kept under its key as a terminal payment is (the request's
    fingerprint is an HMAC with the server key, operation.request_hash, so it is no trace of the PIN)."""
    # group-committed (the fee moves money): no thread is held while it waits
    return await batching.acall(app, replacement.apply, actor, body.card_number, body.reason,
                                body.presented_citizen_id, body.payment, body.collect_center_code, body.bank_code,
                                body.record_formal_loss, body.attorney_id, body.agent_citizen_id, body.pin,
                                idempotency_key=key)


@router.post("/replacements/waived", status_code=201)
async def apply_waived(body: ApplyWaived, app: AppDep, actor: ActorDep, key: KeyDep) -> r.ReplacementApplyOut:
    return await batching.acall(app, replacement.apply_waived, actor, body.card_number, body.reason,
                                body.presented_citizen_id, body.waive_reason, body.collect_center_code,
                                body.bank_code, body.record_formal_loss, body.attorney_id, body.agent_citizen_id,
                                idempotency_key=key)


@router.get("/receipts/{receipt_no}")
def fee_receipt(receipt_no: str, app: AppDep, actor: ActorDep) -> r.ReplacementReceiptOut:
    return replacement.receipt(app, actor, receipt_no)


@router.get("/receipts/{receipt_no}/pdf", response_class=Response, responses=r.PDF)
def fee_receipt_pdf(receipt_no: str, app: AppDep, actor: ActorDep) -> Response:
    return receipt_pdf("fee_receipt_pdf", replacement.receipt(app, actor, receipt_no))


@router.post("/production-batches/{batch_code}/complete")
def complete_batch(batch_code: str, app: AppDep, actor: ActorDep, key: KeyDep) -> r.ReplacementCompleteBatchOut:
    return production.complete_batch(app, actor, batch_code, idempotency_key=key)


@router.post("/cards/{card_number}/collect")
def collect(card_number: str, body: AgentCollect, app: AppDep, actor: ActorDep, key: KeyDep) -> r.CounterCollectOut:
    return cards.collect_card(app, actor, card_number, body.presented_citizen_id, body.attorney_id,
                              body.agent_citizen_id, idempotency_key=key)


class AgentReset(Strict):
    presented_citizen_id: str = Field(max_length=32)
    attorney_id: int
    agent_citizen_id: str = Field(max_length=32)


@router.post("/cards/{card_number}/ss-password/reset-by-agent")
def reset_ss_password_by_agent(card_number: str, body: AgentReset, app: AppDep, actor: ActorDep, key: KeyDep) -> r.SsPasswordResetOut:
    """The SS password back to the initial one, for an agent with a power of attorney naming it and both IDs
    (the cardholder in person uses /api/v1/cards/{card_number}/ss-password/reset)."""
    return passwords.reset_ss_password_by_agent(app, actor, card_number, body.presented_citizen_id,
                                                body.attorney_id, body.agent_citizen_id, idempotency_key=key)


@router.get("/cards/{card_number}/collection-receipt")
def collection_receipt(card_number: str, app: AppDep, actor: ActorDep) -> r.CounterCollectionReceiptOut:
    return cards.collection_receipt(app, actor, card_number)


@router.get("/cards/{card_number}/collection-receipt/pdf", response_class=Response, responses=r.PDF)
def collection_receipt_pdf(card_number: str, app: AppDep, actor: ActorDep) -> Response:
    return receipt_pdf("collection_receipt_pdf", cards.collection_receipt(app, actor, card_number))


@router.get("/queue")
def center_queue(app: AppDep, actor: ActorDep) -> r.CounterQueueOut:
    return window.queue(app, actor)


@router.get("/reports/day", responses=r.CSV_OR_JSON)
def day_report(request: Request, app: AppDep, actor: ActorDep, day: IsoDate | None = None,
               center_code: str | None = Query(None, max_length=16),
               format: Literal["json", "csv"] = "json") -> r.ReportsCenterDayOut:
    report = reports.center_day(app, actor, day, center_code)
    if format == "csv":
        return Response(reports.to_csv(report, language(request)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="day-{report["day"]}.csv"'})
    return report


@router.get("/reversals")
def reversible_actions(app: AppDep, actor: ActorDep) -> r.ReversalCandidatesOut:
    """Today's actions of the center's clerks that its supervisor may reverse, each with why it cannot be."""
    return reversal.candidates(app, actor)


@router.post("/reversals", status_code=201)
def reverse_action(body: Reverse, app: AppDep, actor: ActorDep, key: KeyDep) -> r.ReversalReverseOut:
    """A center supervisor reverses a clerk's action of today (RULES §1), with a reason."""
    return reversal.reverse(app, actor, body.audit_record_id, body.reason, idempotency_key=key)
