"""Issue 13: wrong passwords are throttled per client address across all accounts and login doors
(credential stuffing), with the `limits` library in memory or in Redis, and the refusal is audited."""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from limits import RateLimitItemPerSecond
from sqlalchemy import select

from sscard.composition import create_app
from sscard.config import Settings
from sscard.core.errors import SscardError
from sscard.core.policy import load_policy
from sscard.models.foundation import AuditRecord, Person
from sscard.services import throttle
from sscard.services.app import build_app
from tests.portal.helpers import initial_password, login
from tests.support import STAFF_PASSWORD

REDIS = "redis://127.0.0.1:6379/0"
pytestmark = pytest.mark.keys_required  # the production rule: the API door ran into it (session 21's probe)


def _redis_up() -> bool:
    """Skip the Redis tests when no Redis answers, except in CI (SSCARD_REQUIRE_REDIS): there they fail."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return bool(os.environ.get("SSCARD_REQUIRE_REDIS"))


def _throttled_audits(app) -> list[AuditRecord]:
    with app.db.session() as s:
        rows = s.scalars(select(AuditRecord).where(AuditRecord.operation == "login.throttled")
                         .order_by(AuditRecord.id)).all()
        s.expunge_all()
        return list(rows)


def _failures(app, person_id: int) -> int:
    with app.db.session() as s:
        return s.get(Person, person_id).query_pw_failures


def test_one_client_trying_twenty_cardholders_is_refused_from_the_eleventh_and_audited_once(app, city):
    cards = [city.issued_card(f"张{i}") for i in range(21)]
    api = create_app(app)
    with TestClient(api) as attacker, TestClient(api, client=("198.51.100.7", 40000)) as neighbour:
        answers = [login(attacker, c.citizen_id, "Wrong-pass-1") for c in cards[:20]]
        assert [a.status_code for a in answers] == [401] * 10 + [429] * 10
        refused = answers[10]
        assert "登录失败次数过多" in refused.text and 1 <= int(refused.headers["Retry-After"]) <= 60
        assert f"{refused.headers['Retry-After']}秒后再试" in refused.text
        assert refused.headers["content-security-policy"]  # a refusal is still a hardened page
        # refused before the password was checked: the accounts' own counters did not move
        assert [_failures(app, c.person_id) for c in cards[:10]] == [1] * 10
        assert [_failures(app, c.person_id) for c in cards[10:20]] == [0] * 10

        # the right password of a 21st cardholder, from the same client: refused too
        right = login(attacker, cards[20].citizen_id, initial_password(cards[20].card_number))
        assert right.status_code == 429 and "sscard_portal=" not in right.headers.get("set-cookie", "")
        # ... while another client signs in with it
        fine = login(neighbour, cards[20].citizen_id, initial_password(cards[20].card_number))
        assert fine.status_code == 303 and fine.headers["location"] == "/portal/password"

    records = _throttled_audits(app)
    assert len(records) == 1  # once per client, door and minute, not once per refused request
    record = records[0]
    assert record.object_type == "client" and record.object_id == "testclient" and record.result == "too_many_attempts"
    assert record.channel == "portal" and record.detail["door"] == "portal"
    assert record.detail["accounts_tried"] == 10
    stored = repr((record.detail, record.before, record.after, record.object_id))
    assert not any(c.citizen_id in stored for c in cards) and "Wrong-pass-1" not in stored


def test_the_api_login_answers_429_too_many_attempts_with_retry_after(make_app, city):
    app = make_app(login={"client_failures_per_minute": 3})
    card = city.issued_card()
    with TestClient(create_app(app)) as client:
        def attempt(password):
            return client.post("/api/v1/cardholder/login?lang=en", json={"login": card.citizen_id, "password": password})

        assert [attempt("Wrong-pass-1").status_code for _ in range(3)] == [401, 401, 401]
        refused = attempt(initial_password(card.card_number))
        assert refused.status_code == 429 and refused.json()["code"] == "too_many_attempts"
        assert "Too many failed logins" in refused.json()["message"] and int(refused.headers["Retry-After"]) > 0
    assert _failures(app, card.person_id) == 3  # the refused right password did not unlock or count
    assert _throttled_audits(app)[0].detail == {
        "door": "api", "accounts_tried": 1, "retry_after_seconds": int(refused.headers["Retry-After"]),
        "per_minute": 3, "per_hour": 50}


@pytest.mark.parametrize("door", ["console", "bank"])
def test_staff_console_logins_are_throttled_across_doors(make_app, city, door):
    """Failures at the portal count at the staff doors too: one budget per client, whatever the door."""
    app = make_app(login={"client_failures_per_minute": 4})
    card = city.issued_card()
    with TestClient(create_app(app)) as client:
        for _ in range(2):
            assert login(client, card.citizen_id, "Wrong-pass-1").status_code == 401

        def staff_login(password):
            page = client.get(f"/{door}/login")
            token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
            return client.post(f"/{door}/login", data={"username": "clerk" if door == "console" else "teller",
                                                        "password": password, "login_token": token},
                               follow_redirects=False)

        assert [staff_login("not-the-password").status_code for _ in range(2)] == [401, 401]
        refused = staff_login(STAFF_PASSWORD)
        assert refused.status_code == 429 and "登录失败次数过多" in refused.text and refused.headers["Retry-After"]
        assert "sscard_staff=" not in refused.headers.get("set-cookie", "")
    assert [r.detail["door"] for r in _throttled_audits(app)] == [door]
    assert _throttled_audits(app)[0].channel == ("window" if door == "console" else "bank_outlet")


def test_login_limits_are_policies_listed_by_policy_show():
    flat = load_policy().flat()
    assert flat["login.client_failures_per_minute"] == 10 and flat["login.client_failures_per_hour"] == 50
    assert load_policy(login={"client_failures_per_hour": 20}).login.client_failures_per_hour == 20


def test_the_hourly_limit_holds_when_the_minute_allows(make_app, city):
    app = make_app(login={"client_failures_per_minute": 10, "client_failures_per_hour": 4})
    card = city.issued_card()
    with TestClient(create_app(app)) as client:
        codes = [login(client, card.citizen_id, f"Wrong-pass-{i}").status_code for i in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    assert 60 < int(_throttled_audits(app)[0].detail["retry_after_seconds"]) <= 3600


# ---------------------------------------------------------------- both storages, the window, the address


STORAGES = ["memory://", pytest.param(REDIS, marks=pytest.mark.skipif(not _redis_up(), reason="Redis not reachable"))]


@pytest.mark.parametrize("storage", STORAGES)
def test_a_short_window_lifts_the_refusal_in_both_storages(app, storage):
    """`limits` counts by the wall clock (not the injected clock), so the window is shown short here."""
    namespace = f"sscard-test-{uuid.uuid4().hex}"
    app.extras["login_throttle"] = throttle.LoginThrottle(
        storage, 0, 0, key=b"k" * 16, namespace=namespace, windows=(RateLimitItemPerSecond(2, 3, namespace=namespace),))

    def attempt(login_name: str, ok: bool):
        return throttle.guarded_login(app, "203.0.113.5", "portal", login_name, lambda: "in" if ok else None)

    attempt("a", False)
    attempt("b", False)
    with pytest.raises(SscardError) as refused:
        attempt("c", True)
    assert refused.value.code == "too_many_attempts" and refused.value.status == 429
    assert throttle.throttle_for(app).accounts_tried("203.0.113.5") == 2
    assert throttle.guarded_login(app, "203.0.113.6", "portal", "c", lambda: "in") == "in"
    time.sleep(3.1)
    assert attempt("c", True) == "in"


@pytest.mark.skipif(not _redis_up(), reason="Redis not reachable")
def test_the_redis_storage_is_chosen_by_setting_and_shared_between_servers(settings, clock, monkeypatch, tmp_path):
    monkeypatch.setenv("SSCARD_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SSCARD_RATE_LIMIT_STORAGE", REDIS)
    assert Settings.from_env().rate_limit_storage == REDIS
    policy = load_policy(login={"client_failures_per_minute": 2})
    servers = [build_app(replace(settings, rate_limit_storage=REDIS), clock=clock, policy=policy, pool_size=2)
               for _ in range(2)]
    client = f"192.0.2.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:8]}"  # fresh keys in the shared Redis
    try:
        assert type(throttle.throttle_for(servers[0]).storage).__name__ == "RedisStorage"
        for server in servers:  # one failure on each server
            throttle.guarded_login(server, client, "api", "someone", lambda: None)
        with pytest.raises(SscardError, match="Too many"):
            throttle.guarded_login(servers[0], client, "api", "someone", lambda: "in")
    finally:
        for server in servers:
            server.close()


def test_x_forwarded_for_counts_only_from_a_configured_proxy(settings, clock, city):
    policy = load_policy(login={"client_failures_per_minute": 2})

    def run(trusted: tuple[str, ...]) -> list[int]:
        card = city.issued_card()
        app = build_app(replace(settings, trusted_proxies=trusted), clock=clock, policy=policy, pool_size=2)
        codes = []
        try:
            with TestClient(create_app(app), client=("10.0.0.5", 1234)) as proxy:
                for i in range(4):  # a different forwarded address each time
                    proxy.headers["X-Forwarded-For"] = f"203.0.113.{i + 1}, 10.0.0.{i + 1}"
                    codes.append(login(proxy, card.citizen_id, "Wrong-pass-1").status_code)
            return codes
        finally:
            app.close()

    # our proxies (10.0.0.0/24) name four different clients: none is over its limit
    assert run(("10.0.0.0/24",)) == [401, 401, 401, 401]
    # no proxy configured, or the peer is not one of them: the header is the client's own claim, ignored
    assert run(()) == [401, 401, 429, 429]
    assert run(("10.9.9.0/24",)) == [401, 401, 429, 429]


def test_sscard_serve_leaves_x_forwarded_for_to_the_trusted_proxies_setting(monkeypatch):
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default: serve turns that off."""
    import uvicorn

    import sscard.cli as cli

    calls = []
    from types import SimpleNamespace

    monkeypatch.setattr(cli, "load_app", lambda: SimpleNamespace(settings=SimpleNamespace(log_format="plain")))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append(kw))
    cli.serve(host="127.0.0.1", port=8000, workers=1)
    assert calls[0]["proxy_headers"] is False
