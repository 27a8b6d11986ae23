"""Powers of attorney (授权委托书, RULES §7) and the window's identity check.

A clerk records a power of attorney: the principal, the agent (name and citizen ID), a scope (a set of
operation names), valid from/to and the document's reference. Every agent action calls
`require_valid(op, attorney_id, person_id, operation_name)`: an expired, not-yet-valid, revoked,
out-of-scope or someone else's power of attorney is refused with `attorney_not_valid`, and the power
of attorney is written into that action's audit record (on_behalf_of, attorney_id).

The identity check (`attorney.identity_check`) records who presented the cardholder's ID at the window:
the cardholder, or an agent with a valid power of attorney and their own ID. It opens a visit that
the same clerk's later actions refer to, so the full ID never has to travel through a page.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from ..core.clock import as_utc
from ..core.errors import About, SscardError, register_messages
from ..core.identifiers import ascii_digits, mask_citizen_id, mask_name, validate_citizen_id
from ..core.roles import CENTER_STAFF, Role
from ..models.counter import CounterVisit, PowerOfAttorney
from . import access, lookup
from .access import Scope
from .operation import Op, operation, query

register_messages({
    "visit_not_valid": (
        409,
        "身份核验已失效，请重新核验持卡人身份",
        "The identity check has lapsed: check the cardholder's ID again",
    ),
    "attorney_scope_empty": (422, "授权委托书须至少包含一项业务", "A power of attorney names at least one operation"),
    "attorney_dates_invalid": (
        422,
        "授权委托书的有效期不正确",
        "The power of attorney's dates are wrong (the end is before the start)",
    ),
})

# What an agent may be authorised to do at a window (RULES §6: apply, pay, collect, formal loss;
# §4: the SS password reset with both IDs).
SCOPES: dict[str, tuple[str, str]] = {
    "ss_loss.report_formal": ("正式挂失", "Formal loss"),
    "replacement.apply": ("申请补换卡", "Apply for a replacement or renewal"),
    "replacement.pay_fee": ("缴纳工本费", "Pay the production fee"),
    "card.collect": ("领取新卡", "Collect the new card"),
    "ss_password.reset": ("重置社保应用密码", "Reset the SS application password"),
}
VISIT_MINUTES = 30


def poa_view(poa: PowerOfAttorney, today: date) -> dict[str, Any]:
    return {
        "id": poa.id,
        "person_id": poa.person_id,
        "agent_name": mask_name(poa.agent_name),
        "agent_citizen_id": mask_citizen_id(poa.agent_citizen_id),
        "scope": list(poa.scope),
        "valid_from": poa.valid_from,
        "valid_to": poa.valid_to,
        "document_ref": poa.document_ref,
        "revoked_at": poa.revoked_at,
        "revoke_reason": poa.revoke_reason,
        "status": poa_status(poa, today),
    }


def poa_status(poa: PowerOfAttorney, today: date) -> str:
    if poa.revoked_at is not None:
        return "revoked"
    if today < poa.valid_from:
        return "not_yet_valid"
    if today > poa.valid_to:
        return "expired"
    return "valid"


@operation("attorney.record", roles=CENTER_STAFF, scope=Scope.OWN)
def record(op: Op, person_id: int, agent_name: str, agent_citizen_id: str, scope: list[str],
           valid_from: date, valid_to: date, document_ref: str) -> dict[str, Any]:
    person = lookup.person_by_id(op.session, person_id)
    agent_id = validate_citizen_id(agent_citizen_id)
    name = (agent_name or "").strip()
    ref = (document_ref or "").strip()
    if not (1 <= len(name) <= 32) or not (1 <= len(ref) <= 64):
        raise SscardError("invalid_request")
    if agent_id == person.citizen_id:
        raise SscardError("invalid_request")
    wanted = sorted(set(scope or []))
    if not wanted:
        raise SscardError("attorney_scope_empty")
    if any(s not in SCOPES for s in wanted):
        raise SscardError("invalid_request")
    if isinstance(valid_from, str):
        valid_from = date.fromisoformat(valid_from)
    if isinstance(valid_to, str):
        valid_to = date.fromisoformat(valid_to)
    if valid_to < valid_from:
        raise SscardError("attorney_dates_invalid")
    poa = PowerOfAttorney(
        person_id=person.id, agent_name=name, agent_citizen_id=agent_id, scope=wanted, valid_from=valid_from,
        valid_to=valid_to, document_ref=ref, center_id=op.actor.center_id, recorded_by=str(op.actor.id),
        created_at=op.now, revoke_reason="",
    )
    op.session.add(poa)
    op.session.flush()
    op.audit("power_of_attorney", poa.id, after="recorded", person_id=person.id, scope=wanted,
             valid_from=valid_from, valid_to=valid_to, agent=mask_name(name), document_ref=ref)
    return poa_view(poa, op.app.clock.today())


@query("attorney.list", roles=CENTER_STAFF, scope=Scope.OWN)
def list_for_person(op: Op, person_id: int) -> dict[str, Any]:
    person = lookup.person_by_id(op.session, person_id)
    rows = op.session.scalars(
        select(PowerOfAttorney).where(PowerOfAttorney.person_id == person.id).order_by(PowerOfAttorney.id.desc())
    ).all()
    today = op.app.clock.today()
    op.audit("person", person.id, person_id=person.id)
    return {"person_id": person.id, "attorneys": [poa_view(p, today) for p in rows]}


@query("attorney.view", roles=CENTER_STAFF, scope=Scope.OWN)
def view(op: Op, attorney_id: int) -> dict[str, Any]:
    poa = _get(op, attorney_id)
    op.audit("power_of_attorney", poa.id, person_id=poa.person_id)
    return poa_view(poa, op.app.clock.today())


@operation("attorney.revoke", roles=CENTER_STAFF, scope=Scope.OWN)
def revoke(op: Op, attorney_id: int, reason: str = "") -> dict[str, Any]:
    poa = _get(op, attorney_id)
    if poa.revoked_at is not None:
        raise SscardError("illegal_transition", state="revoked", event="revoke")
    before = end(op, poa, reason)
    op.audit("power_of_attorney", poa.id, before=before, after="revoked", person_id=poa.person_id,
             reason=poa.revoke_reason)
    return poa_view(poa, op.app.clock.today())


def end(op: Op, poa: PowerOfAttorney, reason: str) -> str:
    """Revoke `poa` from now (a revocation, or a supervisor's reversal of its recording); its state before."""
    before = poa_status(poa, op.app.clock.today())
    poa.revoked_at = op.now
    poa.revoked_by = str(op.actor.id)
    poa.revoke_reason = (reason or "").strip()[:128]
    return before


def _get(op: Op, attorney_id: int) -> PowerOfAttorney:
    poa = op.session.get(PowerOfAttorney, int(attorney_id)) if ascii_digits(str(attorney_id)) else None
    if poa is None:
        raise SscardError("not_found", what=("授权委托书", "power of attorney"))
    return poa


def require_valid(op: Op, attorney_id: int, person_id: int, operation_name: str | None) -> PowerOfAttorney:
    """The power of attorney if it lets its agent do `operation_name` for `person_id` today; else
    `attorney_not_valid`. Either way the action's audit record names it (refusals are audited too).
    `operation_name=None` checks only the principal and the dates (the identity check)."""
    poa = op.session.get(PowerOfAttorney, attorney_id)
    op.audit(on_behalf_of=person_id, attorney_id=attorney_id, attorney_scope_needed=operation_name or "")
    if poa is None or poa.person_id != person_id:
        raise SscardError("attorney_not_valid")
    if poa_status(poa, op.app.clock.today()) != "valid":
        raise SscardError("attorney_not_valid")
    if operation_name is not None and operation_name not in (poa.scope or []):
        raise SscardError("attorney_not_valid", covers=covers_text(poa.scope))
    return poa


IN_PERSON_ONLY = ("（此业务须由持卡人本人办理）", " (only the cardholder in person may do this)")


def refuse_agent(op: Op, attorney_id: int | None, person_id: int) -> None:
    """For what only the cardholder in person may do (cancel a loss, reset the query password: RULES §5, §6, a
    power of attorney can name neither, SCOPES): an agent is refused `attorney_not_valid`, recorded as every
    refused agent action is, naming the power of attorney and the principal (RULES §7, §9). The window console
    refused it itself before (session 25's probe): an agent's attempt left no record."""
    if attorney_id is None:
        return
    op.note(person_id=person_id, on_behalf_of=person_id, attorney_id=attorney_id, attorney_scope_needed=op.name)
    raise SscardError("attorney_not_valid", covers=IN_PERSON_ONLY)


def covers_text(scope: Iterable[str] | None) -> tuple[str, str]:
    """The tail of an out-of-scope refusal: what this power of attorney does cover (zh, en)."""
    names = [SCOPES.get(s, (s, s)) for s in sorted(scope or [])]
    return ("（此授权委托书仅委托：" + "、".join(n[0] for n in names) + "）",
            " (this power of attorney covers only: " + "; ".join(n[1].lower() for n in names) + ")")


def check_agent(op: Op, poa: PowerOfAttorney, agent_citizen_id: str | None) -> None:
    """The agent shows their own ID too: it must be the one the power of attorney names."""
    if not agent_citizen_id or validate_citizen_id(agent_citizen_id) != poa.agent_citizen_id:
        raise SscardError("identity_mismatch")


def agent_for(op: Op, attorney_id: int | None, agent_citizen_id: str | None, person_id: int,
              operation_name: str) -> PowerOfAttorney | None:
    """For services with an optional agent: None for the cardholder in person, else the checked POA."""
    if attorney_id is None:
        return None
    poa = require_valid(op, int(attorney_id), person_id, operation_name)
    check_agent(op, poa, agent_citizen_id)
    return poa


# ---------------------------------------------------------------- the identity check (a window visit)


def visit_view(op: Op, visit: CounterVisit) -> dict[str, Any]:
    poa = op.session.get(PowerOfAttorney, visit.attorney_id) if visit.attorney_id else None
    return {
        "id": visit.id,
        "person_id": visit.person_id,
        "presenter": visit.presenter,
        "attorney": poa_view(poa, op.app.clock.today()) if poa else None,
        "checked_at": visit.checked_at,
        "expires_at": as_utc(visit.checked_at) + timedelta(minutes=VISIT_MINUTES),
    }


@operation("attorney.identity_check", roles=CENTER_STAFF, scope=Scope.OWN)
def identity_check(op: Op, person_id: int, presented_citizen_id: str, attorney_id: int | None = None,
                   agent_citizen_id: str | None = None) -> dict[str, Any]:
    """The cardholder's ID is checked against the record (an agent also shows a valid power of
    attorney and their own ID); opens a visit for this clerk's next actions."""
    person = lookup.person_by_id(op.session, person_id)
    presenter = "agent" if attorney_id is not None else "cardholder"
    if attorney_id is not None:
        poa = require_valid(op, int(attorney_id), person.id, None)
        check_agent(op, poa, agent_citizen_id)
    lookup.check_presented_id(person, presented_citizen_id)
    visit = CounterVisit(person_id=person.id, center_id=op.actor.center_id, staff_id=str(op.actor.id),
                         presenter=presenter, attorney_id=attorney_id, checked_at=op.now)
    op.session.add(visit)
    op.session.flush()
    op.audit("visit", visit.id, after="identity_checked", person_id=person.id,
             on_behalf_of=person.id if attorney_id is not None else None, attorney_id=attorney_id,
             presenter=presenter)
    return visit_view(op, visit)


def _live_visit(op: Op, visit_id: int) -> CounterVisit:
    visit = op.session.get(CounterVisit, visit_id)
    if visit is None:
        raise SscardError("not_found", what=("办理记录", "visit"))
    if visit.staff_id != str(op.actor.id):  # another clerk's: answered as missing, recorded as the attempt it is
        refused = SscardError("not_found", what=("办理记录", "visit"))  # (session 22's auditor: no record of
        refused.about = About("visit", str(visit.id), visit.person_id)  # a try at another clerk's "show ID")
        raise refused
    access.require_center(op.actor, visit.center_id, about=About("visit", str(visit.id), visit.person_id))
    if visit.ended_at is not None or op.now - as_utc(visit.checked_at) > timedelta(minutes=VISIT_MINUTES):
        raise SscardError("visit_not_valid")
    return visit


@query("attorney.visit", roles=CENTER_STAFF, scope=Scope.CENTER)
def get_visit(op: Op, visit_id: int) -> dict[str, Any]:
    visit = _live_visit(op, visit_id)
    op.audit("visit", visit.id, person_id=visit.person_id)
    return visit_view(op, visit)


@query("attorney.visit_identity", roles=CENTER_STAFF, scope=Scope.CENTER)
def visit_identity(op: Op, visit_id: int) -> dict[str, Any]:
    """For the console only (never rendered): what the visit's checked IDs are, to pass to services
    that take the presented IDs, as the API's callers do."""
    visit = _live_visit(op, visit_id)
    person = lookup.person_by_id(op.session, visit.person_id)
    poa = op.session.get(PowerOfAttorney, visit.attorney_id) if visit.attorney_id else None
    op.audit("visit", visit.id, person_id=person.id)
    return {
        "person_id": person.id,
        "presented_citizen_id": person.citizen_id,
        "attorney_id": visit.attorney_id,
        "agent_citizen_id": poa.agent_citizen_id if poa else None,
    }


@query("attorney.visit_actions", roles=CENTER_STAFF, scope=Scope.CENTER)
def visit_actions(op: Op, visit_id: int) -> dict[str, Any]:
    """What this visit may do now, per card and for the person: core.window's rules over each card's two
    states in effect, the visit's power-of-attorney scope and the clerk's role. The console shows it
    before any click; every action's service checks the same again."""
    from ..core.states import effective_bank_status, effective_seal_status, effective_ss_status
    from ..core.window import card_actions, person_actions
    from ..models.foundation import BankAccount, Card
    from .loss import replacement_applied

    visit = _live_visit(op, visit_id)
    poa = op.session.get(PowerOfAttorney, visit.attorney_id) if visit.attorney_id else None
    scope = frozenset(poa.scope or []) if poa is not None else None
    supervisor = op.actor.role is Role.CENTER_SUPERVISOR
    out = {}
    for card in op.session.scalars(select(Card).where(Card.person_id == visit.person_id)).all():
        ss = effective_seal_status(effective_ss_status(card.ss_status, card.loss_expires_at, op.now),
                                   card.ready_at, op.now, op.policy.card.uncollected_seal_days)
        account = op.session.scalar(select(BankAccount).where(BankAccount.card_id == card.id))
        bank = effective_bank_status(account.status, account.loss_expires_at, op.now) if account else None
        allowed = card_actions(ss, bank, replaced=replacement_applied(op, card), agent_scope=scope,
                               supervisor=supervisor, ready_here=card.ready_center_id == op.actor.center_id)
        out[str(card.id)] = {k: v.as_dict() for k, v in allowed.items()}
    op.audit("visit", visit.id, person_id=visit.person_id)
    person = lookup.person_by_id(op.session, visit.person_id)
    return {"visit_id": visit.id, "presenter": visit.presenter, "person_name": person.name, "scope": sorted(scope) if scope is not None else None,
            "cards": out, "person": {k: v.as_dict() for k, v in person_actions(agent_scope=scope).items()}}


@operation("attorney.end_visit", roles=CENTER_STAFF, scope=Scope.CENTER)
def end_visit(op: Op, visit_id: int) -> dict[str, Any]:
    visit = _live_visit(op, visit_id)
    visit.ended_at = op.now
    op.audit("visit", visit.id, before="identity_checked", after="ended", person_id=visit.person_id)
    return {"id": visit.id, "ended": True}

