"""/api/v1 routes of the medical area (issue 5).

Terminals of designated hospitals and pharmacies: /api/v1/terminal/medical/... (pre-settlement,
settlement, refund, a settlement and its slip). Staff and the cardholder themself: a person's
settlements and personal account, any settlement's slip. Operators: institutions, their terminals and
the monthly contribution credit. Money is integer fen (`*_fen`) in and out.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from fastapi.responses import Response
from pydantic import Field, StrictInt

from ..http import RouteBook
from ..services import batching, medical
from . import responses as r
from .deps import ActorDep, AppDep, KeyDep
from .schemas import Strict

router = RouteBook(prefix="/api/v1", tags=["medical"])


class BillLineIn(Strict):
    category: Literal["drug", "treatment", "material"]
    name: str = Field("", max_length=64)
    code: str = Field("", max_length=32)
    amount_fen: Annotated[StrictInt, Field(gt=0, le=100_000_000)]
    covered: bool


class PreSettle(Strict):
    card_number: str = Field(max_length=16)
    ident_code: str = Field(max_length=40)
    lines: list[BillLineIn] = Field(min_length=1, max_length=200)
    use_personal_account: bool = True


class Settle(Strict):
    quote: str = Field(min_length=1, max_length=40_000)
    card_number: str = Field(max_length=16)
    ident_code: str = Field(max_length=40)
    ss_password: str = Field(max_length=20)
    pay_with: Literal["cash", "bank"] = "cash"
    bank_pin: str | None = Field(None, max_length=12)


class Refund(Strict):
    reason: str = Field("", max_length=64)


class AddInstitution(Strict):
    code: str = Field(min_length=1, max_length=16)
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["hospital", "pharmacy"]
    level: int | None = Field(None, ge=1, le=3)
    designated: bool = True
    area_code: str = Field("", max_length=6)
    settlement_bank_code: str | None = Field(None, max_length=16)
    settlement_account_no: str = Field("", max_length=32)


class SetDesignated(Strict):
    designated: bool


class AddTerminal(Strict):
    code: str = Field(min_length=1, max_length=24)
    name: str = Field("", max_length=64)


class Credit(Strict):
    citizen_id: str | None = Field(None, max_length=32)
    person_id: int | None = None
    amount_fen: Annotated[StrictInt, Field(ge=0, le=1_000_000)]


class CreditMonth(Strict):
    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    credits: list[Credit] = Field(min_length=1, max_length=10_000)


# ---------------------------------------------------------------- terminals


# Pre-settlements, settlements and refunds are group-committed (services.batching): the routes wait for
# their batch without holding a thread of the pool.


@router.post("/terminal/medical/pre-settlements")
async def pre_settle(body: PreSettle, app: AppDep, actor: ActorDep, key: KeyDep) -> r.MedicalPreSettleOut:
    return await batching.acall(app, medical.pre_settle, actor, body.card_number, body.ident_code,
                                [line.model_dump() for line in body.lines], body.use_personal_account,
                                idempotency_key=key)


@router.post("/terminal/medical/settlements", status_code=201)
async def settle(body: Settle, app: AppDep, actor: ActorDep, key: KeyDep) -> r.MedicalSettleOut:
    return await batching.acall(app, medical.settle, actor, body.quote, body.card_number, body.ident_code,
                                body.ss_password, body.pay_with, body.bank_pin, idempotency_key=key)


@router.post("/terminal/medical/settlements/{code}/refund", status_code=201)
async def refund(code: str, body: Refund, app: AppDep, actor: ActorDep, key: KeyDep) -> r.MedicalRefundOut:
    return await batching.acall(app, medical.refund, actor, code, body.reason, idempotency_key=key)


@router.get("/terminal/medical/settlements/{code}")
def terminal_settlement(code: str, app: AppDep, actor: ActorDep) -> r.MedicalSettlementOut:
    return medical.get_settlement(app, actor, code)


# ---------------------------------------------------------------- staff and cardholders


@router.get("/medical/settlements/{code}")
def get_settlement(code: str, app: AppDep, actor: ActorDep) -> r.MedicalSettlementOut:
    return medical.get_settlement(app, actor, code)


@router.get("/medical/settlements/{code}/slip.pdf", response_class=Response, responses=r.PDF)
def settlement_slip(code: str, app: AppDep, actor: ActorDep) -> Response:
    """The settlement slip (结算单) as a PDF, in Chinese: bill lines and the split."""
    from ..documents.medical_slip import render_slip  # reportlab: imported by the first slip, not at start-up

    view = medical.get_settlement(app, actor, code)
    return Response(render_slip(view), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{view["code"]}.pdf"'})


@router.get("/persons/{person_id}/medical/settlements")
def person_settlements(person_id: int, app: AppDep, actor: ActorDep, year: int | None = None,
                       limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> r.MedicalPersonSettlementsOut:
    return medical.person_settlements(app, actor, person_id, year=year, limit=limit, offset=offset)


@router.get("/persons/{person_id}/medical/account")
def personal_account(person_id: int, app: AppDep, actor: ActorDep,
                     movements: int = Query(20, ge=1, le=500)) -> r.MedicalPersonalAccountOut:
    return medical.personal_account(app, actor, person_id, movements=movements)


# ---------------------------------------------------------------- operators


@router.get("/medical/institutions")
def list_institutions(app: AppDep, actor: ActorDep, designated_only: bool = False) -> r.MedicalInstitutionsOut:
    return medical.list_institutions(app, actor, designated_only=designated_only)


@router.post("/medical/institutions", status_code=201)
def add_institution(body: AddInstitution, app: AppDep, actor: ActorDep, key: KeyDep) -> r.Institution:
    return medical.add_institution(app, actor, body.code, body.name, body.kind, body.level, body.designated,
                                   body.area_code, body.settlement_bank_code, body.settlement_account_no,
                                   idempotency_key=key)


@router.post("/medical/institutions/{code}/designation")
def set_designated(code: str, body: SetDesignated, app: AppDep, actor: ActorDep, key: KeyDep) -> r.Institution:
    return medical.set_designated(app, actor, code, body.designated, idempotency_key=key)


@router.post("/medical/institutions/{code}/terminals", status_code=201)
def add_terminal(code: str, body: AddTerminal, app: AppDep, actor: ActorDep, key: KeyDep) -> r.MedicalAddTerminalOut:
    return medical.add_terminal(app, actor, code, body.code, body.name, idempotency_key=key)


@router.post("/medical/contributions")
async def credit_month(body: CreditMonth, app: AppDep, actor: ActorDep, key: KeyDep) -> r.MedicalCreditMonthOut:
    # run by the group-commit writer in a transaction of its own (a month's credits): no thread held
    credits = [c.model_dump(exclude_none=True) for c in body.credits]
    return await batching.acall(app, medical.credit_month, actor, body.month, credits, idempotency_key=key)
