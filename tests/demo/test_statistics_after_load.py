"""After the demo's bulk load, PostgreSQL has statistics for the tables that hold rows and none for the empty
ones (db.Database.analyze_filled): an empty table analyzed says "empty" to the planner, and a generic plan
the group-commit writer prepares then scans it instead of probing its key while it fills (session 30:
the medical read-ahead's probe of medical_settlement_keys, 0.2 -> 2.8 ms within 8 s of settlements)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from sscard.demo.run import run_demo


def _analyze_counts(app) -> dict[str, int]:
    with app.db.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return dict(conn.execute(text("SELECT relname, analyze_count FROM pg_stat_user_tables")).all())


def test_the_demo_analyzes_the_tables_it_filled_and_leaves_the_empty_ones_unanalyzed(app, backend):
    if app.db.dialect != "postgresql":
        assert app.db.analyze_filled() == []  # SQLite: nothing to do (its planner keeps no such plans)
        return
    run_demo(app, 120, 3, chunk_size=60)
    before = _analyze_counts(app)
    analyzed = app.db.analyze_filled()
    after = _analyze_counts(app)
    names = {name.split(".", 1)[1].strip('"') for name in analyzed}
    assert {"persons", "cards", "bank_accounts"} <= names
    assert "medical_settlement_keys" not in names  # no settlement yet
    with app.db.engine.connect() as conn:
        for name in names:
            assert conn.execute(text(f'SELECT EXISTS (SELECT 1 FROM "{name}")')).scalar(), name  # noqa: S608 (catalog names)
    assert after["persons"] == before["persons"] + 1
    assert after["medical_settlement_keys"] == before["medical_settlement_keys"]  # not touched: planned as unknown
    partitions = {n for n in after if "_p20" in n}
    assert not names & partitions  # a partitioned table is analyzed through its parent


def test_a_settlement_makes_its_key_table_one_that_is_analyzed(app):
    """The rule is by content: a table that came to hold rows is analyzed like the others."""
    if app.db.dialect != "postgresql":
        pytest.skip("PostgreSQL's statistics")
    with app.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO medical_settlement_keys (kind, value, settlement_id, settlement_at) "
                          "VALUES ('quote', 'n-1', 1, now())"))
    assert any(name.endswith("medical_settlement_keys") for name in app.db.analyze_filled())
