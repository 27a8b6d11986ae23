"""Session 24's outside probe of the REST API and the ISO 8583 gateway: each finding as the request that
exposed it, sent again. Each test failed on the code the probe ran against."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sscard.composition import create_app
from sscard.core.identifiers import make_pan
from sscard.models.foundation import AuditRecord
from tests.ledger.helpers import PIN, activated, balance_of, terminal_token
from tests.support import bearer

pytestmark = pytest.mark.keys_required


@pytest.fixture
def api(app):
    with TestClient(create_app(app)) as client:
        yield client


def _nobodys_pan(app, bin_: str) -> str:
    """A PAN under `bin_` that passes the Luhn check and that no account has."""
    from sscard.models.foundation import BankAccount

    rng = random.Random(24)
    with app.db.session() as s:
        while True:
            pan = make_pan(bin_, rng)
            if s.scalar(select(BankAccount.id).where(BankAccount.pan == pan)) is None:
                return pan


def test_the_bank_side_cannot_tell_another_banks_real_pan_from_a_pan_of_nobody_on_any_route(city, app, api):
    """A GSB teller or GSB terminal sending a JSB card's PAN got 403 `wrong_bank`, and for a JSB PAN no
    account has 404 `account_not_found`: which of another bank's card numbers exist was told to any teller
    or terminal (the staff routes, the terminal routes, the statement read). The BIN says the bank: both
    are `wrong_bank` now, and nothing moved."""
    theirs = activated(city, bank="JSB", opening_fen=10_000)
    nobodys = _nobodys_pan(app, theirs.pan[:6])
    teller, atm = city.token("teller"), terminal_token(city, "ATM-GSB-1")
    pos = terminal_token(city, "POS-1")
    calls = [
        ("post", "/api/v1/bank-accounts/{pan}/deposit", teller, {"amount_fen": 100}),
        ("post", "/api/v1/bank-accounts/{pan}/withdrawal", teller, {"amount_fen": 100, "pin": PIN}),
        ("post", "/api/v1/bank-accounts/{pan}/loss/written", teller, {"presented_citizen_id": theirs.citizen_id}),
        ("get", "/api/v1/bank-accounts/{pan}/statement", teller, None),
        ("post", "/api/v1/terminal/withdrawal", atm, {"amount_fen": 100, "pin": PIN}),
        ("post", "/api/v1/terminal/deposit", atm, {"amount_fen": 100}),
        ("post", "/api/v1/terminal/balance", atm, {"pin": PIN}),
        ("post", "/api/v1/terminal/payments", pos, {"amount_fen": 100, "pin": PIN}),
    ]
    for n, (method, route, token, body) in enumerate(calls):
        answers = []
        for which, pan in (("theirs", theirs.pan), ("nobodys", nobodys)):
            path = route.format(pan=pan)
            if body is not None and "{pan}" not in route:
                body = {**body, "pan": pan}
            r = api.request(method.upper(), path, json=body, headers=bearer(token, f"s24-oracle-{n}-{which}"))
            answers.append((r.status_code, r.json()))
        assert answers[0] == answers[1] == (403, answers[0][1]), (route, answers)
        assert answers[0][1]["code"] == "wrong_bank", route
    assert balance_of(app, theirs.pan) == 10_000
    with app.db.session() as s:  # the refused attempt on a PAN of nobody is recorded, as on a real one
        refused = s.scalars(select(AuditRecord).where(AuditRecord.object_id == nobodys)).all()
    assert refused and {r.result for r in refused} != {"ok"}


def test_a_pan_of_the_bank_itself_or_of_no_bank_that_no_account_has_is_still_not_found(city, app, api):
    own = activated(city, bank="GSB")
    teller = city.token("teller")
    for pan in (_nobodys_pan(app, own.pan[:6]), _nobodys_pan(app, "999999")):
        r = api.post(f"/api/v1/bank-accounts/{pan}/deposit", json={"amount_fen": 100},
                     headers=bearer(teller, f"s24-own-{pan}"))
        assert (r.status_code, r.json()["code"]) == (404, "account_not_found")
