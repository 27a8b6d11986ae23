"""How long sscard keeps what only a retry needs: the first answers stored under Idempotency-Keys.

A keyed request's answer is kept for its client's retries (a lost answer, a timeout, a 503), which come
within seconds or minutes; after the policy's `api.idempotency_keep_days` (7 by default) the nightly
`sscard sweep` removes it, and a request sent again with that key runs as a new one (docs/API.md). Without
it the table held every answer ever given: a city's year of payments is about a billion rows.

The prune is an operation like any other (one transaction, one audit record), removing at most `limit`
records a call, oldest first by the created_at index (migration 0025): a first prune of a large table is
many short transactions, none holding its locks for long; the sweep calls it until one removes fewer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, select, tuple_

from ..core.roles import Actor, Role
from ..models.foundation import IdempotencyRecord
from .access import Scope
from .app import App
from .operation import Op, operation

KEYS = cast(Table, IdempotencyRecord.__table__)
PRUNE_LIMIT = 20_000  # records a call removes at most (one transaction)
SQLITE_PRUNE_LIMIT = 2_000
"""SQLite has one writer: 20,000 deletes in one transaction held payments up for half a second (session 22's
reliability probe: p99 456 ms during a sweep); 2,000 hold them ~50 ms, and payments go between."""


@operation("retention.prune_keys", roles={Role.SYSTEM, Role.OPERATOR}, scope=Scope.CITY, keyed=False)
def prune_keys(op: Op, limit: int = PRUNE_LIMIT) -> dict[str, Any]:
    """Remove up to `limit` stored answers older than the policy's keep days, oldest first."""
    keep_days = op.policy.api.idempotency_keep_days
    before = op.now - timedelta(days=keep_days)
    oldest = (select(KEYS.c.scope, KEYS.c.key).where(KEYS.c.created_at < before)
              .order_by(KEYS.c.created_at).limit(max(1, min(int(limit), PRUNE_LIMIT))))
    result = cast(CursorResult[Any], op.session.execute(delete(KEYS).where(tuple_(KEYS.c.scope, KEYS.c.key).in_(oldest))))
    removed = int(result.rowcount)
    op.audit("idempotency_records", "pruned", older_than=before.isoformat(), removed=removed, keep_days=keep_days)
    return {"removed": removed, "before": before, "keep_days": keep_days}


def prune_all(app: App, actor: Actor) -> int:
    """The nightly job: prune until a call removes less than its limit; how many were removed in all."""
    chunk = SQLITE_PRUNE_LIMIT if app.db.dialect == "sqlite" else PRUNE_LIMIT
    total = 0
    while True:
        removed = int(prune_keys(app, actor, chunk)["removed"])
        total += removed
        if removed < chunk:
            return total
