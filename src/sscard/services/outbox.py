"""The outbox of events for partners (issue 18), written in the operation's own transaction.

What is recorded, by construction rather than route by route:
- every change of a card's SS status or of its bank account's status made through the ORM (the one
  way services change a state: `services.card_lifecycle.ss_transition` / `bank_transition`) is seen by a `before_flush` hook and
  queued as `card.ss_status_changed` / `card.bank_status_changed` (a new card or account: before null);
- bulk state changes (production batches, the nightly sweeps) are queued by `card_lifecycle`'s bulk
  transitions, and events that are not state changes (`bank.pension_credited`) by the service with `op.event(...)`.
The queue lives on the session; the operation frame (and the group-commit writer) writes it next to
the operation's audit record, stamped with the operation's name, time and audit record id.

Feed order: `events.id` is the cursor, so ids must become visible in id order. On PostgreSQL ids
come from a sequence and two transactions may commit in the other order (id 11 after id 12: a
reader at after=12 would never see 11). Writers of events therefore take one transaction-scoped
advisory lock just before inserting them and hold it to commit: ids are handed out in commit order.
Only transactions that carry events take it, at their very end. SQLite has one writer at a time
(BEGIN IMMEDIATE), which gives the same order.
"""

from __future__ import annotations

import itertools
import uuid as uuidlib
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import BigInteger, Table, bindparam, insert, inspect, literal_column, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..db import execute_many
from ..models.events import Event
from ..models.foundation import BankAccount, Card

PENDING = "sscard.events"  # session.info: events queued by this transaction, not yet written
LOCKED = "sscard.events.locked"  # session.info: the feed-order lock is held (PostgreSQL)
FEED_LOCK_KEY = 0x5353434152440002  # pg_advisory_xact_lock key of event writers ("SSCARD" 2)
EVENTS = cast(Table, Event.__table__)  # declared as a FromClause; a mapped class's table is a Table
SS_TYPES = frozenset({"card.ss_status_changed"})
_FEED_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_INSERT = insert(EVENTS)
_INSERT_INLINE = insert(EVENTS).inline()  # no RETURNING: it may be sent in a pipeline
# PostgreSQL: naming the audit record inserted just before (written out: a bound sequence name would keep the
# statement off db.execute_many's fast path, whose binds are the rows' own)
_INSERT_AFTER_AUDIT = insert(EVENTS).inline().values(
    audit_id=literal_column("currval(pg_get_serial_sequence('audit_records', 'id'))", BigInteger()))
_FACTS = (select(Card.id, Card.card_number, Card.bank_id, Card.ready_center_id, Card.apply_center_id, BankAccount.pan)
          .outerjoin(BankAccount, BankAccount.card_id == Card.id).where(Card.id.in_(bindparam("ids", expanding=True))))


class Fact(NamedTuple):
    """What an event takes of its card (the columns of _FACTS): given with `queue` when the caller holds
    it (a card it has just written), else read at the write, one query for all the events."""

    id: int
    card_number: str
    bank_id: int
    ready_center_id: int | None
    apply_center_id: int | None
    pan: str | None


def queue(session: Session, type: str, card: Card | BankAccount | int | None = None, *, before: str | None = None,
          after: str | None = None, fact: Fact | None = None, **data: Any) -> None:
    """Queue an event for this transaction (written with the audit record). `card`: the card, its
    bank account, or a card id; it gives the event its card number, PAN, bank and center (`fact`: those,
    when the caller knows them as they will be at the commit: then they are not read)."""
    side = "ss" if type in SS_TYPES else "bank"
    session.info.setdefault(PENDING, []).append(
        {"type": type, "side": side, "card": card, "before": before, "after": after, "data": data, "fact": fact})


def discard(session: Session) -> None:
    session.info.pop(PENDING, None)


@sa_event.listens_for(Session, "before_flush")
def _state_changes(session: Session, _flush_context: object, _instances: object) -> None:
    """Every card or bank account whose status this flush writes queues one event."""
    for obj in itertools.chain(session.new, session.dirty):
        kind = type(obj)
        if kind is Card:
            attr, name = "ss_status", "card.ss_status_changed"
        elif kind is BankAccount:
            attr, name = "status", "card.bank_status_changed"
        else:
            continue
        after = getattr(obj, attr)
        if obj in session.new:
            before = None
            data = {"reason": obj.reason} if kind is Card else {}
        else:
            history = inspect(obj).attrs[attr].history
            if not history.added:
                continue
            before = history.deleted[0] if history.deleted else None
            data = {}
        if before is not None and str(before) == str(after):
            continue
        queue(session, name, obj, before=None if before is None else str(before), after=str(after), **data)


