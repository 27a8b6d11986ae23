"""Durable by default: every SQLite connection the app opens commits at synchronous=FULL (an answered
write survives a power cut), a policy may lower it for a demo, and a PostgreSQL server that answers
before flushing (synchronous_commit=off) is reported at start and by `sscard doctor`."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import event
from typer.testing import CliRunner

from sscard.db import DURABLE_SQLITE_LEVEL
from sscard.services import banking, batching
from sscard.services.app import build_app

from .ledger.helpers import PIN, activated, terminal


def _sqlite_only(app) -> None:
    if app.db.dialect != "sqlite":
        pytest.skip("SQLite's synchronous level")


def test_every_sqlite_connection_the_app_opens_syncs_each_commit(city, app):
    """The pool's connections, the group-commit writer's and the WAL checkpointer's: each is checked
    when it is handed out and again after it has been used."""
    _sqlite_only(app)
    seen: list[tuple[str, object, int]] = []

    def level(dbapi_conn) -> int:
        return dbapi_conn.execute("PRAGMA synchronous").fetchone()[0]

    @event.listens_for(app.db.engine, "checkout")
    def _checked_out(dbapi_conn, _record, _proxy):
        seen.append((threading.current_thread().name, dbapi_conn, level(dbapi_conn)))

    card = activated(city, opening_fen=100_000)  # pool connections, through the operation frame
    pos = terminal(city, "POS-1")
    writer = batching.batcher(app)
    writer._checkpointer.every = 2  # poke the checkpointer every second commit
    for i in range(6):
        batching.call(app, banking.purchase, pos, card.pan, 100, PIN, idempotency_key=f"sync-{i}")
    deadline = time.monotonic() + 10
    while not writer._checkpointer.checkpoints and time.monotonic() < deadline:
        time.sleep(0.02)

    threads = {name for name, _c, _l in seen}
    assert {"sscard-ledger-writer", "sscard-wal-checkpointer", "MainThread"} <= threads, threads
    when_handed_out = {(name, lvl) for name, _c, lvl in seen}
    after_use = {(name, level(conn)) for name, conn, _l in seen}
    assert all(lvl >= DURABLE_SQLITE_LEVEL for _n, lvl in when_handed_out | after_use), when_handed_out | after_use
    assert app.db.durability() == {"sqlite_synchronous": "full", "durable": True}


def test_the_storage_policy_lowers_sqlite_for_a_demo_and_the_app_warns(make_app, caplog):
    with caplog.at_level(logging.WARNING, logger="sscard.db"):
        app = make_app(storage={"sqlite_synchronous": "normal"})
    _sqlite_only(app)
    assert app.db.durability() == {"sqlite_synchronous": "normal", "durable": False}
    with app.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    assert any("synchronous=normal" in r.getMessage() for r in caplog.records)


def test_a_durable_database_starts_without_a_warning(make_app, caplog):
    with caplog.at_level(logging.WARNING, logger="sscard.db"):
        app = make_app()
    assert app.db.durability()["durable"] is True
    assert not [r for r in caplog.records if r.name == "sscard.db"]


def _without_sync_commit(url: str) -> str:
    return url + ("&" if "?" in url else "?") + "options=-csynchronous_commit%3Doff"


def test_postgres_answering_before_its_flush_is_warned_about_at_start(settings, clock, backend, caplog):
    if backend.name != "postgres":
        pytest.skip("PostgreSQL's synchronous_commit")
    from dataclasses import replace

    loose = replace(settings, database_url=_without_sync_commit(settings.database_url))
    with caplog.at_level(logging.WARNING, logger="sscard.db"):
        app = build_app(loose, clock=clock)
    try:
        assert app.db.durability() == {"synchronous_commit": "off", "fsync": "on", "durable": False}
    finally:
        app.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "sscard.db"]
    assert any("synchronous_commit=off" in m for m in warnings), warnings


def test_sscard_doctor_says_whether_answered_writes_survive_a_power_cut(db_url, backend, tmp_path, monkeypatch):
    from sscard.cli import app as cli

    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_DATABASE_URL", db_url)
    monkeypatch.setenv("SSCARD_CONFIG", "")
    durable = CliRunner().invoke(cli, ["doctor", "--json"])
    assert durable.exit_code == 0, durable.output
    assert '"durable": true' in durable.output
    if backend.name == "sqlite":
        monkeypatch.setenv("SSCARD_STORAGE__SQLITE_SYNCHRONOUS", "normal")
    else:
        monkeypatch.setenv("SSCARD_DATABASE_URL", _without_sync_commit(db_url))
    loose = CliRunner().invoke(cli, ["doctor"])
    assert loose.exit_code == 1
    assert "durable: NO" in loose.output
