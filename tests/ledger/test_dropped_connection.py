"""A terminal that drops its connection while a group-committed request (a payment, a medical settlement)
waits for its batch, then sends it again with the same Idempotency-Key, gets the first request's answer and
moves the money once: whether the retry comes while the first is still in the writer's hands or after it
committed. Over a real socket to uvicorn (the test client cannot hang up)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import httpx
import pytest
from sqlalchemy import event, func, select

from sscard.models.ledger import LedgerTransfer
from sscard.models.medical import MedicalSettlement
from tests.browser import LiveServer
from tests.medical import helpers as med

from .helpers import PIN, activated, balance_of, invariants, terminal_token

pytestmark = pytest.mark.keys_required


@contextlib.contextmanager
def slow_writer(app, seconds: float = 0.3):
    """Every transaction of the group-commit writer starts `seconds` late: the client hangs up while its
    request is queued or in the batch, before any answer."""

    def wait(conn):
        if threading.current_thread().name == "sscard-ledger-writer":
            time.sleep(seconds)

    event.listen(app.db.engine, "begin", wait)
    try:
        yield
    finally:
        event.remove(app.db.engine, "begin", wait)


def send_and_hang_up(port: int, path: str, body: dict, token: str, key: str) -> None:
    """The whole request on a new connection, then the connection closed before the answer."""
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\nIdempotency-Key: {key}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + data)
        time.sleep(0.05)  # the server has read it: the request is queued for the writer


def wait_for(count, expected: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while count() < expected and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def server(app):
    live = LiveServer(app)
    yield live
    live.stop()


def _payments(app) -> list[str]:
    with app.db.session() as s:
        return s.scalars(select(LedgerTransfer.transfer_id).where(LedgerTransfer.code == "payment")).all()


@pytest.mark.parametrize("retry", ["at once", "after the commit"])
def test_a_payment_whose_terminal_hung_up_answers_its_retry_with_the_first_answer_and_pays_once(
        city, app, server, retry):
    card = activated(city, opening_fen=10_000)
    token = terminal_token(city, "POS-1")
    body = {"pan": card.pan, "amount_fen": 700, "pin": PIN}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "hang-up-1"}
    with slow_writer(app):
        send_and_hang_up(server.port, "/api/v1/terminal/payments", body, token, "hang-up-1")
        if retry == "after the commit":
            wait_for(lambda: len(_payments(app)), 1)
            assert len(_payments(app)) == 1  # the hung-up request was done all the same
        with httpx.Client(base_url=server.url, timeout=15) as http:
            first = http.post("/api/v1/terminal/payments", json=body, headers=headers)
            second = http.post("/api/v1/terminal/payments", json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert second.status_code == 200 and second.json() == first.json()
    paid = _payments(app)
    assert paid == [first.json()["transfer_id"]]  # one payment: the hung-up one, whose answer the retry got
    assert first.json()["balance_fen"] == balance_of(app, card.pan) == 9_300
    assert invariants(app)["ok"]


def _settlements(app) -> list[str]:
    with app.db.session() as s:
        return s.scalars(select(MedicalSettlement.code)).all()


@pytest.mark.parametrize("retry", ["at once", "after the commit"])
def test_a_settlement_whose_hospital_hung_up_answers_its_retry_with_the_first_answer_and_settles_once(
        city, app, server, retry):
    med.set_up(city)
    card = city.issued_card()
    med.insure(app, card.person_id, 60_000)
    token = med.token(city, "HOSP-H3-1")
    ident = med.ident_code(app, card.card_number)
    with httpx.Client(base_url=server.url, timeout=15) as http:
        quote = http.post("/api/v1/terminal/medical/pre-settlements", headers={"Authorization": f"Bearer {token}"},
                          json={"card_number": card.card_number, "ident_code": ident,
                                "lines": med.lines(covered=12_000)})
        assert quote.status_code == 200, quote.text
        body = {"quote": quote.json()["quote"], "card_number": card.card_number, "ident_code": ident,
                "ss_password": "123456", "pay_with": "cash"}
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "hang-up-s1"}
        with slow_writer(app):
            send_and_hang_up(server.port, "/api/v1/terminal/medical/settlements", body, token, "hang-up-s1")
            if retry == "after the commit":
                wait_for(lambda: len(_settlements(app)), 1)
                assert len(_settlements(app)) == 1
            first = http.post("/api/v1/terminal/medical/settlements", json=body, headers=headers)
            second = http.post("/api/v1/terminal/medical/settlements", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201 and second.json() == first.json()
    assert _settlements(app) == [first.json()["code"]]
    assert first.json()["personal_balance_after_fen"] == 48_000
    with app.db.session() as s:
        from sscard.models.medical import PersonalAccount

        assert s.scalar(select(func.sum(PersonalAccount.balance_fen))) == 48_000
