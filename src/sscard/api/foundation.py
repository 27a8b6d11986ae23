"""/api/v1: people, cards, production, collection, passwords, losses, audit."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from ..core.identifiers import validate_card_number, validate_citizen_id, validate_pan
from ..core.roles import Channel, Role
from ..http import RouteBook, client_address
from ..services import audit, cards, enrolment, loss, passwords, production, throttle
from . import responses as r
from . import schemas as s
from .deps import ActorDep, AppDep, KeyDep
from .sessions import issue_cardholder_token

router = RouteBook(prefix="/api/v1", tags=["cards"])


@router.post("/persons", status_code=201)
def register_person(body: s.RegisterPerson, app: AppDep, actor: ActorDep, key: KeyDep) -> r.PersonRegisterOut:
    return enrolment.register_person(app, actor, body.citizen_id, body.name, body.phone, body.address,
                                     idempotency_key=key)


PersonId = Annotated[s.DbId, Path()]
BatchCode = Annotated[s.CleanStr, Path(max_length=24)]


def _q(max_length: int):
    """An optional text filter: bounded, and free of control characters."""
    return Annotated[s.CleanStr | None, Query(max_length=max_length)]


@router.get("/persons/{person_id}/cards")
def person_cards(person_id: PersonId, app: AppDep, actor: ActorDep) -> r.PersonCardsOut:
    return cards.person_cards(app, actor, person_id)


@router.get("/persons")
def find_person(app: AppDep, actor: ActorDep, citizen_id: _q(32) = None, card_number: _q(16) = None) -> r.PersonFindOut:
    return cards.find_person(app, actor, citizen_id=citizen_id, card_number=card_number)


@router.post("/cards", status_code=201)
def apply_first_card(body: s.ApplyFirstCard, app: AppDep, actor: ActorDep, key: KeyDep) -> r.CardApplyFirstOut:
    return enrolment.apply_first_card(app, actor, body.person_id, body.bank_code, body.center_code,
                                      idempotency_key=key)


@router.get("/cards/{card_number}")
def card_status(card_number: str, app: AppDep, actor: ActorDep) -> r.CardView:
    return cards.card_status(app, actor, card_number)


@router.get("/terminal/cards/{card_number}", tags=["terminal"], summary="Card status at a kiosk (deprecated)",
            deprecated=True)
def card_status_at_kiosk_without_password(card_number: str, app: AppDep, actor: ActorDep) -> r.CardView:
    """Deprecated, and refused (403 `forbidden`) to every terminal: a kiosk shows a card only with its
    social security password, `POST /api/v1/terminal/cards/{card_number}/status` (session 26; this answered
    any typed card number's holder and states). Kept in v1 so that a client of it gets its refusal, not a
    missing route."""
    return cards.card_status(app, actor, card_number)


@router.post("/terminal/cards/{card_number}/status", tags=["terminal"],
             summary="Card status at a kiosk, with the card's social security password")
def card_status_with_password(card_number: str, body: s.VerifyPassword, app: AppDep, actor: ActorDep,
                              key: KeyDep) -> r.CardView:
    """Both sides of the card, once its social security password verifies (wrong ones count toward its
    lock, as at `.../ss-password/verify`); a lost or unusable card is refused as there."""
    return passwords.card_status_with_password(app, actor, card_number, body.password, idempotency_key=key)


@router.post("/production-batches", status_code=201)
def start_batch(body: s.StartBatch, app: AppDep, actor: ActorDep, key: KeyDep) -> r.ProductionStartBatchOut:
    return production.start_batch(app, actor, body.center_code, idempotency_key=key)


@router.post("/production-batches/{batch_code}/complete")
def complete_batch(batch_code: BatchCode, app: AppDep, actor: ActorDep, key: KeyDep) -> r.ReplacementCompleteBatchOut:
    return production.complete_batch(app, actor, batch_code, idempotency_key=key)


@router.post("/cards/{card_number}/collect")
def collect(card_number: str, body: s.Collect, app: AppDep, actor: ActorDep, key: KeyDep) -> r.CounterCollectOut:
    return cards.collect_card(app, actor, card_number, body.presented_citizen_id, idempotency_key=key)


@router.post("/cards/{card_number}/unseal")
def unseal(card_number: str, body: s.Collect, app: AppDep, actor: ActorDep, key: KeyDep) -> r.CardState:
    """A card left uncollected past `card.uncollected_seal_days` is sealed: unsealed at a window with ID."""
    return cards.unseal_card(app, actor, card_number, body.presented_citizen_id, idempotency_key=key)


@router.post("/cards/{card_number}/ss-password/change")
@router.post("/terminal/cards/{card_number}/ss-password/change", tags=["terminal"],
             summary="Change the social security password at a kiosk")
def change_ss_password(card_number: str, body: s.ChangePassword, app: AppDep, actor: ActorDep, key: KeyDep) -> r.SsPasswordChangeOut:
    return passwords.change_ss_password(app, actor, card_number, body.old, body.new, body.new_again,
                                        idempotency_key=key)


@router.post("/cards/{card_number}/ss-password/verify")
@router.post("/terminal/cards/{card_number}/ss-password/verify", tags=["terminal"],
             summary="Verify the social security password at a kiosk, hospital or pharmacy")
def verify_ss_password(card_number: str, body: s.VerifyPassword, app: AppDep, actor: ActorDep, key: KeyDep) -> r.SsPasswordVerifyOut:
    return passwords.verify_ss_password(app, actor, card_number, body.password, idempotency_key=key)


@router.post("/cards/{card_number}/ss-password/reset")
def reset_ss_password(card_number: str, body: s.ResetPassword, app: AppDep, actor: ActorDep, key: KeyDep) -> r.SsPasswordResetOut:
    return passwords.reset_ss_password(app, actor, card_number, body.presented_citizen_id, body.new,
                                       idempotency_key=key)


@router.post("/cardholder/login")
def cardholder_login(body: s.Login, app: AppDep, key: KeyDep, request: Request) -> r.QueryPasswordLoginOut:
    """Log in with SS number or card number + query password; answers a bearer token for /api/v1.
    Wrong passwords count against the client's address too (429 too_many_attempts, Retry-After)."""
    from ..core.roles import Actor

    gateway = Actor(kind="channel", id="api", role=Role.SYSTEM, name="api login", channel=Channel.API)
    result = throttle.guarded_login(
        app, client_address(request), "api", body.login,
        lambda: passwords.login_with_query_password(app, gateway, body.login, body.password),
    )
    token = issue_cardholder_token(app, result["person_id"], result["generation"])
    return {"token": token, "person_id": result["person_id"], "must_change_password": result["must_change_password"]}


@router.post("/cardholder/query-password/change")
def change_query_password(body: s.ChangePassword, app: AppDep, actor: ActorDep, key: KeyDep) -> r.QueryPasswordChangeOut:
    return passwords.change_query_password(app, actor, body.old, body.new, body.new_again, idempotency_key=key)


@router.post("/query-password/reset")
def reset_query_password(body: s.ResetQueryPassword, app: AppDep, actor: ActorDep, key: KeyDep) -> r.QueryPasswordResetOut:
    return passwords.reset_query_password(app, actor, body.person_id, body.presented_citizen_id, idempotency_key=key)


@router.post("/cards/{card_number}/ss-loss/temporary")
def report_temporary_loss(card_number: str, app: AppDep, actor: ActorDep, key: KeyDep) -> r.SsLossReportTemporaryOut:
    return loss.report_temporary_loss(app, actor, card_number, idempotency_key=key)


@router.post("/cards/{card_number}/ss-loss/formal")
def report_formal_loss(card_number: str, body: s.PresentedId, app: AppDep, actor: ActorDep, key: KeyDep) -> r.SsLossReportFormalOut:
    return loss.report_formal_loss(app, actor, card_number, body.presented_citizen_id, body.attorney_id,
                                   body.agent_citizen_id, idempotency_key=key)


@router.post("/cards/{card_number}/ss-loss/cancel")
def cancel_ss_loss(card_number: str, body: s.OptionalPresentedId, app: AppDep, actor: ActorDep, key: KeyDep) -> r.CardState:
    return loss.cancel_ss_loss(app, actor, card_number, body.presented_citizen_id, idempotency_key=key)


@router.post("/bank-accounts/{pan}/loss/oral")
def report_oral_loss(pan: str, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankLossReportOralOut:
    return loss.report_oral_loss(app, actor, pan, idempotency_key=key)


@router.post("/bank-accounts/{pan}/loss/written")
def report_written_loss(pan: str, body: s.Collect, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankLossReportWrittenOut:
    return loss.report_written_loss(app, actor, pan, body.presented_citizen_id, idempotency_key=key)


@router.post("/bank-accounts/{pan}/loss/cancel")
def cancel_bank_loss(pan: str, body: s.OptionalPresentedId, app: AppDep, actor: ActorDep, key: KeyDep) -> r.BankAccountState:
    return loss.cancel_bank_loss(app, actor, pan, body.presented_citizen_id, idempotency_key=key)


@router.get("/audit")
def read_audit(
    app: AppDep,
    actor: ActorDep,
    operation: _q(48) = None,
    channel: _q(24) = None,
    object_id: _q(40) = None,
    person_id: Annotated[s.DbId | None, Query()] = None,
    actor_id: _q(32) = None,
    result: _q(40) = None,
    since: s.IsoDateTime | None = None,
    until: s.IsoDateTime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=audit.MAX_OFFSET),
) -> r.AuditReadOut:
    return audit.read_audit(app, actor, operation=operation, channel=channel, object_id=object_id,
                            person_id=person_id, actor_id=actor_id, result=result, since=since, until=until,
                            limit=limit, offset=offset)


@router.get("/identifiers/check")
def check_identifier(kind: str = Query(pattern="^(citizen_id|card_number|pan)$"), value: str = Query(max_length=40)
                     ) -> r.CheckIdentifierOut:
    """Validate an identifier: 200 with the normalised value, or 422 saying what is wrong."""
    check = {"citizen_id": validate_citizen_id, "card_number": validate_card_number, "pan": validate_pan}[kind]
    return {"kind": kind, "valid": True, "value": check(value)}
