"""The terminal API and the outlet routes over HTTP (TestClient), including group-committed payments."""

from __future__ import annotations

import threading
from datetime import UTC

import pytest
from sqlalchemy import func, select

from sscard.models.foundation import AuditRecord, IdempotencyRecord
from sscard.models.ledger import LedgerTransfer
from sscard.services import batching
from tests.support import bearer

from .helpers import PIN, activated, balance_of, invariants, terminal_token

pytestmark = pytest.mark.keys_required


def auth(token: str, key: str | None = None) -> dict:
    return bearer(token, key, **{"Accept-Language": "en"})


def test_terminal_writes_need_an_idempotency_key(city, app, client):
    card = activated(city, opening_fen=10_000)
    atm = terminal_token(city, "ATM-GSB-1")
    r = client.post("/api/v1/terminal/withdrawal", json={"pan": card.pan, "amount_fen": 100, "pin": PIN},
                    headers=auth(atm))
    assert r.status_code == 400 and r.json()["code"] == "idempotency_key_required"
    r = client.post("/api/v1/terminal/withdrawal", json={"pan": card.pan, "amount_fen": 100, "pin": PIN},
                    headers=auth(atm, "k1"))
    assert r.status_code == 200 and r.json()["balance_fen"] == 9_900
    again = client.post("/api/v1/terminal/withdrawal", json={"pan": card.pan, "amount_fen": 100, "pin": PIN},
                        headers=auth(atm, "k1"))
    assert again.json() == r.json()
    other = client.post("/api/v1/terminal/withdrawal", json={"pan": card.pan, "amount_fen": 200, "pin": PIN},
                        headers=auth(atm, "k1"))
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert balance_of(app, card.pan) == 9_900


def test_staff_tokens_cannot_use_the_terminal_api(city, app, client):
    card = activated(city, opening_fen=10_000)
    r = client.post("/api/v1/terminal/deposit", json={"pan": card.pan, "amount_fen": 100},
                    headers=auth(city.token("teller"), "k"))
    assert r.status_code == 403


def test_amounts_are_integer_fen(city, app, client):
    card = activated(city, opening_fen=10_000)
    atm = terminal_token(city, "ATM-GSB-1")
    for bad in (1.5, "100", 0, -5):
        r = client.post("/api/v1/terminal/deposit", json={"pan": card.pan, "amount_fen": bad},
                        headers=auth(atm, f"bad-{bad}"))
        assert r.status_code == 422, bad


def test_pos_authorize_capture_void_and_balance_over_http(city, app, client):
    card = activated(city, opening_fen=10_000)
    pos = terminal_token(city, "POS-1")
    atm = terminal_token(city, "ATM-GSB-1")
    held = client.post("/api/v1/terminal/payments/authorize",
                       json={"pan": card.pan, "amount_fen": 3_000, "pin": PIN}, headers=auth(pos, "a1"))
    assert held.status_code == 200, held.text
    tid = held.json()["transfer_id"]
    cap = client.post(f"/api/v1/terminal/payments/{tid}/capture", json={}, headers=auth(pos, "c1"))
    assert cap.status_code == 200 and cap.json()["amount_fen"] == 3_000
    void = client.post(f"/api/v1/terminal/payments/{tid}/void", headers=auth(pos, "v1"))
    assert void.status_code == 409 and void.json()["code"] == "pending_already_resolved"
    bal = client.post("/api/v1/terminal/balance", json={"pan": card.pan, "pin": PIN}, headers=auth(atm))
    assert bal.json()["balance_fen"] == 7_000
    wrong = client.post("/api/v1/terminal/payments", json={"pan": card.pan, "amount_fen": 1, "pin": "000000"},
                        headers=auth(pos, "p-wrong"))
    assert wrong.status_code == 401 and wrong.json()["code"] == "wrong_pin"
    assert "000000" not in wrong.text


