"""A database that cannot take work now (PostgreSQL out of shared memory for predicate locks, a pool with
no free connection) is answered 503 service_busy with Retry-After, never 500: nothing was done, and the
same request with the same Idempotency-Key, sent again later, is done once. Any other database error is
still a 500 (raised, with its traceback in the log)."""

from __future__ import annotations

import contextlib
import threading

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from sscard.api import deps
from sscard.models.ledger import LedgerTransfer
from sscard.models.medical import MedicalSettlement
from tests.medical import helpers as med
from tests.support import bearer

from .helpers import PIN, activated, balance_of, invariants, terminal_token

pytestmark = pytest.mark.keys_required


class _OutOfSharedMemory(Exception):
    """What psycopg raises when PostgreSQL's predicate lock table is full (SQLSTATE 53200)."""

    sqlstate = "53200"


@contextlib.contextmanager
def writer_out_of_shared_memory(app):
    """Every transaction the group-commit writer begins (its batches, and any request it runs alone)
    fails as PostgreSQL's does when a long SERIALIZABLE transaction elsewhere has filled the shared
    predicate lock table. `calls` counts them."""
    calls = []

    def fail(conn):
        if threading.current_thread().name == "sscard-ledger-writer":
            calls.append(1)
            raise OperationalError("BEGIN", None, _OutOfSharedMemory("out of shared memory"))

    event.listen(app.db.engine, "begin", fail)
    try:
        yield calls
    finally:
        event.remove(app.db.engine, "begin", fail)


def _payments(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.code == "payment"))


def test_a_payment_the_database_has_no_memory_for_is_answered_503_and_its_retry_pays_once(city, app, client):
    card = activated(city, opening_fen=10_000)
    headers = bearer(terminal_token(city, "POS-1"), "busy-pay-1", **{"Accept-Language": "en"})
    body = {"pan": card.pan, "amount_fen": 700, "pin": PIN}
    with writer_out_of_shared_memory(app) as calls:
        busy = client.post("/api/v1/terminal/payments", json=body, headers=headers)
    assert busy.status_code == 503, busy.text
    assert busy.headers["Retry-After"] == "1"
    assert busy.json()["code"] == "service_busy"
    assert len(calls) == 2  # the batch, then the request alone (a smaller transaction may fit): both refused
    assert _payments(app) == 0 and balance_of(app, card.pan) == 10_000

    paid = client.post("/api/v1/terminal/payments", json=body, headers=headers)
    again = client.post("/api/v1/terminal/payments", json=body, headers=headers)
    assert paid.status_code == 200 and again.json() == paid.json()
    assert _payments(app) == 1 and balance_of(app, card.pan) == 9_300
    assert invariants(app)["ok"]


def test_a_medical_settlement_the_database_has_no_memory_for_is_answered_503_and_its_retry_settles_once(
        city, app, client):
    med.set_up(city)
    card = city.issued_card()
    med.insure(app, card.person_id, 60_000)
    token = med.token(city, "HOSP-H3-1")
    ident = med.ident_code(app, card.card_number)
    quote = client.post("/api/v1/terminal/medical/pre-settlements", headers=bearer(token),
                        json={"card_number": card.card_number, "ident_code": ident,
                              "lines": med.lines(covered=12_000)})
    assert quote.status_code == 200, quote.text
    body = {"quote": quote.json()["quote"], "card_number": card.card_number, "ident_code": ident,
            "ss_password": "123456", "pay_with": "cash"}
    with writer_out_of_shared_memory(app):
        busy_quote = client.post("/api/v1/terminal/medical/pre-settlements", headers=bearer(token),
                                 json={"card_number": card.card_number, "ident_code": ident,
                                       "lines": med.lines(covered=12_000)})
        busy = client.post("/api/v1/terminal/medical/settlements", headers=bearer(token, "busy-settle-1"), json=body)
    assert busy_quote.status_code == 503 and busy_quote.headers["Retry-After"] == "1"
    assert busy.status_code == 503 and busy.json()["code"] == "service_busy", busy.text
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(MedicalSettlement)) == 0

    settled = client.post("/api/v1/terminal/medical/settlements", headers=bearer(token, "busy-settle-1"), json=body)
    again = client.post("/api/v1/terminal/medical/settlements", headers=bearer(token, "busy-settle-1"), json=body)
    assert settled.status_code == 201, settled.text
    assert again.json() == settled.json()
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(MedicalSettlement)) == 1


def test_a_token_lookup_that_finds_no_free_pooled_connection_is_answered_503(city, app, client, monkeypatch):
    card = activated(city, opening_fen=10_000)
    token = terminal_token(city, "POS-1")

    def no_connection(*_args, **_kwargs):
        raise PoolTimeout("QueuePool limit of size 5 overflow 5 reached, connection timed out, timeout 30.00")

    monkeypatch.setattr(deps, "actor_for_token", no_connection)
    r = client.post("/api/v1/terminal/payments", json={"pan": card.pan, "amount_fen": 700, "pin": PIN},
                    headers=bearer(token, "pool-1"))
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and r.json()["code"] == "service_busy"
    r = client.get("/api/v1/identifiers/check?kind=pan&value=6222020000000000000", headers=bearer(token))
    assert r.status_code != 503  # a route that touches no database is not refused


def test_a_database_error_that_is_not_about_load_is_still_a_server_error(city, app, client, monkeypatch):
    card = activated(city, opening_fen=10_000)
    token = terminal_token(city, "POS-1")

    def broken(*_args, **_kwargs):
        raise ProgrammingError("SELECT", None, Exception("syntax error"))

    monkeypatch.setattr(deps, "actor_for_token", broken)
    with pytest.raises(ProgrammingError):  # TestClient raises what the server would answer 500 for
        client.post("/api/v1/terminal/payments", json={"pan": card.pan, "amount_fen": 700, "pin": PIN},
                    headers=bearer(token, "broken-1"))
