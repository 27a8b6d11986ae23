"""The server's sealer in a process of its own (PostgreSQL's default): it seals what the server writes, and
it never outlives its server, whether the server closes it or dies by SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sscard.config import Settings
from sscard.services import audit_chain
from tests.conftest import TEST_KEY


def _until(cond, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by a parent that is gone) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_sealer_process_seals_what_the_server_writes_and_ends_when_closed(city, app):
    city.issued_card()
    assert audit_chain.verify(app)["unsealed"] > 0
    sealer = audit_chain.SealerProcess(app)
    try:
        assert _until(lambda: audit_chain.verify(app)["unsealed"] == 0)
        assert sealer.process.pid != os.getpid() and sealer.process.poll() is None
    finally:
        sealer.close()
    assert sealer.process.returncode == 0
    assert audit_chain.verify(app)["ok"]


def test_the_settings_choose_the_sealer_process_on_postgresql_and_the_thread_on_sqlite(monkeypatch, tmp_path):
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_SECRET_KEY", TEST_KEY.hex())
    monkeypatch.delenv("SSCARD_AUDIT_SEALER", raising=False)
    monkeypatch.setenv("SSCARD_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert Settings.from_env().audit_sealer == "process"
    monkeypatch.setenv("SSCARD_DATABASE_URL", f"sqlite:///{tmp_path / 's.db'}")
    assert Settings.from_env().audit_sealer == "thread"
    monkeypatch.setenv("SSCARD_AUDIT_SEALER", "process")
    assert Settings.from_env().audit_sealer == "process"
    monkeypatch.setenv("SSCARD_AUDIT_SEALER", "sometimes")
    with pytest.raises(ValueError, match="SSCARD_AUDIT_SEALER"):
        Settings.from_env()


def _server_with_its_sealer(app, tmp_path) -> subprocess.Popen:
    """A process standing for a server: it starts its sealer process, prints the sealer's pid, then waits."""
    env = {**os.environ, "SSCARD_DATABASE_URL": app.settings.database_url, "SSCARD_SECRET_KEY": TEST_KEY.hex(),
           "SSCARD_VAR_DIR": str(tmp_path), "SSCARD_CONFIG": "", "SSCARD_AUDIT_SEALER": "process"}
    return subprocess.Popen(
        [sys.executable, "-c", "from sscard.services.app import build_app\n"
         "from sscard.services.audit_chain import start_sealer\n"
         "s = start_sealer(build_app())\nprint(s.process.pid, flush=True)\nimport time\ntime.sleep(600)"],
        env=env, stdout=subprocess.PIPE, text=True)


def test_a_server_killed_by_sigkill_leaves_no_sealer_behind(app, tmp_path):
    """The child's standard input is the server's pipe: the kernel closes it with the server."""
    server = _server_with_its_sealer(app, tmp_path)
    try:
        child = int(server.stdout.readline())
        assert _alive(child)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        assert _until(lambda: not _alive(child), timeout=15), "the sealer outlived its server"
    finally:
        server.kill()


def test_a_sealer_process_that_dies_alone_is_started_again_and_seals_on(city, app):
    sealer = audit_chain.SealerProcess(app)
    try:
        first = sealer.process.pid
        assert _until(lambda: sealer.process.poll() is None)
        os.kill(first, signal.SIGKILL)
        assert _until(lambda: sealer.restarts == 1 and sealer.process.pid != first, timeout=15)
        city.issued_card()  # records written after the restart are sealed by the new process
        assert _until(lambda: audit_chain.verify(app)["unsealed"] == 0)
    finally:
        sealer.close()
    assert sealer.process.returncode == 0 and not _alive(first)


def _backlog(app, n: int) -> None:
    """n audit records inserted at once (a bulk load's), queued for sealing by the log's insert trigger."""
    from datetime import UTC, datetime

    from sscard.db import execute_many
    from sscard.services.operation import INSERT_AUDITS

    now = datetime.now(UTC)
    rows = [{"at": now, "actor_kind": "system", "actor_id": "bulk", "actor_role": "system", "on_behalf_of": None,
             "attorney_id": None, "channel": "cli", "place": "", "operation": "test.bulk", "object_type": "",
             "object_id": str(i), "person_id": None, "before": "", "after": "", "result": "ok",
             "idempotency_key": None, "detail": {}, "object_bank_id": None} for i in range(n)]
    with app.db.engine.begin() as conn:
        for start in range(0, n, 2_000):  # (a statement takes at most 65,535 parameters)
            execute_many(conn, INSERT_AUDITS, rows[start:start + 2_000])


def test_a_sealer_busy_with_a_backlog_ends_within_a_chunk_of_its_servers_death(app, tmp_path):
    """Session 30: after a year of demo history (10.9 million unsealed records) a killed server's sealer went on
    sealing alone for what would have been an hour; it looked at its pipe only between rounds, and a round sealed
    the whole backlog. It now looks between chunks (250 records)."""
    _backlog(app, 60_000)  # ~10 s of sealing or more on this host
    server = _server_with_its_sealer(app, tmp_path)
    try:
        child = int(server.stdout.readline())
        assert _until(lambda: audit_chain.verify(app)["checked"] >= 1_000, timeout=30)  # sealing the backlog
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        assert _until(lambda: not _alive(child), timeout=3), "the sealer went on sealing without its server"
    finally:
        server.kill()
    left = audit_chain.verify(app)
    assert left["ok"] and left["unsealed"] > 0, left  # it stopped in the middle, the chain whole
