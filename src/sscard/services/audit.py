"""Reading the audit log: supervisors and operators (filtered, newest first, masked; a bank supervisor only
their own bank's records, a center supervisor only the agency's), and a cardholder's own access log (who looked at or changed my record, by role
and place, never by name)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, TextClause, and_, false, or_, select, text, true, union_all

from ..core.clock import as_utc
from ..core.errors import About
from ..core.identifiers import mask_name
from ..core.labels import RENAMED_OPERATIONS
from ..core.roles import Role
from ..models.counter import PowerOfAttorney
from ..models.foundation import (
    AGENCY_RECORDS,
    AuditRecord,
    Bank,
    Outlet,
    ServiceCenter,
    Terminal,
)
from . import access, lookup
from .access import Scope
from .operation import Op, query

Condition = ColumnElement[bool] | TextClause  # a part of the log (`newest_first`)


def records_in_scope(op: Op) -> list[Condition] | None:
    """Which audit records the actor may read, as disjoint parts (`newest_first`): a bank supervisor their own
    bank's (`bank_records`), a center supervisor the agency's (`AGENCY_RECORDS`), an operator every record
    (None): the operator runs the city. The one place the audit reads take their scope from."""
    if op.actor.role is Role.CENTER_SUPERVISOR:
        return [agency_records()]
    return bank_records(op)


def agency_records() -> TextClause:
    """The agency's records (models.foundation.AGENCY_RECORDS, whose docstring is the rule), as a condition
    whose text is the one of the partial index its newest-first walk uses (`ix_audit_records_agency`):
    plain text, which SQLite does not compare to 1 as it would a boolean expression."""
    return text(f"({AGENCY_RECORDS})")


def bank_records(op: Op) -> list[Condition] | None:
    """Which audit records the actor may read, as disjoint parts (`newest_first`): for a bank supervisor
    (the bank side) only their own bank's, None (every record) for anyone else (`records_in_scope` gives
    center supervisors the agency's).

    A bank's own records are, from the record's own columns (no column names the bank):
    - made by the bank: at one of its outlets or terminals (`place`: a teller's outlet, an ATM's or a POS's
      code), by one of its staff (`actor_id` of a staff user of the bank, wherever they worked), or by a
      caller on its hotline (`place` "bank:<code>"; `object` the bank itself for an identification refused
      there);
    - about the bank's objects, unless it is a read by someone else (who at the agency looked at a record
      is the cardholder's business, not the bank's): an account of the bank (`bank_account`, its PAN) or a
      card of the bank (`card`, its card number: both sides of the card, as the event feed gives a bank
      both sides' events of its own cards).
    Not the bank's: the social security side's records about people (logins, query passwords, insurance,
    medical settlements, certificates, the window's visits and reads), other banks' records, the city's
    administration.

    The log's insert trigger writes that rule's answer into each record as it is inserted
    (`maker_bank_id`, `object_bank_id`: audit_chain.BANK_COLUMNS), so a bank's records are read by those
    columns' indexes, in two disjoint parts: those its bank made, and those about its objects that another
    made. Marks the declared `Scope.OWN` checked (services.access.scope_guard)."""
    actor = op.actor
    if not access.is_bank_side(actor):
        return None
    access.checked(Scope.OWN)  # the read below keeps to the actor's bank
    if actor.bank_id is None:
        return [false()]
    r = AuditRecord
    return [
        r.maker_bank_id == actor.bank_id,
        and_(r.object_bank_id == actor.bank_id, r.result != "viewed",
             or_(r.maker_bank_id.is_(None), r.maker_bank_id != actor.bank_id)),
    ]


def newest_first(columns: Sequence[Any], parts: Sequence[Condition], where: Sequence[ColumnElement[bool]],
                 limit: int, offset: int = 0) -> Select[Any]:
    """The audit records of any of `parts` (disjoint: no record in two) that also meet every condition of
    `where`, newest first, one page. Each part is read on its own, newest first, up to the page's end (an
    index ending with the id walked backwards: migration 0019), and the page is taken from what they
    found: where one query with `part OR part` walked back through the whole log for a rare filter."""
    order = AuditRecord.id.desc()
    if len(parts) == 1:
        return select(*columns).where(parts[0], *where).order_by(order).limit(limit).offset(offset)
    found = [select(*columns).where(part, *where).order_by(order).limit(limit + offset).subquery()
             for part in parts]
    pages = union_all(*(select(part) for part in found)).subquery()
    return select(pages).order_by(pages.c.id.desc()).limit(limit).offset(offset)


MAX_OFFSET = 1_000_000
"""How deep a page of the log may start: each page reads every record before it (newest first), and an
offset past what a 64-bit integer holds was a database error. Older records are reached by `until`."""

_COLUMNS = [AuditRecord.__table__.c[name] for name in (
    "id", "at", "actor_kind", "actor_id", "actor_role", "on_behalf_of", "attorney_id", "channel", "place",
    "operation", "object_type", "object_id", "person_id", "before", "after", "result", "detail")]


@query("audit.read", roles={Role.CENTER_SUPERVISOR, Role.BANK_SUPERVISOR, Role.OPERATOR}, scope=Scope.OWN)
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
    """The audit log, newest first, filtered, in the actor's scope (`records_in_scope`: a bank supervisor
    their own bank's records, a center supervisor the agency's, an operator all). A bank supervisor asking
    for a person who is not their bank's customer is answered `person_not_found` (no "viewed" record), as
    every scoped read of a person refuses, and the refused attempt is recorded naming the person's trail
    (a refusal that names what it was about is recorded, operation.py `_refusal_recorded`), a person of
    nobody's alike: the auditor sees the bank's attempts at other banks' customers (session 23)."""
    if person_id is not None:  # the bank side: only its own customers
        lookup.person_in_scope(op.rows, op.actor, person_id, about=About("audit_log", str(person_id), person_id))
    where: list[ColumnElement[bool]] = []
    for column, value in (
        (AuditRecord.operation, operation),
        (AuditRecord.channel, channel),
        (AuditRecord.object_id, object_id),
        (AuditRecord.person_id, person_id),
        (AuditRecord.actor_id, actor_id),
        (AuditRecord.result, result),
    ):
        if value is not None:
            where.append(column == value)
    if since is not None:
        where.append(AuditRecord.at >= as_utc(since))  # a time given without a zone is UTC
    if until is not None:
        where.append(AuditRecord.at < as_utc(until))
    if person_id is not None:
        op.audit("audit_log", person_id, person_id=person_id)  # a person's trail is their data too
    parts = records_in_scope(op) or [true()]
    rows = op.session.execute(newest_first(_COLUMNS, parts, where, max(1, min(limit, 1000)),
                                           max(0, min(offset, MAX_OFFSET)))).all()
    return {"records": [audit_view(r) for r in rows], "limit": limit, "offset": offset}


