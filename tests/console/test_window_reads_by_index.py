"""A service center's window reads by index, whatever the size of the city (migration 0020).

On the million of docs/SCALE.md a clerk's queue read every ready and every applied card of the city (408 and
75 ms a page) and a search by name and birth date every person (135-306 ms). The plans of the very
statements the services run (`window.ready_cards`, `lookup.applied_cards`, `window.persons_named`) are asked
of the database here, on both databases, with the planner told not to read whole tables (for a test's
handful of rows that would be its cheapest choice): each must name its index."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import text

from sscard.services import lookup, window

STATEMENTS = {
    "ix_cards_ready_center": lambda: window.ready_cards(1),
    "ix_cards_apply_center": lambda: lookup.applied_cards(1),
    "ix_persons_name_birth": lambda: window.persons_named("张三", date(1980, 5, 17)),
}


@pytest.mark.parametrize("index", sorted(STATEMENTS))
def test_the_windows_reads_name_their_index_in_the_plan(app, index):
    with app.db.session() as s:
        dialect = s.get_bind().dialect
        sql = str(STATEMENTS[index]().compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "postgresql":
            for setting in ("enable_seqscan", "enable_bitmapscan"):
                s.execute(text(f"SET LOCAL {setting} = off"))
            plan = "\n".join(r[0] for r in s.execute(text("EXPLAIN " + sql)))
        else:
            plan = "\n".join(r[-1] for r in s.execute(text("EXPLAIN QUERY PLAN " + sql)))
    assert index in plan, plan


def test_the_queue_lists_each_ready_card_with_its_holders_name(app, city):
    from sscard.services import enrolment, production

    clerk = city.actor("clerk")
    pid, _cid = city.new_person("王五")
    applied = enrolment.apply_first_card(app, clerk, pid, "GSB", "C01")
    assert window.queue(app, clerk)["applied"] == 1
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    queue = window.queue(app, clerk)
    assert queue["applied"] == 0
    assert [(c["person_id"], c["name"]) for c in queue["ready"]] == [(pid, "王五")]
    assert queue["ready"][0]["card_number"] != applied["card_number"]  # masked
