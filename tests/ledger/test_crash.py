"""SIGKILL the server while payments stream in: after a restart every acknowledged payment is there exactly
once, the ledger balances, and retried requests are answered from their idempotency keys."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from sscard.models.ledger import LedgerTransfer
from tests.conftest import TEST_KEY

from .helpers import PIN, activated, balance_of, invariants, terminal_token

PAYMENT = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db_url: str, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SSCARD_DATABASE_URL": db_url, "SSCARD_SECRET_KEY": TEST_KEY.hex(),
               "SSCARD_VAR_DIR": str(workdir), "SSCARD_CONFIG": str(workdir / "none.toml")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "sscard.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def wait_ready(self) -> Server:
        deadline = time.monotonic() + 90  # a cold start on a loaded 2-core machine takes a while
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server died: " + self.proc.stderr.read().decode()[-2000:])
            try:
                if httpx.get(self.url + "/openapi.json", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_payment(city, app, db_url, tmp_path):
    card = activated(city, opening_fen=10_000_000)
    token = terminal_token(city, "POS-1")
    headers = {"Authorization": f"Bearer {token}"}
    body = {"pan": card.pan, "amount_fen": PAYMENT, "pin": PIN}
    # The second process is the restart: it is started now, beside the first, only so that the test does not
    # wait for a second cold start; it holds no state but the database, exactly like a restarted server.
    server, standby = Server(db_url, tmp_path), Server(db_url, tmp_path)
    server.wait_ready()
    acked: dict[str, dict] = {}
    sent: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client(c: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            i = 0
            while not stop.is_set():
                i += 1
                key = f"crash-{c}-{i}"
                with lock:
                    sent.add(key)
                try:
                    r = http.post("/api/v1/terminal/payments", json=body, headers={**headers, "Idempotency-Key": key})
                except httpx.HTTPError:
                    return  # the server is gone: this one's outcome is unknown to the client
                if r.status_code == 200:
                    with lock:
                        acked[key] = r.json()

    try:
        clients = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for t in clients:
            t.start()
        deadline = time.monotonic() + 20
        while len(acked) < 15 and time.monotonic() < deadline:  # a loaded machine may be slow to start
            time.sleep(0.05)
        server.kill()  # mid-stream
        stop.set()
        for t in clients:
            t.join(timeout=10)
        assert len(acked) > 10
        server = standby.wait_ready()
        unknown = sorted(sent - set(acked))  # in flight at the kill: retried, each applied at most once
        sample = sorted(acked)[:: max(1, len(acked) // 15)]  # acknowledged: retried, answered from the key
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for key in unknown + sample:
                r = http.post("/api/v1/terminal/payments", json=body, headers={**headers, "Idempotency-Key": key})
                assert r.status_code == 200, r.text
                if key in acked:
                    assert r.json() == acked[key]  # answered from the idempotency record
    finally:
        stop.set()
        server.stop()
        standby.stop()

    with app.db.session() as s:
        ids = s.scalars(select(LedgerTransfer.transfer_id).where(LedgerTransfer.code == "payment")).all()
        count = s.scalar(select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.code == "payment"))
    assert count == len(sent) == len(set(ids))  # one payment per key, none twice
    assert {a["transfer_id"] for a in acked.values()} <= set(ids)
    assert balance_of(app, card.pan) == 10_000_000 - PAYMENT * len(sent)
    assert invariants(app)["ok"]
