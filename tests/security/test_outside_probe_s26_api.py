"""Session 26's outside probe of the API (a demo city served on SQLite and PostgreSQL, attacked over HTTP): each
finding as the request that exposed it, sent again. Each test failed on the code the probe ran against."""

from __future__ import annotations

import pytest

from tests.ledger.helpers import activated, balance_of, terminal_token

pytestmark = pytest.mark.keys_required


def test_two_authorization_headers_are_no_credential_on_the_lane_and_through_fastapi(city, app, client):
    """A teller's token and an ATM's in one request: the server acted as the first (the deposit was made as the
    teller) while a gateway in front may check the last or join them. Authorization is a singleton field
    (RFC 9110): sent twice, even the same token twice, the request has no credential: 401, nothing done."""
    card = activated(city, opening_fen=10_000)
    atm, teller = terminal_token(city, "ATM-GSB-1"), city.token("teller")
    calls = [("/api/v1/terminal/deposit", {"pan": card.pan, "amount_fen": 100}, (atm, teller), atm),
             (f"/api/v1/bank-accounts/{card.pan}/deposit", {"amount_fen": 100}, (teller, atm), teller),
             (f"/api/v1/bank-accounts/{card.pan}/statement", None, (teller, atm), teller)]
    for n, (path, body, (first, second), own) in enumerate(calls):
        for pair in ((first, second), (own, own)):
            headers = [("Authorization", f"Bearer {pair[0]}"), ("Authorization", f"Bearer {pair[1]}"),
                       ("Idempotency-Key", f"twice-{n}-{pair[0] == pair[1]}")]
            answer = client.post(path, json=body, headers=headers) if body else client.get(path, headers=headers)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.json()["code"] == "unauthenticated"
    assert balance_of(app, card.pan) == 10_000
    once = client.post("/api/v1/terminal/deposit", json=calls[0][1],
                       headers={"Authorization": f"Bearer {atm}", "Idempotency-Key": "once"})
    assert once.status_code == 200 and balance_of(app, card.pan) == 10_100
