"""The terminals' lane (api/terminal_lane.py) answers exactly as FastAPI's own dispatch of the same routes.

Every request is sent twice, on two cardholders in the same state: once to the app as it runs (the lane
serves the hottest terminal routes itself) and once to the same app without the lane (FastAPI routes
it). The answers must be the same, status and body, apart from what differs by nature (the transfer
id, the time, the PAN). Malformed requests must reach FastAPI, so their 422s keep FastAPI's shape."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from sscard.api import ledger as ledger_api
from sscard.api import terminal_lane
from sscard.api.terminal_lane import TerminalLane
from sscard.composition import create_app

from .helpers import PIN, activated, terminal_token

pytestmark = pytest.mark.keys_required


@pytest.fixture
def plain(app):
    """The same app with FastAPI dispatching every route (no lane)."""
    api = create_app(app)
    api.user_middleware = [m for m in api.user_middleware if m.cls is not TerminalLane]
    return TestClient(api)


@pytest.fixture
def lane_hits(monkeypatch):
    """How many requests the lane served itself (their body parsed into the route's model)."""
    hits = []
    original = terminal_lane._parse

    def counting(request, body, model, key):
        parsed = original(request, body, model, key)
        if parsed is not None:
            hits.append(request.url.path)
        return parsed

    monkeypatch.setattr(terminal_lane, "_parse", counting)
    return hits


def _same(a, b) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.headers["content-type"] == b.headers["content-type"]

    def norm(r):
        body = r.json()
        if isinstance(body, dict):
            for k in ("transfer_id", "at", "pan", "to"):
                body.pop(k, None)
        return body

    assert norm(a) == norm(b)


def _headers(token, key=None, **extra):
    h = {"Authorization": f"Bearer {token}", **extra}
    if key is not None:
        h["Idempotency-Key"] = key
    return h


def test_the_lane_table_names_the_routes_own_models_and_endpoints():
    routes = {r.path: r for r in ledger_api.terminal_router.routes if isinstance(r, APIRoute)}
    for path, (model, endpoint) in ledger_api.LANE.items():
        route = routes[ledger_api.terminal_router.prefix + path]
        assert route.methods == {"POST"} and route.endpoint is endpoint
        assert route.body_field is not None and route.body_field.field_info.annotation is model


def test_the_lane_answers_as_fastapi_does(city, app, client, plain, lane_hits):
    one, two = (activated(city, name=n, opening_fen=10_000) for n in ("甲", "乙"))
    third = activated(city, name="丙", opening_fen=0)
    pos, atm = terminal_token(city, "POS-1"), terminal_token(city, "ATM-GSB-1")
    teller = city.token("teller")

    def both(path, body_of, headers, **kw):
        """Send to the lane (card one) and to FastAPI (card two); compare."""
        a = client.post(path, json=body_of(one.pan), headers=headers("L"), **kw)
        b = plain.post(path, json=body_of(two.pan), headers=headers("P"), **kw)
        _same(a, b)
        return a

    pay = "/api/v1/terminal/payments"
    # a payment, then its retry, then the key with another body
    assert both(pay, lambda p: {"pan": p, "amount_fen": 700, "pin": PIN}, lambda s: _headers(pos, f"k1{s}")).status_code == 200
    both(pay, lambda p: {"pan": p, "amount_fen": 700, "pin": PIN}, lambda s: _headers(pos, f"k1{s}"))
    both(pay, lambda p: {"pan": p, "amount_fen": 800, "pin": PIN}, lambda s: _headers(pos, f"k1{s}"))
    # business refusals, in both languages
    both(pay, lambda p: {"pan": p, "amount_fen": 10**9, "pin": PIN}, lambda s: _headers(pos, f"k2{s}"))
    both(pay, lambda p: {"pan": p, "amount_fen": 10**9, "pin": PIN},
         lambda s: _headers(pos, f"k3{s}", **{"Accept-Language": "en"}))
    both(pay, lambda p: {"pan": p, "amount_fen": 5, "pin": "000000"}, lambda s: _headers(pos, f"k4{s}"))
    both(pay, lambda p: {"pan": p, "amount_fen": 5, "pin": PIN}, lambda s: _headers(pos))  # no key
    both(pay, lambda p: {"pan": p, "amount_fen": 5, "pin": PIN}, lambda s: _headers("not-a-token", f"k5{s}"))
    both(pay, lambda p: {"pan": p, "amount_fen": 5, "pin": PIN}, lambda s: _headers(teller, f"k6{s}"))
    both(pay, lambda p: {"pan": p, "amount_fen": 5, "pin": PIN}, lambda s: _headers(atm, f"k7{s}"))  # an ATM
    served = len(lane_hits)
    # malformed: FastAPI's own 422s (the lane hands them over)
    both(pay, lambda p: {"pan": p, "amount_fen": "5", "pin": PIN}, lambda s: _headers(pos, f"k8{s}"))
    both(pay, lambda p: {"pan": p, "amount_fen": 5, "pin": PIN, "extra": 1}, lambda s: _headers(pos, f"k9{s}"))
    both(pay, lambda p: {"pan": p[:-1], "amount_fen": 5, "pin": PIN}, lambda s: _headers(pos, f"k10{s}"))
    both(pay, lambda p: {"pan": p, "amount_fen": 5, "pin": PIN}, lambda s: _headers(pos, "k" * 81))
    a = client.post(pay, content=b"{not json", headers=_headers(pos, "k11", **{"Content-Type": "application/json"}))
    b = plain.post(pay, content=b"{not json", headers=_headers(pos, "k11", **{"Content-Type": "application/json"}))
    _same(a, b)
    assert len(lane_hits) == served  # none of those went through the lane
    # the other lane routes
    both("/api/v1/terminal/balance", lambda p: {"pan": p, "pin": PIN}, lambda s: _headers(atm, f"b{s}"))
    both("/api/v1/terminal/withdrawal", lambda p: {"pan": p, "amount_fen": 100, "pin": PIN},
         lambda s: _headers(atm, f"w{s}"))
    both("/api/v1/terminal/deposit", lambda p: {"pan": p, "amount_fen": 100}, lambda s: _headers(atm, f"d{s}"))
    both("/api/v1/terminal/transfers", lambda p: {"from_pan": p, "to_pan": third.pan, "amount_fen": 50, "pin": PIN},
         lambda s: _headers(atm, f"t{s}"))
    auth = both("/api/v1/terminal/payments/authorize", lambda p: {"pan": p, "amount_fen": 30, "pin": PIN},
                lambda s: _headers(pos, f"a{s}"))
    assert auth.status_code == 200
    assert set(lane_hits) == {ledger_api.terminal_router.prefix + p for p in ledger_api.LANE}
    # and both cards end where they should, the same
    for card in (one, two):
        r = client.post("/api/v1/terminal/balance", json={"pan": card.pan, "pin": PIN}, headers=_headers(atm))
        assert r.json()["balance_fen"] == 10_000 - 700 - 100 + 100 - 50