def take(session: Session, *, flush: bool = True) -> list[dict[str, Any]]:
    """The events queued so far (after flushing the state changes still in the session, unless the
    caller has just flushed)."""
    if flush and (session.new or session.dirty):
        session.flush()
    return session.info.pop(PENDING, None) or []


def write(session: Session, items: list[dict[str, Any]], *, operation: str, now: datetime, audit_id: int | None) -> None:
    """Insert queued events, in feed order (see the module's docstring). Core statements built once,
    on the session's connection (the caller has flushed): this runs in the group-commit writer too."""
    if not items:
        return
    conn = session.connection()
    rows = _rows(conn, items, operation, now, audit_id)
    if conn.dialect.name == "postgresql" and not session.info.get(LOCKED):
        conn.execute(_FEED_LOCK, {"k": FEED_LOCK_KEY})
        session.info[LOCKED] = True
    conn.execute(_INSERT, rows)


def _card_id(ref: Card | BankAccount | int | str | None) -> int | None:
    if ref is None:
        return None
    if isinstance(ref, Card):
        return ref.id
    if isinstance(ref, BankAccount):
        return ref.card_id
    return int(ref)


def _rows(conn: Connection, items: list[dict[str, Any]], operation: str, now: datetime, audit_id: int | None) -> list[dict[str, Any]]:
    return _rows_of(items, _facts(conn, items), operation, now, audit_id)


def _facts(conn: Connection, items: list[dict[str, Any]]) -> dict[int, Any]:
    ids = sorted({cid for item in items if item.get("fact") is None and (cid := _card_id(item["card"])) is not None})
    facts: dict[int, Any] = {}
    for start in range(0, len(ids), 500):
        for row in conn.execute(_FACTS, {"ids": ids[start:start + 500]}):
            facts[row.id] = row
    return facts


def _rows_of(items: list[dict[str, Any]], facts: dict[int, Any], operation: str, now: datetime,
             audit_id: int | None) -> list[dict[str, Any]]:
    rows = []
    for item in items:
        cid = _card_id(item["card"])
        fact = item.get("fact") or (facts.get(cid) if cid is not None else None)
        rows.append({
            "uuid": str(uuidlib.uuid4()),
            "type": item["type"],
            "side": item["side"],
            "occurred_at": now,
            "bank_id": fact.bank_id if fact else None,
            "center_id": (fact.ready_center_id or fact.apply_center_id) if fact else None,
            "card_number": fact.card_number if fact else None,
            "pan": fact.pan if fact else None,
            "before": item["before"],
            "after": item["after"],
            "operation": operation,
            "audit_id": audit_id,
            "data": item["data"],
        })
    return rows


def rows_for_batch(session: Session, groups: list[tuple[list[dict[str, Any]], str, datetime, int | None]]) -> list[dict[str, Any]]:
    """The event rows of several operations (a group-committed batch: (items, operation, now, audit id)
    each; the id None when `insert_rows` is to name the record inserted just before), with one query for
    the cards' facts; `insert_rows` writes them."""
    conn = session.connection()
    facts = _facts(conn, [item for items, _op, _now, _id in groups for item in items])
    return [row for items, operation, now, audit_id in groups for row in _rows_of(items, facts, operation, now, audit_id)]


def insert_rows(session: Session, rows: list[dict[str, Any]], *, of_the_audit_record_just_inserted: bool = False) -> None:
    """Insert event rows in feed order (the lock, then one statement): no result is read, so both may
    be sent in a pipeline. `of_the_audit_record_just_inserted` (PostgreSQL): the rows name no audit
    record; each is given the one this session inserted last (the value its insert took from the
    records' sequence, `currval`: the session's own, in statement order), so a batch need not wait
    for the record's id to come back before it writes the events (services.batching._evented)."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql" and not session.info.get(LOCKED):
        conn.execute(_FEED_LOCK, {"k": FEED_LOCK_KEY})
        session.info[LOCKED] = True
    if of_the_audit_record_just_inserted:
        execute_many(conn, _INSERT_AFTER_AUDIT, [{k: v for k, v in row.items() if k != "audit_id"} for row in rows])
    else:
        execute_many(conn, _INSERT_INLINE, rows)
