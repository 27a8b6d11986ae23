"""A declared read that runs a statement and then asks for the ORM session ends (db.Database.read).

Found with the audit log's bank scope (a person checked with `op.rows`, then the records read through
`op.session`): on PostgreSQL the read's first statement runs in autocommit and asking for the session then
runs it again in a transaction; the session's path did not remember that for the read's shape, so it ran
again in autocommit, for ever (a request that never answered)."""

from __future__ import annotations

from sqlalchemy import literal, select, text


def test_a_read_asking_for_the_session_after_a_statement_runs_again_once_and_answers(app):
    runs: list[int] = []

    def work(reads):
        runs.append(1)
        assert len(runs) <= 3, "the read keeps being run again"
        reads.rows(select(literal(1).label("one")), {})
        return reads.session().execute(text("select 2")).scalar()

    assert app.db.read(work, shape=("test.rows_then_session", "role")) == 2
    assert len(runs) <= 2
    runs.clear()
    assert app.db.read(work, shape=("test.rows_then_session", "role")) == 2
    assert len(runs) == 1  # the shape is known now: a transaction from the start
