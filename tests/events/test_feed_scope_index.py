"""A scoped reader of the events feed with nothing new in its scope (session 26): PostgreSQL's planner, asked for
`bank_id = $1 AND id > $2 ORDER BY id LIMIT $3`, walked the primary key from the reader's position and filtered
every later event of the city out, on each poll of a quiet bank (and of the center staff's `side = 'ss'`). The
feed now reads through the scope's index (services.events.scoped). The answers are the same on both databases;
on PostgreSQL the plan the feed's own query gets names the scope's index and filters nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import event, insert, select, text

from sscard.models.events import Event
from sscard.models.foundation import Bank
from sscard.services import events

BUSY = 3000  # the busy bank's events on either side of the quiet bank's: enough for the planner's trap


def _bank_id(app, code: str) -> int:
    with app.db.session() as s:
        return s.scalar(select(Bank.id).where(Bank.code == code))


def _events(app, bank_id: int, side: str, n: int) -> None:
    now = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    rows = [{"uuid": str(uuid.uuid4()), "type": "card.bank_status_changed", "side": side, "occurred_at": now,
             "bank_id": bank_id, "operation": "bank.freeze", "data": {}} for _ in range(n)]
    with app.db.engine.begin() as conn:
        conn.execute(insert(Event), rows)


def _feed_sql(app, actor, after: int) -> tuple[dict, tuple[str, object]]:
    """The feed's answer and the one query it made of the events table (statement, parameters)."""
    seen: list[tuple[str, object]] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if "FROM events" in statement:
            seen.append((statement, parameters))

    event.listen(app.db.engine, "before_cursor_execute", note)
    try:
        answer = events.feed(app, actor, after, 100)
    finally:
        event.remove(app.db.engine, "before_cursor_execute", note)
    assert len(seen) == 1, seen
    return answer, seen[0]


def test_a_quiet_scope_reads_its_own_events_only_through_its_index_whatever_the_rest_of_the_city_wrote(city):
    app = city.app
    gsb, jsb = _bank_id(app, "GSB"), _bank_id(app, "JSB")
    _events(app, gsb, "bank", BUSY)
    _events(app, jsb, "ss", BUSY)  # the quiet bank was busy once: a third of the city's events
    _events(app, gsb, "bank", BUSY)
    if app.db.dialect == "postgresql":
        with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE events"))
    with app.db.session() as s:
        ids = list(s.scalars(select(Event.id).where(Event.bank_id == jsb).order_by(Event.id)))

    quiet = city.actor("teller_jsb")
    first = events.feed(app, quiet, 0, 100)
    assert [e["id"] for e in first["events"]] == ids[:100] and {e["bank"] for e in first["events"]} == {"JSB"}
    last = events.feed(app, quiet, ids[-3], 100)
    assert [e["id"] for e in last["events"]] == ids[-2:] and last["next_after"] == ids[-1]
    centre = events.feed(app, city.actor("clerk"), ids[-3], 100)
    assert [e["id"] for e in centre["events"]] == ids[-2:]  # the social security side: JSB's
    busy = events.feed(app, city.actor("teller"), ids[-1], 100)
    assert len(busy["events"]) == 100 and {e["bank"] for e in busy["events"]} == {"GSB"}
    assert [e["id"] for e in busy["events"]] == list(range(ids[-1] + 1, ids[-1] + 101))

    for actor in (quiet, city.actor("clerk")):  # polls with nothing new in their scope
        answer, (statement, parameters) = _feed_sql(app, actor, ids[-1])
        assert answer == {"events": [], "next_after": ids[-1]}
        if app.db.dialect == "postgresql":
            with app.db.engine.connect() as conn:
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters))
            assert "Index Scan using ix_events_" in plan and "events_pkey" not in plan, plan
            assert "Rows Removed by Filter" not in plan, plan
    # and a new event in the quiet scope is found after the busy bank's
    _events(app, jsb, "ss", 1)
    again = events.feed(app, quiet, ids[-1], 100)
    assert len(again["events"]) == 1 and again["events"][0]["id"] > ids[-1] + BUSY
