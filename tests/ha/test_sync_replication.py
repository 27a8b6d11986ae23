"""On a running formation (`sscard ha up`; skipped when none is healthy): the two-node formation's
synchronous replication, with the formation's `number_sync_standbys` at 0, still makes every commit wait
until the standby has it on disk (docs/OPERATIONS.md, "Synchronous replication").

pg_auto_failover sets the primary's `synchronous_standby_names` to `ANY 1 (<the standby>)` while a standby
in the replication quorum is healthy, whatever number_sync_standbys says (0 only allows it to drop to ''
when no standby is left); with `synchronous_commit = on` a commit returns after the standby flushed it."""

from __future__ import annotations

import re

import pytest

from sscard.ha import Formation

formation = Formation.default()
pytestmark = pytest.mark.skipif(not formation.healthy(), reason="no healthy formation: sscard ha up")


def _connect(node: str, autocommit: bool = True):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=formation.port(node), user="postgres", dbname="postgres",
                           autocommit=autocommit, connect_timeout=5)


def _nodes() -> tuple[str, str]:
    primary = formation.primary()
    standby = next(n["name"] for n in formation.nodes() if n["name"] != primary)
    return primary, standby


def test_the_primary_names_its_standby_as_synchronous_and_commits_wait_for_it():
    primary, _standby = _nodes()
    with _connect(primary) as conn:
        names = conn.execute("SHOW synchronous_standby_names").fetchone()[0]
        assert re.fullmatch(r"ANY 1 \(pgautofailover_standby_\d+\)", names), names
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        streams = conn.execute("SELECT application_name, state, sync_state FROM pg_stat_replication").fetchall()
    assert [(a, s) for a, s, _ in streams] == [(names[len("ANY 1 ("):-1], "streaming")]
    assert streams[0][2] in ("sync", "quorum")  # 'quorum' for ANY: the standby's flush releases commits


def test_a_commit_has_returned_only_once_the_standby_has_it_on_disk():
    primary, standby = _nodes()
    with _connect(primary) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS sscard_sync_probe (id bigserial PRIMARY KEY, at timestamptz "
                     "NOT NULL DEFAULT now())")
    with _connect(primary, autocommit=False) as conn:
        conn.execute("INSERT INTO sscard_sync_probe DEFAULT VALUES")
        before_commit = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        conn.commit()  # the commit record lies after before_commit; sync rep returns once it is flushed there
    with _connect(standby) as conn:
        received = conn.execute("SELECT pg_last_wal_receive_lsn()").fetchone()[0]
        assert conn.execute("SELECT %s::pg_lsn >= %s::pg_lsn", (str(received), str(before_commit))).fetchone()[0]


def test_the_monitor_keeps_the_standby_in_the_replication_quorum():
    nodes = formation.nodes()
    assert sorted(n["state"] for n in nodes) == ["primary", "secondary"]
    assert all(n["sync"] for n in nodes), nodes  # replication_quorum true: in synchronous_standby_names