def audit_view(r: Any) -> dict[str, Any]:
    """One record as the readers of the log see it (`r`: a row of `_COLUMNS`, or the record itself)."""
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


# Who the cardholder's access log lists: everyone but the cardholder themself, and every login as them (a
# channel's gateway identifying someone with their query password or their bank PIN / personal data):
# whoever made it, the cardholder or someone else, it is how their record was opened, and a login they did
# not make is what they most need to see (session 26: the page hid logins, someone else's successful one too).
_OTHERS = ("staff", "terminal", "system", "operator")
LOGINS = ("query_password.login", "hotline.bank_identify")


@query("audit.about_me", roles={Role.CARDHOLDER}, scope=Scope.OWN)
def about_me(op: Op, limit: int = 200) -> dict[str, Any]:
    """PIPL's right to know: every audit record about me made by staff, terminals or the system, newest
    first: when, which operation, viewed / changed / refused, the role and the place by name, and whether an
    agent acted under my power of attorney (its reference, the agent's masked name: session 23's auditor
    found the record had it and the page did not say). The staff member's name and id are never part of
    the answer."""
    me = op.actor.person_id
    assert me is not None  # a cardholder actor always carries its person id (the role checked above)
    access.require_self(op.actor, me)  # always the caller's own: no person id is taken from outside
    r = AuditRecord
    rows = op.session.execute(newest_first(
        [r.id, r.at, r.operation, r.result, r.actor_kind, r.actor_role, r.channel, r.place, r.attorney_id],
        [r.person_id == me, and_(r.on_behalf_of == me, or_(r.person_id.is_(None), r.person_id != me))],
        [or_(r.actor_kind.in_(_OTHERS), and_(r.actor_kind == "channel", r.operation.in_(LOGINS)))],
        max(1, min(int(limit), 500)))).all()
    places = _place_names(op, {r.place for r in rows if r.place})
    poas = _my_powers_of_attorney(op, me, {r.attorney_id for r in rows if r.attorney_id is not None})
    return {"records": _merge_repeats([{
        "at": r.at,
        "operation": r.operation,
        "kind": _kind(r.operation, r.result),
        "result": r.result,
        "role": _role(r, places),
        "channel": r.channel,
        "place": places.get(r.place, {}).get("name", ""),
        "place_en": places.get(r.place, {}).get("name_en", ""),
        **_agent(r.attorney_id, poas),
        "count": 1,
    } for r in rows])}