def test_a_locked_pin_says_when_it_ends_for_a_program_not_only_in_words(city, app, client, clock):
    from datetime import datetime, timedelta

    from sscard.core.clock import SHANGHAI

    card = activated(city, opening_fen=10_000)
    atm = terminal_token(city, "ATM-GSB-1")
    answers = [client.post("/api/v1/terminal/withdrawal", json={"pan": card.pan, "amount_fen": 100, "pin": "999999"},
                           headers=auth(atm, f"lock-{i}")) for i in range(3)]
    assert [a.json()["code"] for a in answers] == ["wrong_pin", "wrong_pin", "pin_locked"]
    assert [a.json().get("tries_left") for a in answers[:2]] == [2, 1]
    locked = answers[2]
    assert locked.status_code == 423 and "reset_required" not in locked.json()
    until = datetime.fromisoformat(locked.json()["locked_until"])
    assert until.utcoffset() == timedelta(0)
    midnight = (clock.now().astimezone(SHANGHAI) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert until == midnight.astimezone(UTC)  # RULES §4: until the next midnight, Beijing time
    said = until.astimezone(SHANGHAI)  # in words, as a person reads it (core.clock.local_text): no ISO form
    assert f"until {said.day} {said:%B} {said.year}, 00:00 (Beijing time)" in locked.json()["message"]
    assert locked.json()["locked_until"] not in locked.json()["message"]


def test_the_contract_declares_retry_after_and_a_key_that_is_never_null(client):
    spec = client.get("/openapi.json").json()
    declared = {status: op["responses"][status].get("headers", {})
                for path in spec["paths"].values() for op in path.values()
                for status in ("429", "503") if status in op["responses"]}
    assert declared and all("Retry-After" in headers for headers in declared.values())
    keys = [p["schema"] for path in spec["paths"].values() for op in path.values()
            for p in op.get("parameters", []) if p["name"] == "Idempotency-Key"]
    assert keys and all(k == {"type": "string", "minLength": 1, "maxLength": 80, "pattern": "^[ -~]*[!-~][ -~]*$",
                              "title": "Idempotency-Key"} for k in keys)  # printable ASCII, not blank (session 26)
    assert {"locked_until", "reset_required"} <= spec["components"]["schemas"]["ErrorBody"]["properties"].keys()
    # session 22's contract probe: an optional key reused with another body is refused too, and is listed;
    # a hold's longest timeout (30 days, refused above it) is in the contract
    assert "idempotency_key_reused" in spec["paths"]["/api/v1/terminal/balance"]["post"]["x-error-codes"]
    authorize = spec["components"]["schemas"]["Authorize"]["properties"]["timeout_seconds"]["anyOf"][0]
    assert authorize["maximum"] == 30 * 24 * 3600


def test_terminal_transfer_and_pin_change(city, app, client):
    a = activated(city, opening_fen=10_000)
    b = activated(city, name="李四", bank="JSB")
    atm = terminal_token(city, "ATM-GSB-1")
    r = client.post("/api/v1/terminal/transfers",
                    json={"from_pan": a.pan, "to_pan": b.pan, "amount_fen": 2_500, "pin": PIN}, headers=auth(atm, "t1"))
    assert r.status_code == 200, r.text
    assert balance_of(app, b.pan) == 2_500
    r = client.post("/api/v1/terminal/pin/change",
                    json={"pan": a.pan, "old": PIN, "new": "369258", "new_again": "369258"}, headers=auth(atm, "p1"))
    assert r.status_code == 200 and r.json()["changed"] is True


def test_outlet_routes_activate_deposit_statement(city, app, client):
    card = city.issued_card()
    teller = city.token("teller")
    body = {"presented_citizen_id": card.citizen_id, "pin": PIN, "pin_again": PIN}
    for absent in ({}, {"cardholder_in_person": False}):  # activation by API: in person too, or refused
        r = client.post(f"/api/v1/bank-accounts/{card.pan}/activate", json={**body, **absent},
                        headers=auth(teller, f"act-{absent}"))
        assert r.status_code in (403, 422), r.text
    r = client.post(f"/api/v1/bank-accounts/{card.pan}/activate", json={**body, "cardholder_in_person": True},
                    headers=auth(teller, "act"))
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/bank-accounts/{card.pan}/deposit", json={"amount_fen": 8_800}, headers=auth(teller, "d"))
    assert r.json()["balance_fen"] == 8_800
    r = client.get(f"/api/v1/bank-accounts/{card.pan}/statement?limit=5", headers=auth(teller))
    body = r.json()
    assert body["balance"] == "88.00" and body["entries"][0]["counterparty"] == "cash:GSB-001"
    r = client.post(f"/api/v1/bank-accounts/{card.pan}/freeze", json={"reason": "x"}, headers=auth(teller, "f"))
    assert r.status_code == 403
    r = client.get("/api/v1/ledger/check", headers=auth(city.token("operator")))
    assert r.json()["ok"] is True


def test_concurrent_payments_are_group_committed_with_one_audit_and_key_each(city, app, client):
    card = activated(city, opening_fen=1_000_000)
    pos = terminal_token(city, "POS-1")
    n_threads, per_thread = 8, 10
    errors: list = []
    b = batching.batcher(app)
    requests0, batches0 = b.requests, b.batches  # the opening deposit is group-committed too

    def pay(t: int) -> None:
        for i in range(per_thread):
            r = client.post("/api/v1/terminal/payments", json={"pan": card.pan, "amount_fen": 100, "pin": PIN},
                            headers=auth(pos, f"pay-{t}-{i}"))
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=pay, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    total = n_threads * per_thread
    assert balance_of(app, card.pan) == 1_000_000 - 100 * total
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.code == "payment")) == total
        assert s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.operation == "bank.purchase")) == total
        assert s.scalar(select(func.count()).select_from(IdempotencyRecord).where(IdempotencyRecord.key.like("pay-%"))) == total
    assert b.requests - requests0 == total and b.batches - batches0 <= total
    assert invariants(app)["ok"]


