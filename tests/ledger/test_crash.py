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
               "SSCARD_VAR_DIR": str(workdir), "SSCARD_CONFIG": ""}
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


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_settlement_or_counter_movement(city, app, db_url, tmp_path):
    """The operations group-committed since the terminal routes (a teller's deposits and withdrawals,
    medical settlements paid from the bank account): killed mid-stream, every acknowledged one is there
    exactly once after the restart, retries of the unknown ones apply them at most once, and retries of
    acknowledged ones get their first answer."""
    from sscard.core.roles import CLI_OPERATOR, SYSTEM_ACTOR
    from sscard.models.foundation import Card
    from sscard.models.medical import MedicalSettlement, PersonalAccount, PersonalAccountMovement
    from sscard.services import medical

    card = activated(city, opening_fen=10_000_000)
    medical.add_institution(app, CLI_OPERATOR, "H3", "省人民医院", "hospital", 3, True, settlement_bank_code="GSB")
    medical.add_terminal(app, CLI_OPERATOR, "H3", "HOSP-H3-1")
    from datetime import UTC, datetime

    from sscard.core.clock import shanghai_day

    month = f"{shanghai_day(datetime.now(UTC)):%Y-%m}"  # the server runs on the real clock
    medical.credit_month(app, SYSTEM_ACTOR, month, [{"person_id": card.person_id, "amount_fen": 1_000}])
    with app.db.session() as s:
        ident = s.scalar(select(Card.ident_code).where(Card.card_number == card.card_number))
    hospital = {"Authorization": f"Bearer {terminal_token(city, 'HOSP-H3-1')}"}
    teller = {"Authorization": f"Bearer {city.token('teller')}"}
    bill = [{"category": "material", "name": "自费敷料", "amount_fen": 300, "covered": False}]
    server, standby = Server(db_url, tmp_path), Server(db_url, tmp_path)
    server.wait_ready()
    acked: dict[str, tuple[str, dict]] = {}  # key -> (kind, answer)
    sent: dict[str, tuple[str, dict]] = {}  # key -> (kind, request body)
    lock = threading.Lock()
    stop = threading.Event()
    paths = {"deposit": f"/api/v1/bank-accounts/{card.pan}/deposit",
             "withdrawal": f"/api/v1/bank-accounts/{card.pan}/withdrawal",
             "settle": "/api/v1/terminal/medical/settlements"}

    def send(http, kind: str, key: str, body: dict):
        headers = {**(hospital if kind == "settle" else teller), "Idempotency-Key": key}
        return http.post(paths[kind], json=body, headers=headers)

    def client(c: int) -> None:
        kind = ("deposit", "withdrawal", "settle", "settle")[c]
        with httpx.Client(base_url=server.url, timeout=5) as http:
            i = 0
            while not stop.is_set():
                i += 1
                key = f"crash-{kind}-{c}-{i}"
                try:
                    if kind == "settle":
                        q = http.post("/api/v1/terminal/medical/pre-settlements", headers=hospital,
                                      json={"card_number": card.card_number, "ident_code": ident, "lines": bill})
                        body = {"quote": q.json()["quote"], "card_number": card.card_number, "ident_code": ident,
                                "ss_password": "123456", "pay_with": "bank", "bank_pin": PIN}
                    else:
                        body = {"amount_fen": 500} if kind == "deposit" else {"amount_fen": 200, "pin": PIN}
                    with lock:
                        sent[key] = (kind, body)
                    r = send(http, kind, key, body)
                except (httpx.HTTPError, ValueError, KeyError):
                    return  # the server is gone: this one's outcome is unknown to the client
                if r.status_code in (200, 201):
                    with lock:
                        acked[key] = (kind, r.json())

    try:
        clients = [threading.Thread(target=client, args=(c,)) for c in range(4)]
        for t in clients:
            t.start()
        deadline = time.monotonic() + 20
        while len({k for k, _a in acked.values()}) < 3 or len(acked) < 20:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        server.kill()  # mid-stream
        stop.set()
        for t in clients:
            t.join(timeout=10)
        assert {kind for kind, _a in acked.values()} == {"deposit", "withdrawal", "settle"}
        server = standby.wait_ready()
        unknown = sorted(set(sent) - set(acked))  # in flight at the kill: retried, each applied at most once
        sample = sorted(acked)[:: max(1, len(acked) // 15)]  # acknowledged: retried, answered from the key
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for key in unknown + sample:
                kind, body = sent[key]
                r = send(http, kind, key, body)
                assert r.status_code in (200, 201), r.text
                if key in acked:
                    assert r.json() == acked[key][1]  # answered from the idempotency record
    finally:
        stop.set()
        server.stop()
        standby.stop()

    counts = {kind: sum(1 for k, _b in sent.values() if k == kind) for kind in paths}
    with app.db.session() as s:
        settlements = s.scalars(select(MedicalSettlement.code)).all()
        paid_by_bank = s.scalar(select(func.coalesce(func.sum(MedicalSettlement.self_pay_fen), 0))
                                .where(MedicalSettlement.self_pay_method == "bank"))
        by_code = {"deposit": 0, "withdrawal": 0}
        for code in by_code:
            by_code[code] = s.scalar(select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.code == code))
        personal = s.scalar(select(PersonalAccount.balance_fen).where(PersonalAccount.person_id == card.person_id))
        moved = s.scalar(select(func.sum(PersonalAccountMovement.amount_fen))
                         .where(PersonalAccountMovement.person_id == card.person_id))
    # every key sent was applied exactly once (acknowledged, or retried after the restart)
    assert len(settlements) == len(set(settlements)) == counts["settle"]
    assert {a["code"] for kind, a in acked.values() if kind == "settle"} <= set(settlements)
    assert by_code == {"deposit": counts["deposit"], "withdrawal": counts["withdrawal"]}
    assert balance_of(app, card.pan) == (10_000_000 + 500 * counts["deposit"] - 200 * counts["withdrawal"]
                                         - paid_by_bank)
    assert paid_by_bank > 0
    assert personal == moved
    assert invariants(app)["ok"]
