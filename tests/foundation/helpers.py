"""Shared by the foundation tests: headers, and a snapshot of every table to prove refusals change nothing."""

from __future__ import annotations

from sqlalchemy import select

from sscard.models import Base

AUDIT = "audit_records"


def headers(token: str | None = None, *, key: str | None = None, lang: str = "en") -> dict[str, str]:
    out = {"Accept-Language": lang}
    if token:
        out["Authorization"] = f"Bearer {token}"
    if key:
        out["Idempotency-Key"] = key
    return out


# Written by the audit chain's sealer (in the background, on its own time), not by the operation under
# test: the seals, and the queue of records still to seal (services/audit_chain.py).
SEALER_TABLES = {"audit_seals", "audit_unsealed"}


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order (but the sealer's)."""
    out: dict[str, list[tuple]] = {}
    with app.db.session() as s:
        for table in Base.metadata.sorted_tables:
            if table.name in SEALER_TABLES:
                continue
            rows = s.execute(select(table)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def business_tables(snap: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {name: rows for name, rows in snap.items() if name != AUDIT}


def last_audit_id(app) -> int:
    from sqlalchemy import func

    from sscard.models.foundation import AuditRecord

    with app.db.session() as s:
        return s.scalar(select(func.coalesce(func.max(AuditRecord.id), 0)))


def audit_since(app, last_id: int) -> list:
    from sscard.models.foundation import AuditRecord

    with app.db.session() as s:
        return list(s.scalars(select(AuditRecord).where(AuditRecord.id > last_id).order_by(AuditRecord.id)))
