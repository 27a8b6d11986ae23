"""The Idempotency-Key as the contract declares it (session 26's probe): `minLength: 1`, at most 80 printable
ASCII characters, not blank. An empty key was read as no key, so an operation whose key is optional (the
balance inquiry, the SS password check) ran unkeyed and counted a wrong PIN or password again on every retry.
Each test failed on the code the probe ran against."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sscard.api import terminal_lane
from sscard.models.foundation import AuditRecord, BankAccount, Card
from tests.ledger.helpers import activated, terminal_token

pytestmark = pytest.mark.keys_required

BAD_KEYS = {
    "empty": "",
    "blank": "   ",
    "a tab inside": "k\t1",
    "DEL": "k\x7f1",
    "past ASCII (a header is Latin-1)": "k\u00e91".encode("latin-1"),
    "81 characters": "k" * 81,
}


def _audit_count(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord))


def _failures(app, card) -> tuple[int, int]:
    with app.db.session() as s:
        pin = s.scalar(select(BankAccount.pin_failures).where(BankAccount.pan == card.pan))
        ss = s.scalar(select(Card.ss_pw_failures).where(Card.card_number == card.card_number))
        return pin, ss


@pytest.mark.parametrize("why", list(BAD_KEYS))
def test_a_key_that_breaks_its_contract_is_refused_422_and_runs_nothing_on_the_lane_and_through_fastapi(
        city, app, client, monkeypatch, why):
    card = activated(city, opening_fen=10_000)
    served: list[str] = []
    monkeypatch.setattr(terminal_lane, "_served", served.append)
    atm, kiosk = terminal_token(city, "ATM-GSB-1"), terminal_token(city, "KIOSK-1")
    calls = [("/api/v1/terminal/balance", atm, {"pan": card.pan, "pin": "000000"}),  # the lane's route
             (f"/api/v1/terminal/cards/{card.card_number}/ss-password/verify", kiosk, {"password": "999999"})]
    before = _audit_count(app)
    for path, token, body in calls:
        refused = client.post(path, json=body, headers=[("Authorization", f"Bearer {token}"),
                                                        ("Idempotency-Key", BAD_KEYS[why])])
        assert refused.status_code == 422, (path, why, refused.text)
        assert refused.json()["code"] == "invalid_request"
        assert refused.json()["details"][0]["loc"] == ["header", "idempotency-key"]
    assert _failures(app, card) == (0, 0)  # no wrong PIN or password counted
    assert _audit_count(app) == before
    # the same requests with a good key run (and count), the lane's one through the lane
    for path, token, body in calls:
        ran = client.post(path, json=body, headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "k 1"})
        assert ran.status_code == 401, (path, ran.text)
    assert _failures(app, card) == (1, 1)
    assert served == ["/api/v1/terminal/balance"]


def test_a_bad_key_from_a_caller_without_a_credential_is_answered_401_first(city, client):
    card = activated(city, opening_fen=10_000)
    answer = client.post("/api/v1/terminal/balance", json={"pan": card.pan, "pin": "000000"},
                         headers={"Idempotency-Key": ""})
    assert answer.status_code == 401


def test_the_contract_declares_the_key_the_server_takes(client):
    schema = client.app.openapi()
    for methods in schema["paths"].values():
        for op in methods.values():
            for param in op.get("parameters", []):
                if param["name"] == "Idempotency-Key":
                    assert param["schema"]["minLength"] == 1 and param["schema"]["maxLength"] == 80
                    assert param["schema"]["pattern"] == "^[ -~]*[!-~][ -~]*$"
