"""/api/v1/events: the feed of events for partners (issue 18), scoped by who asks (services.events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Query
from pydantic import BaseModel, Field

from ..http import RouteBook
from ..services import events
from .deps import ActorDep, AppDep

router = RouteBook(prefix="/api/v1", tags=["events"])


class EventOut(BaseModel):
    id: int = Field(description="the feed position: ask again with after=<the last id you processed>")
    uuid: str = Field(description="the event's id for de-duplication (NATS: the Nats-Msg-Id header)")
    type: str = Field(description="card.ss_status_changed | card.bank_status_changed | bank.pension_credited")
    occurred_at: datetime
    bank: str | None = Field(description="the card's bank code")
    center: str | None = Field(description="the service center the card is (or will be) collected at")
    card_number: str | None = Field(description="masked: A1*****2X")
    pan: str | None = Field(description="in full for the card's own bank (its staff and ATMs), masked for anyone "
                            "else (a POS terminal included)")
    before: str | None = Field(description="the state before (null: the card or account is new)")
    after: str | None
    operation: str = Field(description="the business operation that changed it, e.g. ss_loss.report_formal")
    audit_id: int | None = Field(description="the operation's audit record")
    data: dict[str, Any]


class EventFeed(BaseModel):
    events: list[EventOut]
    next_after: int = Field(description="pass as `after` to get what follows (unchanged when nothing new)")


@router.get("/events", response_model=EventFeed, operation_id="events_feed",
            summary="Events after a position, oldest first, as the caller may see them")
@router.get("/terminal/events", response_model=EventFeed, operation_id="terminal_events_feed", tags=["terminal"],
            summary="Events of the terminal's bank's cards (ATM, POS), oldest first")
def events_feed(
    app: AppDep,
    actor: ActorDep,
    after: int = Query(0, ge=0, le=2**62, description="the last event id already processed (0: from the start)"),
    limit: int = Query(events.DEFAULT_LIMIT, ge=1, le=events.MAX_LIMIT),
) -> dict:
    """A bank's staff (and, on the terminal path, its ATMs and POS) read their own bank's cards' events
    (both sides), center staff the social security side's events, the operator everything; cardholders
    are refused."""
    return events.feed(app, actor, after, limit)
