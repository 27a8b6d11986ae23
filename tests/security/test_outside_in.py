"""What an outside tester sends to the running server (session 9's sweep, docs/API.md "Outside-in sweep"),
each as the request that exposed a defect, sent again; and, since each fix is in the frame, sent to every
route or channel where the defect could recur, not only the one the probe happened to try."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from sscard.api.terminal_lane import TerminalLane, lane_routes
from sscard.composition import create_app

pytestmark = pytest.mark.keys_required

DEEP = b"[" * 100_000 + b"]" * 100_000  # deeper than any JSON parser's recursion


@pytest.fixture
def server(app):
    """The whole server, as `sscard serve` runs it; a 500 is answered, not raised, as a client sees it."""
    api = create_app(app)
    with TestClient(api, raise_server_exceptions=False) as client:
        client.api = api  # type: ignore[attr-defined]
        yield client


def _fill(template: str) -> str:
    return re.sub(r"{[^}]*}", "1", template)


def test_the_lane_answers_a_too_deeply_nested_body_as_fastapi_does_on_every_lane_route(app, server):
    """Finding 1: json.loads raised RecursionError in the lane (a 500); FastAPI answers such a body 400."""
    plain_api = create_app(app)
    plain_api.user_middleware = [m for m in plain_api.user_middleware if m.cls is not TerminalLane]
    plain = TestClient(plain_api, raise_server_exceptions=False)
    routes, _ = lane_routes(server.api, "POST")
    assert len(routes) > 10
    for route in routes:
        url = _fill(route.path)
        for body in (DEEP, b'{"amount_fen": ' + DEEP + b"}", b"\xff\xfe{}", b'{"pan": "\xed\xa0\x80"}', b"{" * 5000):
            a = server.post(url, content=body, headers={"content-type": "application/json", "Idempotency-Key": "k"})
            b = plain.post(url, content=body, headers={"content-type": "application/json", "Idempotency-Key": "k"})
            where = (url, body[:20], a.status_code, a.text[:200])
            assert a.status_code == b.status_code and a.status_code < 500, where
            assert a.json() == b.json(), where
            if route.body_params and body in (DEEP, b'{"amount_fen": ' + DEEP + b"}"):
                assert (a.status_code, a.json()["code"]) == (400, "invalid_request"), where
