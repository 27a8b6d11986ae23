"""A valid token could hammer any route as fast as the server answered (session 26): logins were throttled by
address and secrets locked per card, but nothing counted a caller's requests. Now every authenticated API
route counts them per caller (services.throttle.CallerRate, declared once in deps.admitted; the terminal lane
and FastAPI's routes alike) against the city's policy, and answers 429 `rate_limited` with Retry-After.
Each test failed on the code before it (no limit: every request ran)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from sscard.api import terminal_lane
from sscard.composition import create_app
from sscard.models.foundation import AuditRecord
from sscard.services.throttle import caller_rate
from tests.ledger.helpers import activated, balance_of, terminal_token
from tests.support import City, bearer

pytestmark = pytest.mark.keys_required

WINDOW = 2


@pytest.fixture
def tight(make_app):
    """A city whose terminals may send 4 requests in 2 seconds, and staff 3."""
    app = make_app(api={"rate_window_seconds": WINDOW, "terminal_requests_per_window": 4,
                        "staff_requests_per_window": 3, "cardholder_requests_per_window": 2})
    with TestClient(create_app(app)) as client:
        yield app, City(app), client


def _audited(app, operation: str) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.operation == operation))


def _all_audit(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord))


def _until_admitted(send, tries: int = 1):
    """Send again after Retry-After: the answer is no 429 any more (the window has slid)."""
    answer = send()
    for _ in range(tries):
        if answer.status_code != 429:
            return answer
        time.sleep(int(answer.headers["Retry-After"]))
        answer = send()
    return answer


def test_a_flood_from_one_terminal_is_refused_429_with_retry_after_and_changes_nothing_and_another_terminal_goes_on(
        tight, monkeypatch):
    app, city, client = tight
    served: list[str] = []
    monkeypatch.setattr(terminal_lane, "_served", served.append)
    card = activated(city, opening_fen=10_000)
    from sscard.core.roles import CLI_OPERATOR
    from sscard.services import city as city_svc

    city_svc.add_terminal(app, CLI_OPERATOR, "ATM-GSB-2", "atm", "ATM-GSB-2", outlet_code="GSB-001")
    atm, other = terminal_token(city, "ATM-GSB-1"), terminal_token(city, "ATM-GSB-2")
    path, body = "/api/v1/terminal/deposit", {"pan": card.pan, "amount_fen": 100}
    first = client.post(path, json=body, headers=bearer(atm, "d-0"))
    assert first.status_code == 200
    answers = [client.post(path, json=body, headers=bearer(atm, f"d-{n}")) for n in range(1, 9)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    refused = answers[3:]
    assert {a.status_code for a in refused} == {429}
    assert served.count(path) == 9  # through the lane, counted as through FastAPI
    assert balance_of(app, card.pan) == 10_000 + 4 * 100  # the refused ones did nothing
    assert refused[0].json()["code"] == "rate_limited"
    seconds = int(refused[0].headers["Retry-After"])
    assert 1 <= seconds <= 2 * WINDOW  # a sliding window counter: the previous window's count fades over the next
    assert refused[0].json()["message"] == f"请求过于频繁，请{seconds}秒后再试"
    english = client.post(path, json=body, headers=bearer(atm, "d-en", **{"Accept-Language": "en"}))
    assert english.status_code == 429 and english.json()["message"].startswith("Too many requests from this caller")
    # one audit record for the caller's flood, not one per refused request; nothing else written
    assert _audited(app, "throttle.caller_limited") == 1
    before = _all_audit(app)
    assert client.post(path, json=body, headers=bearer(atm, "d-more")).status_code == 429
    assert _all_audit(app) == before
    # another terminal is counted apart
    assert client.post(path, json=body, headers=bearer(other, "o-1")).status_code == 200
    assert balance_of(app, card.pan) == 10_000 + 5 * 100


def test_after_the_window_the_caller_works_again_and_a_retried_key_gets_its_first_answer_once(tight):
    """A replay counts as a request (it costs a look-up and an answer, and a loop replaying one key is a loop):
    over the limit it is refused like any other, and nothing is stored under the key for that refusal, so the
    same key after Retry-After gets the first answer, the deposit made once."""
    app, city, client = tight
    card = activated(city, opening_fen=10_000)
    atm = terminal_token(city, "ATM-GSB-1")
    path, body = "/api/v1/terminal/deposit", {"pan": card.pan, "amount_fen": 100}
    done = client.post(path, json=body, headers=bearer(atm, "once"))
    assert done.status_code == 200
    while client.post(path, json=body, headers=bearer(atm, "once")).status_code != 429:
        pass  # replays of the key, counted, until the caller is over its limit
    assert balance_of(app, card.pan) == 10_100
    again = _until_admitted(lambda: client.post(path, json=body, headers=bearer(atm, "once")))
    assert again.status_code == 200 and again.json() == done.json()
    assert balance_of(app, card.pan) == 10_100
    fresh = _until_admitted(lambda: client.post(path, json=body, headers=bearer(atm, "next")))
    assert fresh.status_code == 200 and balance_of(app, card.pan) == 10_200


def test_staff_requests_are_counted_once_each_through_fastapi_a_refused_body_included(tight, monkeypatch):
    """A body the route refuses (422) is asked about its caller again (api.main.caller_refused): it counts
    once, as every request does."""
    app, city, client = tight
    served: list[str] = []
    monkeypatch.setattr(terminal_lane, "_served", served.append)
    clerk = city.token("clerk")
    answers = [client.post("/api/v1/persons", json={"citizen_id": "x"}, headers=bearer(clerk, f"p-{n}"))
               for n in range(4)]
    assert [a.status_code for a in answers] == [422, 422, 422, 429], [a.text for a in answers]
    assert answers[3].json()["code"] == "rate_limited" and "Retry-After" in answers[3].headers
    assert served == []  # FastAPI's routes, not the lane's
    # another staff user's token is counted apart
    assert client.get("/api/v1/medical/institutions", headers=bearer(city.token("csup"))).status_code == 200


def test_the_default_policy_lets_a_busy_terminal_through_and_stops_a_loop(app):
    """The defaults (docs/API.md): a terminal 100,000 requests in 10 s (more than a server answers, so a load
    test is never cut short), staff the same, a cardholder 5,000; a loop past them is refused."""
    rate = caller_rate(app)
    city = City(app)
    from sscard.services.staff import actor_for_token

    atm = actor_for_token(app, terminal_token(city, "ATM-GSB-1"))
    assert all(rate.wait(atm) == 0 for _ in range(100_000))
    assert rate.wait(atm) > 0


def test_every_authenticated_operation_declares_rate_limited_and_its_retry_after(client):
    schema = client.app.openapi()
    for path, methods in schema["paths"].items():
        for op in methods.values():
            if op.get("security"):
                assert "rate_limited" in op["x-error-codes"], path
                assert op["responses"]["429"]["headers"]["Retry-After"] == {"$ref": "#/components/headers/Retry-After"}
            elif "security" in op:
                assert "rate_limited" not in op["x-error-codes"], path


@pytest.mark.parametrize("local", [True, False], ids=["in-process", "limits-storage"])
def test_a_caller_over_its_limit_waits_what_it_is_told_then_goes_on_in_either_storage(local):
    """Each storage (the worker's own counters, `limits`' for redis://, here over memory://) admits the limit,
    refuses past it with the seconds to wait, and admits again once they have passed."""
    from sscard.core.roles import Actor, Role
    from sscard.services.throttle import CallerRate

    rate = CallerRate("memory://", WINDOW, {"terminal": 3, "staff": 1, "cardholder": 1}, local=local)
    atm, other = Actor(kind="terminal", id="ATM-1", role=Role.TERMINAL), Actor(kind="terminal", id="ATM-2",
                                                                               role=Role.TERMINAL)
    assert [rate.wait(atm) for _ in range(3)] == [0, 0, 0]
    wait = rate.wait(atm)
    assert 1 <= wait <= 2 * WINDOW
    assert rate.wait(other) == 0
    time.sleep(wait)
    assert rate.wait(atm) == 0