def _agent(attorney_id: int | None, poas: dict[int, PowerOfAttorney]) -> dict[str, Any]:
    """Whether an agent acted under a power of attorney (the record's `attorney_id`), and which: the
    document's reference and the agent's masked name, when it is the cardholder's own power of attorney."""
    if attorney_id is None:
        return {"agent": False, "attorney_ref": "", "agent_name": ""}
    poa = poas.get(attorney_id)
    return {"agent": True, "attorney_ref": poa.document_ref if poa else "",
            "agent_name": mask_name(poa.agent_name) if poa else ""}


def _my_powers_of_attorney(op: Op, me: int, ids: set[int]) -> dict[int, PowerOfAttorney]:
    if not ids:
        return {}
    return {p.id: p for p in op.session.scalars(select(PowerOfAttorney).where(
        PowerOfAttorney.id.in_(ids), PowerOfAttorney.person_id == me))}


def _role(r: Any, places: dict[str, dict[str, Any]]) -> str:
    """Who, as the access log says it: a role, a terminal's kind, or for a login the channel it came through
    (`login_portal`, `login_hotline_12333`...): never the staff member's or the gateway's id."""
    if r.actor_kind == "terminal":
        return str(places.get(r.place, {}).get("role", "terminal"))
    if r.operation in LOGINS:
        return f"login_{r.channel}"
    return str(r.actor_role)


def _kind(operation: str, result: str) -> str:
    """What the access log calls a record: viewed, changed or refused. An operation declared `keyed=False`
    changes nothing a retry could apply twice (a balance inquiry, a medical pre-settlement, a certificate's
    check: at most a failure counter), so done, it is a look at the record, not a change (session 21's
    cardholder probe found them listed as changes)."""
    if operation in LOGINS:
        return "login" if result == "ok" else "login_failed"
    if result == "viewed":
        return "viewed"
    if result != "ok":
        return "refused"
    decl = access.DECLARATIONS.get(RENAMED_OPERATIONS.get(operation, operation))
    return "viewed" if decl is not None and not decl.keyed else "changed"


_SAME = ("operation", "kind", "result", "role", "channel", "place", "agent", "attorney_ref")


VISIT_SECONDS = 30 * 60
"""A counter visit's reads of one kind are one line of the access log: a teller's page shows the account's last
transactions each time it is drawn (23 times in one visit, in session 21's probe)."""


def _merge_repeats(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line, with how many times, for the same thing done again within a minute (a console page reads a
    record several times while it is shown), and for the same read by the same role at the same place within
    a visit (VISIT_SECONDS), whatever was done between: the line keeps its newest time. Changes and refusals
    are never folded across another line."""
    out: list[dict[str, Any]] = []
    views: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rec in records:
        last = out[-1] if out else None
        same = tuple(rec[k] for k in _SAME)
        if rec["kind"] == "viewed" and same in views and (views[same]["_oldest"] - rec["at"]).total_seconds() < VISIT_SECONDS:
            last = views[same]
        elif not (last and all(last[k] == rec[k] for k in _SAME) and (last["_oldest"] - rec["at"]).total_seconds() < 60):
            last = None
        if last is not None:
            last["count"] += 1
            last["_oldest"] = rec["at"]
            continue
        out.append({**rec, "_oldest": rec["at"]})
        if rec["kind"] == "viewed":
            views[same] = out[-1]
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
