"""The outbox of events for partners (issue 18): written in the same transaction as the change.

`events.id` is the feed's cursor: ids are handed out in commit order (services.events takes a lock
before inserting, on PostgreSQL), so a reader that has seen id N has seen every event below it.
`event_publications` keeps, per publisher, the last id a broker acknowledged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base

ID = BigInteger().with_variant(Integer, "sqlite")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = {"sqlite_autoincrement": True}  # never reuse an id: it is a partner's cursor

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(48))
    side: Mapped[str] = mapped_column(String(8))  # ss | bank: who may read it besides the card's bank
    occurred_at: Mapped[datetime]
    bank_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    center_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    card_number: Mapped[str | None] = mapped_column(String(9), nullable=True)  # served masked
    pan: Mapped[str | None] = mapped_column(String(19), nullable=True)  # served in full only to its bank
    before: Mapped[str | None] = mapped_column(String(16), nullable=True)
    after: Mapped[str | None] = mapped_column(String(16), nullable=True)
    operation: Mapped[str] = mapped_column(String(48))
    audit_id: Mapped[int | None] = mapped_column(ID, nullable=True)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


Index("ix_events_bank_id_id", Event.bank_id, Event.id)
Index("ix_events_side_id", Event.side, Event.id)


class EventPublication(Base):
    """How far a publisher (e.g. "nats") has got: the last event id its broker acknowledged."""

    __tablename__ = "event_publications"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(ID, default=0)
    updated_at: Mapped[datetime]
