"""Reading the audit log (supervisors and operators): filtered, newest first, masked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from ..core.clock import as_utc
from ..core.roles import Role
from ..models.foundation import AuditRecord
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
) -> dict:
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
    rows = op.session.scalars(q.order_by(AuditRecord.id.desc()).limit(min(limit, 1000)).offset(offset)).all()
    return {"records": [audit_view(r) for r in rows], "limit": limit, "offset": offset}


def audit_view(r: AuditRecord) -> dict:
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
