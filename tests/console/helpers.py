"""Small builders shared by the console tests (all through the services)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from sscard.core.identifiers import make_citizen_id
from sscard.models.foundation import AuditRecord
from sscard.services import attorney, replacement

AGENT_ID = make_citizen_id("330106", date(1975, 3, 9), 811)
OTHER_ID = make_citizen_id("330106", date(1977, 4, 2), 813)
ALL_SCOPES = sorted(attorney.SCOPES)


def poa(city, card, *, scope=None, days=30, start_offset=0, agent_id=AGENT_ID, user="clerk") -> dict:
    today = city.app.clock.today()
    return attorney.record(
        city.app, city.actor(user), card.person_id, "李四", agent_id, scope or ALL_SCOPES,
        today + timedelta(days=start_offset), today + timedelta(days=start_offset + days), "WT-2026-001",
    )


def ready_replacement(city, card, reason="damaged", **kw) -> dict:
    """Apply (cash fee) and take the new card through a production batch to ready."""
    clerk = city.actor("clerk")
    out = replacement.apply(city.app, clerk, card.card_number, reason, card.citizen_id, payment="cash", **kw)
    from sscard.services import production

    batch = production.start_batch(city.app, clerk, "C01")
    production.complete_batch(city.app, clerk, batch["batch"])
    return out


def audits(app, operation: str) -> list[AuditRecord]:
    with app.db.session() as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.operation == operation).order_by(AuditRecord.id)).all()
        s.expunge_all()
        return list(rows)
