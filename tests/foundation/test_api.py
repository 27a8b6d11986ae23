"""The /api/v1 foundation on both databases: the first-issue path, passwords, losses, audit, refusals
that change nothing, validation, idempotency and cardholder tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from sscard.core.identifiers import card_number_check_char, make_citizen_id, mask_card_number
from sscard.core.roles import Channel
from sscard.services import loss
from tests.foundation.helpers import audit_since, business_tables, headers, last_audit_id, snapshot
from tests.support import City, IssuedCard, in_fresh_loop

BAD_CHECK_ID = "110105194912310021"  # the GB 11643 example with a wrong check char


@dataclass
class World:
    city: City
    card: IssuedCard
    clerk: str
    csup: str
    teller: str
    teller_jsb: str
    operator: str


@pytest.fixture
def world(city) -> World:
    card = city.issued_card("王芳", birth=date(1975, 3, 9))
    return World(city, card, *(city.token(u) for u in ("clerk", "csup", "teller", "teller_jsb", "operator")))


def login(client, login_value: str, password: str) -> str:
    r = client.post("/api/v1/cardholder/login", json={"login": login_value, "password": password},
                    headers=headers())
    assert r.status_code == 200, r.text
    return r.json()["token"]


# ---------------------------------------------------------------- the first-issue path


def test_register_apply_batch_collect_and_status_through_the_api(client, city):
    clerk = city.token("clerk")
    cid = make_citizen_id("330106", date(1990, 2, 3), 21)
    r = client.post("/api/v1/persons", json={"citizen_id": cid, "name": "陈明"}, headers=headers(clerk))
    assert r.status_code == 201, r.text
    person = r.json()
    assert person["citizen_id"] == cid[:6] + "********" + cid[-4:]
    assert (person["sex"], person["birth_date"]) == ("M", "1990-02-03")

    r = client.post("/api/v1/cards", json={"person_id": person["id"], "bank_code": "GSB", "center_code": "C01"},
                    headers=headers(clerk))
    assert r.status_code == 201, r.text
    number = r.json()["card_number"]
    assert r.json()["ss_status"] == "applied"

    r = client.post("/api/v1/production-batches", json={"center_code": "C01"}, headers=headers(clerk))
    assert r.status_code == 201 and r.json()["cards"] == 1
    assert r.json()["due_date"] == "2026-01-26"  # 15 working days after Monday 5 January 2026
    batch = r.json()["batch"]
    r = client.post(f"/api/v1/production-batches/{batch}/complete", headers=headers(clerk))
    assert r.status_code == 200 and r.json()["status"] == "ready"

    r = client.post(f"/api/v1/cards/{number}/collect", json={"presented_citizen_id": cid}, headers=headers(clerk))
    assert r.status_code == 200, r.text
    assert r.json()["expiry_date"] == "2036-01-05" and r.json()["activation_deadline"] == "2026-03-06"

    r = client.get(f"/api/v1/cards/{number}", headers=headers(clerk))
    assert r.status_code == 200
    status = r.json()
    assert status["ss_status"] == "normal" and status["bank"]["status"] == "not_activated"
    assert status["card_number"] == number[:2] + "*****" + number[-2:]
    assert status["person"]["name"] == "陈*"
    r = client.get(f"/api/v1/persons/{person['id']}/cards", headers=headers(clerk))
    assert r.status_code == 200 and len(r.json()["cards"]) == 1
    r = client.get("/api/v1/persons", params={"citizen_id": cid}, headers=headers(clerk))
    assert r.status_code == 200 and r.json()["id"] == person["id"]


def test_passwords_through_the_api(client, world):
    card, clerk = world.card, world.clerk
    initial = headers(login(client, card.citizen_id, card.card_number[-6:]))
    base = f"/api/v1/cards/{card.card_number}/ss-password"
    r = client.post(f"{base}/change", json={"old": "123456", "new": "802461", "new_again": "802461"}, headers=initial)
    assert r.status_code == 403 and r.json()["code"] == "password_change_required"  # RULES §4: the change first
    r = client.post("/api/v1/cardholder/query-password/change",
                    json={"old": card.card_number[-6:], "new": "80468213", "new_again": "80468213"},
                    headers=initial)
    assert r.status_code == 200, r.text
    assert client.post("/api/v1/cardholder/login", json={"login": card.citizen_id, "password": "80468213"},
                       headers=headers()).json()["must_change_password"] is False
    holder = headers(login(client, card.citizen_id, "80468213"))
    r = client.post(f"{base}/change", json={"old": "123456", "new": "802461", "new_again": "802461"}, headers=holder)
    assert r.status_code == 200 and r.json() == {"card_number": mask_card_number(card.card_number), "changed": True}
    r = client.post(f"{base}/verify", json={"password": "802461"}, headers=holder)
    assert r.status_code == 200 and r.json()["verified"] is True
    r = client.post(f"{base}/verify", json={"password": "123456"}, headers=holder)
    assert r.status_code == 401 and r.json() == {"code": "wrong_password", "message": "Wrong password, 2 tries left",
                                                 "tries_left": 2}
    r = client.post(f"{base}/reset", json={"presented_citizen_id": card.citizen_id}, headers=headers(clerk))
    assert r.status_code == 200 and r.json()["initial"] is True
    r = client.post(f"{base}/verify", json={"password": "123456"}, headers=holder)
    assert r.status_code == 200

    r = client.post("/api/v1/query-password/reset",
                    json={"person_id": card.person_id, "presented_citizen_id": card.citizen_id}, headers=headers(clerk))
    assert r.status_code == 200
    assert login(client, card.citizen_id, card.card_number[-6:])


def test_losses_through_the_api_each_side_reminds_of_the_other(client, world):
    card = world.card
    holder = headers(login(client, card.citizen_id, world.city.own_query_password(card)))
    r = client.post(f"/api/v1/cards/{card.card_number}/ss-loss/temporary", headers=holder)
    assert r.status_code == 200 and r.json()["ss_status"] == "temporary_loss"
    # the bank side is separate (not activated here: said so, not sent to be reported)
    assert "not activated" in r.json()["reminder"]["en"] and r.json()["linked_bank_status"] is None
    r = client.post(f"/api/v1/cards/{card.card_number}/ss-loss/formal",
                    json={"presented_citizen_id": card.citizen_id}, headers=headers(world.clerk))
    assert r.status_code == 200 and r.json()["ss_status"] == "formal_loss"
    r = client.post(f"/api/v1/cards/{card.card_number}/ss-loss/cancel", json={}, headers=holder)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"  # formal: only at a window
    r = client.post(f"/api/v1/cards/{card.card_number}/ss-loss/cancel",
                    json={"presented_citizen_id": card.citizen_id}, headers=headers(world.clerk))
    assert r.status_code == 200 and r.json()["ss_status"] == "normal"
    r = client.get(f"/api/v1/cards/{card.card_number}", headers=holder)
    assert r.json()["bank"]["status"] == "not_activated"  # the bank side was never touched


def test_temporary_loss_lapses_after_seven_days_in_the_status(client, world, clock):
    card = world.card
    holder = headers(login(client, card.citizen_id, world.city.own_query_password(card)))
    assert client.post(f"/api/v1/cards/{card.card_number}/ss-loss/temporary", headers=holder).status_code == 200
    clock.advance(days=7)
    r = client.get(f"/api/v1/cards/{card.card_number}", headers=headers(world.clerk))
    assert r.json()["ss_status"] == "normal"


def test_bank_losses_through_the_api_only_at_the_cards_bank(client, world, app):
    card = world.card
    r = client.post(f"/api/v1/bank-accounts/{card.pan}/loss/written",
                    json={"presented_citizen_id": card.citizen_id}, headers=headers(world.teller_jsb))
    assert r.status_code == 403 and r.json()["code"] == "wrong_bank"
    # the account is not activated yet: no loss can be recorded on it
    r = client.post(f"/api/v1/bank-accounts/{card.pan}/loss/written",
                    json={"presented_citizen_id": card.citizen_id}, headers=headers(world.teller))
    assert r.status_code == 409 and r.json()["code"] == "illegal_transition"


def test_audit_filters_for_a_supervisor_and_forbidden_to_a_clerk(client, world):
    card = world.card
    client.post(f"/api/v1/cards/{card.card_number}/ss-password/verify", json={"password": "999999"},
                headers=headers(world.clerk))
    r = client.get("/api/v1/audit", params={"operation": "card.collect"}, headers=headers(world.csup))
    assert r.status_code == 200
    records = r.json()["records"]
    assert len(records) == 1 and records[0]["object_id"] == card.card_number[:2] + "*****" + card.card_number[-2:]
    r = client.get("/api/v1/audit", params={"person_id": card.person_id, "result": "ok"}, headers=headers(world.csup))
    ops = [x["operation"] for x in r.json()["records"]]
    assert ops == ["card.collect", "card.apply_first", "person.register"]  # newest first
    r = client.get("/api/v1/audit", params={"since": "2026-01-05T02:00:00Z", "until": "2026-01-05T02:00:01Z",
                                            "limit": 2}, headers=headers(world.csup))
    assert r.status_code == 200 and len(r.json()["records"]) == 2
    r = client.get("/api/v1/audit", params={"since": "2026-01-06T00:00:00+08:00"}, headers=headers(world.csup))
    assert r.status_code == 200 and r.json()["records"] == []
    r = client.get("/api/v1/audit", params={"since": "2026-01-05T00:00:00"}, headers=headers(world.csup))
    assert r.status_code == 200 and r.json()["records"]  # a time without zone is UTC
    r = client.get("/api/v1/audit", params={"operation": "ss_password.verify"}, headers=headers(world.csup))
    assert r.json()["records"][0]["result"] == "forbidden"  # the clerk may not verify: a recorded refusal
    r = client.get("/api/v1/audit", headers=headers(world.clerk))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"


# ---------------------------------------------------------------- refusals change nothing


def _refusals(w: World) -> list[tuple[str, str, str | None, object, str | None, int, str]]:
    """(method, path, token, json body or raw bytes, content type, status, code)."""
    c = w.card
    other = make_citizen_id("330106", date(1966, 6, 6), 601)
    return [
        ("POST", "/api/v1/persons", w.clerk, {"citizen_id": BAD_CHECK_ID, "name": "甲"}, None, 422,
         "invalid_citizen_id"),
        ("POST", "/api/v1/persons", w.clerk, {"citizen_id": c.citizen_id, "name": "王芳"}, None, 409,
         "already_exists"),
        ("POST", "/api/v1/persons", w.clerk, {"citizen_id": other, "name": "甲", "nickname": "x"}, None, 422,
         "invalid_request"),
        ("POST", "/api/v1/persons", w.clerk, b'{"citizen_id": "', "application/json", 422, "invalid_request"),
        ("POST", "/api/v1/persons", w.clerk, b"[1, 2]", "application/json", 422, "invalid_request"),
        ("POST", "/api/v1/persons", w.clerk, b"\xff\xfe", "application/json", 422, "invalid_request"),
        ("POST", "/api/v1/persons", w.clerk, b"citizen_id=1", "application/x-www-form-urlencoded", 422,
         "invalid_request"),
        ("POST", "/api/v1/persons", w.clerk, {"citizen_id": other, "name": "甲\x00乙"}, None, 422, "invalid_request"),
        ("POST", "/api/v1/persons", None, {"citizen_id": other, "name": "甲"}, None, 401, "unauthenticated"),
        ("POST", "/api/v1/persons", "not-a-token", {"citizen_id": other, "name": "甲"}, None, 401,
         "unauthenticated"),
        ("POST", "/api/v1/persons", w.teller, {"citizen_id": other, "name": "甲"}, None, 403, "forbidden"),
        ("POST", "/api/v1/cards", w.clerk, {"person_id": c.person_id, "bank_code": "GSB", "center_code": "C01"},
         None, 409, "card_pending"),
        ("POST", "/api/v1/cards", w.clerk, {"person_id": 10**30, "bank_code": "GSB", "center_code": "C01"},
         None, 422, "invalid_request"),
        ("POST", "/api/v1/cards", w.clerk, {"person_id": 999, "bank_code": "GSB", "center_code": "C01"},
         None, 404, "person_not_found"),
        ("POST", f"/api/v1/cards/{c.card_number}/collect", w.clerk, {"presented_citizen_id": other}, None, 403,
         "identity_mismatch"),
        ("POST", f"/api/v1/cards/{c.card_number}/collect", w.clerk, {"presented_citizen_id": c.citizen_id}, None,
         409, "illegal_transition"),
        ("POST", f"/api/v1/cards/{c.card_number}/ss-loss/cancel", w.clerk,
         {"presented_citizen_id": c.citizen_id}, None, 409, "illegal_transition"),
        ("POST", f"/api/v1/cards/{c.card_number}/ss-password/change", w.clerk,
         {"old": "123456", "new": "111111", "new_again": "111111"}, None, 422, "weak_password"),
        ("POST", f"/api/v1/cards/{c.card_number}/ss-password/reset", w.clerk,
         {"presented_citizen_id": BAD_CHECK_ID}, None, 422, "invalid_citizen_id"),
        ("POST", f"/api/v1/bank-accounts/{c.pan}/loss/written", w.teller_jsb,
         {"presented_citizen_id": c.citizen_id}, None, 403, "wrong_bank"),
        ("POST", "/api/v1/production-batches/NOPE/complete", w.clerk, None, None, 404, "not_found"),
        ("POST", "/api/v1/production-batches", w.clerk, {"center_code": "C01"}, None, 404, "not_found"),
        ("POST", "/api/v1/production-batches", w.clerk, {"center_code": "C02"}, None, 403, "wrong_center"),
        ("GET", "/api/v1/cards/A1234567X", w.clerk, None, None, 422, "invalid_card_number"),
        ("GET", "/api/v1/cards/000000000", w.clerk, None, None, 404, "card_not_found"),
        ("GET", "/api/v1/persons/99999999999999999999999/cards", w.clerk, None, None, 422, "invalid_request"),
        ("GET", "/api/v1/audit", w.clerk, None, None, 403, "forbidden"),
        ("GET", "/api/v1/audit?operation=%00", w.csup, None, None, 422, "invalid_request"),
        ("GET", "/api/v1/nowhere", w.clerk, None, None, 404, "not_found"),
        ("DELETE", "/api/v1/persons", w.clerk, None, None, 405, "method_not_allowed"),
    ]


def test_every_refusal_is_4xx_code_and_message_and_changes_nothing(client, world, app):
    for method, path, token, body, ctype, status, code in _refusals(world):
        before = snapshot(app)
        last = last_audit_id(app)
        h = headers(token)
        if isinstance(body, bytes):
            h["Content-Type"] = ctype
            r = client.request(method, path, content=body, headers=h)
        else:
            r = client.request(method, path, json=body, headers=h)
        where = f"{method} {path} {body!r}"
        assert r.status_code == status, (where, r.text)
        payload = r.json()
        assert payload["code"] == code, (where, payload)
        assert isinstance(payload["message"], str) and payload["message"], where
        assert set(payload) <= {"code", "message", "details"}, where
        after = snapshot(app)
        assert business_tables(after) == business_tables(before), where
        new = audit_since(app, last)
        if status in (400, 404, 405, 422) or code == "unauthenticated":
            assert new == [], where
        else:  # refusals that matter, of reads as of writes, leave one record of the attempt, and nothing else
            assert [a.result for a in new] == [code], where


def test_refusals_are_in_english_on_request_and_chinese_by_default(client, world):
    body = {"citizen_id": BAD_CHECK_ID, "name": "甲"}
    r = client.post("/api/v1/persons", json=body, headers=headers(world.clerk, lang="en-GB,en;q=0.8"))
    assert r.json() == {"code": "invalid_citizen_id", "message": "Invalid citizen ID: the check character is wrong"}
    r = client.post("/api/v1/persons", json=body, headers=headers(world.clerk, lang="zh-CN"))
    assert r.json() == {"code": "invalid_citizen_id", "message": "公民身份号码无效：校验码不正确"}
    r = client.post("/api/v1/persons", json=body, headers={"Authorization": f"Bearer {world.clerk}"})
    assert r.json()["message"] == "公民身份号码无效：校验码不正确"


def test_identifier_check_endpoint(client):
    r = client.get("/api/v1/identifiers/check", params={"kind": "citizen_id", "value": BAD_CHECK_ID},
                   headers=headers())
    assert r.status_code == 422 and r.json()["code"] == "invalid_citizen_id"
    assert r.json()["message"] == "Invalid citizen ID: the check character is wrong"
    r = client.get("/api/v1/identifiers/check", params={"kind": "citizen_id", "value": "11010519491231002x"})
    assert r.status_code == 200 and r.json()["value"] == "11010519491231002X"
    number = "A1234567" + card_number_check_char("A1234567")
    assert client.get("/api/v1/identifiers/check", params={"kind": "card_number", "value": number}).status_code == 200
    r = client.get("/api/v1/identifiers/check", params={"kind": "pan", "value": "6228230000000001234"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_pan"
    r = client.get("/api/v1/identifiers/check", params={"kind": "phone", "value": "1"})
    assert r.status_code == 422 and r.json()["code"] == "invalid_request"


def test_cli_id_check_exits_1_on_a_wrong_check_char():
    from sscard.cli import app as cli_app

    runner = CliRunner()
    result = runner.invoke(cli_app, ["id", "check", BAD_CHECK_ID], env={"LANG": "en_US.UTF-8"})
    assert result.exit_code == 1
    assert "invalid_citizen_id" in result.output and "check character" in result.output
    result = runner.invoke(cli_app, ["id", "check", "11010519491231002X"])
    assert result.exit_code == 0 and "valid citizen_id" in result.output


# ---------------------------------------------------------------- idempotency


def test_same_key_same_body_answers_the_same_and_applies_once(client, world, app):
    cid = make_citizen_id("330106", date(1988, 8, 8), 33)
    body = {"citizen_id": cid, "name": "赵六"}
    first = client.post("/api/v1/persons", json=body, headers=headers(world.clerk, key="reg-1"))
    before = snapshot(app)
    again = client.post("/api/v1/persons", json=body, headers=headers(world.clerk, key="reg-1"))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert snapshot(app) == before  # nothing more written, not even an audit record
    other = client.post("/api/v1/persons", json={**body, "name": "赵七"}, headers=headers(world.clerk, key="reg-1"))
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert snapshot(app) == before


def test_a_keyed_wrong_password_replays_without_counting_twice(client, world, app):
    card = world.card
    holder = headers(login(client, card.citizen_id, world.city.own_query_password(card)), key="verify-1")
    path = f"/api/v1/cards/{card.card_number}/ss-password/verify"
    first = client.post(path, json={"password": "999999"}, headers=holder)
    again = client.post(path, json={"password": "999999"}, headers=holder)
    assert first.status_code == again.status_code == 401 and first.json() == again.json()
    assert first.json()["tries_left"] == 2 and first.json()["message"] == "Wrong password, 2 tries left"
    r = client.get(f"/api/v1/cards/{card.card_number}", headers=headers(world.clerk))
    assert r.json()["ss_password"]["locked"] is False
    from sqlalchemy import select

    from sscard.models.foundation import Card

    with app.db.session() as s:
        assert s.scalar(select(Card.ss_pw_failures).where(Card.card_number == card.card_number)) == 1


def test_the_same_key_from_two_staff_members_is_two_requests(client, world, city):
    cid1 = make_citizen_id("330106", date(1988, 8, 8), 35)
    cid2 = make_citizen_id("330106", date(1988, 8, 8), 37)
    r1 = client.post("/api/v1/persons", json={"citizen_id": cid1, "name": "甲"}, headers=headers(world.clerk, key="k"))
    r2 = client.post("/api/v1/persons", json={"citizen_id": cid2, "name": "乙"}, headers=headers(world.csup, key="k"))
    assert r1.status_code == r2.status_code == 201 and r1.json()["id"] != r2.json()["id"]


# ---------------------------------------------------------------- cardholder tokens


def test_cardholder_login_gives_a_token_that_reads_only_their_own_cards(client, world, city):
    mine = world.card
    theirs = city.issued_card("李雷")
    token = login(client, mine.card_number, city.own_query_password(mine))
    assert token.startswith("ch.")
    r = client.get(f"/api/v1/cards/{mine.card_number}", headers=headers(token))
    assert r.status_code == 200
    r = client.get(f"/api/v1/cards/{theirs.card_number}", headers=headers(token))
    assert r.status_code == 404 and r.json()["code"] == "card_not_found"
    r = client.get(f"/api/v1/persons/{theirs.person_id}/cards", headers=headers(token))
    assert r.status_code == 404
    r = client.post(f"/api/v1/cards/{theirs.card_number}/ss-loss/temporary", headers=headers(token))
    assert r.status_code == 404
    r = client.get("/api/v1/audit", headers=headers(token))
    assert r.status_code == 403


def test_wrong_login_is_401_and_does_not_say_which_field(client, world):
    card = world.card
    for login_value in (card.citizen_id, "11010519491231002X", card.card_number):
        r = client.post("/api/v1/cardholder/login", json={"login": login_value, "password": "nope-nope"},
                        headers=headers())
        assert r.status_code == 401 and r.json() == {"code": "wrong_password", "message": "Wrong password"}


def test_forged_or_expired_cardholder_tokens_are_401(client, world, clock, app):
    card = world.card
    token = login(client, card.citizen_id, world.city.own_query_password(card))
    path = f"/api/v1/cards/{card.card_number}"
    assert client.get(path, headers=headers(token)).status_code == 200
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    from itsdangerous import URLSafeTimedSerializer

    other_key = "ch." + URLSafeTimedSerializer(b"another server key 0123456789", salt="sscard.cardholder").dumps(
        {"p": card.person_id})
    for bad in (forged, other_key, "ch.", "ch.e30.AAAA.BBBB"):
        r = client.get(path, headers=headers(bad))
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated", bad
    clock.advance(minutes=29)
    assert client.get(path, headers=headers(token)).status_code == 200
    clock.advance(minutes=2)
    r = client.get(path, headers=headers(token))
    assert r.status_code == 401 and r.json() == {"code": "unauthenticated", "message": "Authentication required"}


def test_a_revoked_staff_token_is_401_once_its_cached_lookup_expires(client, world, app, clock):
    from sqlalchemy import update

    from sscard.models.foundation import ApiToken

    path = f"/api/v1/cards/{world.card.card_number}"
    assert client.get(path, headers=headers(world.clerk)).status_code == 200
    with app.db.session() as s:
        s.execute(update(ApiToken).values(revoked=True))
    ttl = app.policy.api.token_cache_seconds
    assert ttl == 5
    # the lookup is reused for api.token_cache_seconds (the documented trade-off) ...
    assert client.get(path, headers=headers(world.clerk)).status_code == 200
    # ... and no longer
    clock.advance(seconds=ttl)
    assert client.get(path, headers=headers(world.clerk)).status_code == 401
    assert client.get(path, headers=headers(world.clerk)).status_code == 401


def test_a_token_cache_of_zero_seconds_refuses_a_revoked_token_at_once(client, world, app, monkeypatch):
    from sqlalchemy import update

    from sscard.core.policy import load_policy
    from sscard.models.foundation import ApiToken

    monkeypatch.setattr(app, "policy", load_policy(api={"token_cache_seconds": 0}))
    app.extras.pop("api_token_cache", None)
    path = f"/api/v1/cards/{world.card.card_number}"
    assert client.get(path, headers=headers(world.clerk)).status_code == 200
    with app.db.session() as s:
        s.execute(update(ApiToken).values(revoked=True))
    assert client.get(path, headers=headers(world.clerk)).status_code == 401


def test_services_and_api_agree_on_state(client, world, app, city):
    card = world.card
    loss.report_temporary_loss(app, city.cardholder(card, Channel.HOTLINE_12333), card.card_number)
    r = client.get(f"/api/v1/cards/{card.card_number}", headers=headers(world.clerk))
    assert r.json()["ss_status"] == "temporary_loss"
    assert r.json()["ss_loss_expires_at"].startswith(str(date(2026, 1, 5) + timedelta(days=7)))


def test_a_sealed_card_is_unsealed_then_collected_through_the_api(client, city, clock):
    from sscard.services import enrolment, production

    clerk_actor, clerk = city.actor("clerk"), city.token("clerk")
    pid, cid = city.new_person("钱九")
    number = enrolment.apply_first_card(city.app, clerk_actor, pid, "GSB", "C01")["card_number"]
    production.complete_batch(city.app, clerk_actor, production.start_batch(city.app, clerk_actor, "C01")["batch"])
    clock.advance(days=366)
    body = {"presented_citizen_id": cid}
    r = client.post(f"/api/v1/cards/{number}/collect", json=body, headers=headers(clerk))
    assert r.status_code == 409 and r.json()["code"] == "card_sealed"
    assert client.post(f"/api/v1/cards/{number}/unseal", json=body, headers=headers(clerk)).json()["ss_status"] == \
        "ready"
    assert client.post(f"/api/v1/cards/{number}/collect", json=body, headers=headers(clerk)).status_code == 200


def test_requests_waiting_for_the_same_expired_token_share_one_lookup(app, monkeypatch):
    """When a terminal's cached token expires, its requests in flight wait for one lookup, not one each
    (8 lookups sent to the thread pool at once stalled every payment of the server)."""
    import asyncio
    import threading

    from sscard.api import deps
    from sscard.core.roles import SYSTEM_ACTOR

    calls = []
    release = threading.Event()

    def slow_lookup(app_, token):
        calls.append(token)
        release.wait(5)
        return SYSTEM_ACTOR

    monkeypatch.setattr(deps, "actor_for_token", slow_lookup)

    async def many():
        waiting = [asyncio.create_task(deps._look_up_once(app, "tok-1")) for _ in range(8)]
        other = asyncio.create_task(deps._look_up_once(app, "tok-2"))
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(*waiting), await other

    same, other = in_fresh_loop(many)
    assert same == [SYSTEM_ACTOR] * 8 and other is SYSTEM_ACTOR
    assert sorted(calls) == ["tok-1", "tok-2"]  # one lookup per token
    assert deps._LOOKUPS == {}  # nothing left in flight


def test_a_failed_shared_lookup_fails_every_waiter_and_is_not_kept(app, monkeypatch):
    import asyncio

    from sscard.api import deps

    def broken(app_, token):
        raise RuntimeError("database down")

    monkeypatch.setattr(deps, "actor_for_token", broken)

    async def two():
        return await asyncio.gather(deps._look_up_once(app, "t"), deps._look_up_once(app, "t"),
                                    return_exceptions=True)

    assert [type(r) for r in in_fresh_loop(two)] == [RuntimeError, RuntimeError]
    assert deps._LOOKUPS == {}