def test_a_refusal_in_a_batch_does_not_spoil_the_others(city, app):
    from .helpers import terminal

    rich = activated(city, opening_fen=10_000)
    poor = activated(city, name="李四", opening_fen=50)
    pos = terminal(city, "POS-1")
    from sscard.services import banking

    results: dict = {}

    def run(name, pan, amount, pin, key):
        try:
            results[name] = batching.call(app, banking.purchase, pos, pan, amount, pin, idempotency_key=key)
        except Exception as exc:  # noqa: BLE001
            results[name] = exc

    threads = [threading.Thread(target=run, args=("rich", rich.pan, 1_000, PIN, "r")),
               threading.Thread(target=run, args=("poor", poor.pan, 1_000, PIN, "p")),
               threading.Thread(target=run, args=("wrong", rich.pan, 1_000, "000000", "w"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["rich"]["balance_fen"] == 9_000
    assert results["poor"].code == "insufficient_funds"
    assert results["wrong"].code == "wrong_pin"
    import pytest

    from sscard.core.errors import SscardError

    with pytest.raises(SscardError) as e:  # the retry is answered from the stored refusal
        batching.call(app, banking.purchase, pos, poor.pan, 1_000, PIN, idempotency_key="p")
    assert e.value.code == "insufficient_funds"
    assert invariants(app)["ok"]


def test_a_wrong_pin_in_a_batch_is_counted_and_answered_again_from_its_key(city, app):
    import pytest

    from sscard.core.errors import SscardError
    from sscard.services import banking

    from .helpers import terminal

    card = activated(city, opening_fen=10_000)
    pos = terminal(city, "POS-1")
    for key in ("w1", "w1"):
        with pytest.raises(SscardError) as e:
            batching.call(app, banking.purchase, pos, card.pan, 100, "000000", idempotency_key=key)
        assert e.value.code == "wrong_pin"
    with pytest.raises(SscardError) as e:
        batching.call(app, banking.purchase, pos, card.pan, 100, "000000", idempotency_key="w2")
    assert e.value.code == "wrong_pin"
    with pytest.raises(SscardError) as e:
        batching.call(app, banking.purchase, pos, card.pan, 100, "000000", idempotency_key="w3")
    assert e.value.code == "pin_locked"
