"""Reading the audit log: supervisors and operators (filtered, newest first, masked), and a cardholder's
own access log (who looked at or changed my record, by role and place, never by name)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from ..core.clock import as_utc
from ..core.roles import Role
from ..models.foundation import AuditRecord, Bank, Outlet, ServiceCenter, Terminal
from . import access
from .access import Scope
from .operation import Op, query


@query("audit.read", roles={Role.CENTER_SUPERVISOR, Role.BANK_SUPERVISOR, Role.OPERATOR}, scope=Scope.CITY)
def read_audit(
    op: Op,
    operation: str | None = None,
    channel: str | None = None,
    object_id: str | None = None,
    person_id: int | None = None,
    actor_id: str | None = None,
    result: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    q = select(AuditRecord)
    for column, value in (
        (AuditRecord.operation, operation),
        (AuditRecord.channel, channel),
        (AuditRecord.object_id, object_id),
        (AuditRecord.person_id, person_id),
        (AuditRecord.actor_id, actor_id),
        (AuditRecord.result, result),
    ):
        if value is not None:
            q = q.where(column == value)
    if since is not None:
        q = q.where(AuditRecord.at >= as_utc(since))  # a time given without a zone is UTC
    if until is not None:
        q = q.where(AuditRecord.at < as_utc(until))
    if person_id is not None:
        op.audit("audit_log", person_id, person_id=person_id)  # a person's trail is their data too
    rows = op.session.scalars(q.order_by(AuditRecord.id.desc()).limit(min(limit, 1000)).offset(offset)).all()
    return {"records": [audit_view(r) for r in rows], "limit": limit, "offset": offset}


def audit_view(r: AuditRecord) -> dict[str, Any]:
    from ..core.identifiers import mask_text

    return {
        "id": r.id,
        "at": r.at,
        "actor": {"kind": r.actor_kind, "id": r.actor_id, "role": r.actor_role},
        "on_behalf_of": r.on_behalf_of,
        "attorney_id": r.attorney_id,
        "channel": r.channel,
        "place": r.place,
        "operation": r.operation,
        "object_type": r.object_type,
        "object_id": mask_text(r.object_id),
        "person_id": r.person_id,
        "before": r.before,
        "after": r.after,
        "result": r.result,
        "detail": r.detail,
    }


# Who the cardholder's access log lists: everyone but the cardholder themself (and the channels' gateways,
# whose records are the cardholder's own login attempts).
_OTHERS = ("staff", "terminal", "system", "operator")


@query("audit.about_me", roles={Role.CARDHOLDER}, scope=Scope.OWN)
def about_me(op: Op, limit: int = 200) -> dict[str, Any]:
    """PIPL's right to know: every audit record about me made by staff, terminals or the system, newest
    first: when, which operation, viewed / changed / refused, the role and the place by name. The staff
    member's name and id are never part of the answer."""
    me = op.actor.person_id
    assert me is not None  # a cardholder actor always carries its person id (the role checked above)
    access.require_self(op.actor, me)  # always the caller's own: no person id is taken from outside
    rows = op.session.execute(
        select(AuditRecord.at, AuditRecord.operation, AuditRecord.result, AuditRecord.actor_kind,
               AuditRecord.actor_role, AuditRecord.channel, AuditRecord.place)
        .where(or_(AuditRecord.person_id == me, AuditRecord.on_behalf_of == me),
               AuditRecord.actor_kind.in_(_OTHERS))
        .order_by(AuditRecord.id.desc()).limit(max(1, min(int(limit), 500)))
    ).all()
    places = _place_names(op, {r.place for r in rows if r.place})
    return {"records": _merge_repeats([{
        "at": r.at,
        "operation": r.operation,
        "kind": "viewed" if r.result == "viewed" else ("changed" if r.result == "ok" else "refused"),
        "result": r.result,
        "role": places.get(r.place, {}).get("role", "terminal") if r.actor_kind == "terminal" else str(r.actor_role),
        "channel": r.channel,
        "place": places.get(r.place, {}).get("name", ""),
        "place_en": places.get(r.place, {}).get("name_en", ""),
        "count": 1,
    } for r in rows])}


_SAME = ("operation", "kind", "result", "role", "channel", "place")


def _merge_repeats(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line for the same thing done again within a minute (a console page reads a record several
    times while it is shown), with how many times."""
    out: list[dict[str, Any]] = []
    for rec in records:
        last = out[-1] if out else None
        if last and all(last[k] == rec[k] for k in _SAME) and (last["_oldest"] - rec["at"]).total_seconds() < 60:
            last["count"] += 1
            last["_oldest"] = rec["at"]
            continue
        out.append({**rec, "_oldest": rec["at"]})
    for rec in out:
        del rec["_oldest"]
    return out


def _place_names(op: Op, codes: set[str]) -> dict[str, dict[str, Any]]:
    """Center, outlet or terminal codes -> the place's name (a terminal: where it stands, or its own name)."""
    if not codes:
        return {}
    out: dict[str, dict[str, Any]] = {}
    s = op.session
    centers = {c.id: c for c in s.scalars(select(ServiceCenter))}
    outlets = {o.id: o for o in s.scalars(select(Outlet))}
    banks = {b.id: b for b in s.scalars(select(Bank))}

    def outlet_names(o: Outlet) -> dict[str, Any]:
        bank = banks.get(o.bank_id)
        if o.name_en:
            return {"name": o.name, "name_en": o.name_en}
        return {"name": o.name, "name_en": f"{bank.name_en or bank.name} ({o.name})" if bank else o.name}

    for c in centers.values():
        if c.code in codes:
            out[c.code] = {"name": c.name, "name_en": c.name_en or c.name}
    for o in outlets.values():
        if o.code in codes:
            out[o.code] = outlet_names(o)
    for t in s.scalars(select(Terminal).where(Terminal.code.in_(codes))):
        if t.outlet_id in outlets:
            names = outlet_names(outlets[t.outlet_id])
        elif t.center_id in centers:
            names = {"name": centers[t.center_id].name, "name_en": centers[t.center_id].name_en or centers[t.center_id].name}
        else:
            names = {"name": t.merchant_name or t.name, "name_en": t.merchant_name or t.name}
        out[t.code] = {**names, "role": f"terminal_{t.kind}"}
    return out
