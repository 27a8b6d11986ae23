"""Production batches: applied cards go to the factory together and come back ready together."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from ..core.errors import About, SscardError
from ..core.roles import CENTER_STAFF, Role
from ..models.counter import ReplacementApplication
from ..models.foundation import Card, ProductionBatch
from . import access, lookup
from . import card_lifecycle as lifecycle
from .access import Scope
from .operation import Op, operation


def add_working_days(start: date, days: int) -> date:
    """Monday to Friday count; public holidays are not modelled (a city would add a calendar here)."""
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


@operation("production.start_batch", roles=CENTER_STAFF | {Role.OPERATOR}, scope=Scope.CENTER)
def start_batch(op: Op, center_code: str) -> dict[str, Any]:
    """Every applied card of the center goes into one new batch (`applied -> in_production`)."""
    center = lookup.center_by_code(op.session, center_code)
    access.require_center(op.actor, center.id, about=About("center", center.code, None))
    count = op.session.scalar(lookup.applied_cards(center.id))
    if not count:
        raise SscardError("not_found", what=("待制卡申请", "applied cards"))
    working_days = 0 if center.instant_issue else op.policy.production.working_days
    today = op.app.clock.today()
    seq = (op.session.scalar(select(func.count()).select_from(ProductionBatch)) or 0) + 1  # count(*) is never NULL
    batch = ProductionBatch(
        code=f"B{today:%Y%m%d}{center.code[-3:]}{seq:05d}",
        center_id=center.id,
        status="in_production",
        card_count=count,
        created_at=op.now,
        due_date=add_working_days(today, working_days),
    )
    op.session.add(batch)
    op.session.flush()
    lifecycle.ss_transition_all(op, "start_production", Card.apply_center_id == center.id,
                                event_detail={"batch": batch.code}, batch_id=batch.id)
    op.audit("batch", batch.code, before="applied", after="in_production", cards=count)
    return {"batch": batch.code, "cards": count, "due_date": batch.due_date, "status": batch.status}


# where a replacement's applicant chose to collect it (none for a first card)
_chosen_center = (select(ReplacementApplication.collect_center_id)
                  .where(ReplacementApplication.new_card_id == Card.id).correlate(Card).scalar_subquery())


@operation("production.complete_batch", roles=CENTER_STAFF | {Role.OPERATOR}, scope=Scope.CENTER)
def complete_batch(op: Op, batch_code: str) -> dict[str, Any]:
    """The batch is back from the factory: its cards are ready for collection at their center: a first
    card where it was applied for, a replacement at the center its applicant chose (one completion for
    both, whichever route or console completes the batch)."""
    batch = op.session.scalar(select(ProductionBatch).where(ProductionBatch.code == batch_code))
    if batch is None:
        raise SscardError("not_found", what=("制卡批次", "production batch"))
    access.require_center(op.actor, batch.center_id, about=About("batch", batch.code, None))
    if batch.status != "in_production":
        raise SscardError("illegal_transition", state=batch.status, event="complete_batch")
    ready = lifecycle.ss_transition_all(op, "finish_production", Card.batch_id == batch.id,
                                        event_detail={"batch": batch.code},
                                        ready_center_id=func.coalesce(_chosen_center, Card.apply_center_id))
    batch.status = "ready"
    batch.completed_at = op.now
    routed = _routed_elsewhere(op, batch)
    op.audit("batch", batch.code, before="in_production", after="ready", cards=len(ready),
             routed_to_other_centers=routed)
    return {"batch": batch.code, "cards": len(ready), "status": batch.status, "routed_to_other_centers": routed}


def _routed_elsewhere(op: Op, batch: ProductionBatch) -> int:
    """How many of the batch's replacements wait at another center than the one they were applied at
    (the window tells the clerk, whose own queue will not show them)."""
    return op.session.scalar(
        select(func.count()).select_from(ReplacementApplication)
        .join(Card, Card.id == ReplacementApplication.new_card_id)
        .where(Card.batch_id == batch.id,
               ReplacementApplication.collect_center_id != ReplacementApplication.apply_center_id)
    ) or 0
