"""Session 27's authorization probe, from outside (real HTTP through the composed app)."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sscard.composition import create_app
from sscard.models.foundation import AuditRecord
from tests.support import STAFF_PASSWORD, bearer

LOGIN_TOKEN = re.compile(r'name="login_token" value="([^"]+)"')


def _sign_in(client: TestClient, area: str, username: str, password: str):
    page = client.get(f"/{area}/login")
    token = LOGIN_TOKEN.search(page.text).group(1)
    return client.post(f"/{area}/login", data={"login_token": token, "username": username, "password": password},
                       follow_redirects=False)


def _login_records(app, username: str) -> list[tuple[str, str, int]]:
    def work(session):
        rows = session.scalars(select(AuditRecord).where(AuditRecord.operation == "staff.login",
                                                         AuditRecord.object_id == username)
                               .order_by(AuditRecord.id)).all()
        return [(r.result, r.after, (r.detail or {}).get("failures")) for r in rows]

    return app.db.run(work)


@pytest.mark.parametrize("area, username", [("console", "csup"), ("bank", "teller")])
def test_a_staff_password_guessed_wrong_locks_the_account_and_every_guess_is_recorded(app, city, clock, area,
                                                                                        username):
    """A staff login had no lock of its own and a wrong staff password left no audit record: the per-address
    throttle alone slowed a guesser (50 an hour from each address, without end), and nobody saw the guesses.
    Now `login.staff_max_failures` (5) wrong in a row lock the account for `login.staff_lock_minutes` (15):
    the right password is refused too while it lasts (not even checked), every guess is on record, and the
    lock ends by itself."""
    before = len(_login_records(app, username))  # the city's own sign-in
    with TestClient(create_app(app)) as client:
        for guess in range(4):
            wrong = _sign_in(client, area, username, f"guess-{guess}-password")
            assert wrong.status_code == 401 and "sscard_staff" not in wrong.cookies
        fifth = _sign_in(client, area, username, "guess-5-password")
        assert fifth.status_code == 423 and "sscard_staff" not in fifth.cookies  # the fifth starts the lock
        locked = _sign_in(client, area, username, STAFF_PASSWORD)
        assert locked.status_code == 423 and "sscard_staff" not in locked.cookies
        assert "密码已锁定" in locked.text
        assert _login_records(app, username)[before:] == [("wrong_password", "", n) for n in range(1, 5)] + [
            ("password_locked", "", 5), ("password_locked", "", 5)]

        clock.advance(minutes=16)
        signed = _sign_in(client, area, username, STAFF_PASSWORD)
        assert signed.status_code == 303 and signed.cookies.get("sscard_staff")
        assert _login_records(app, username)[-1] == ("ok", "logged_in", 0)
        wrong_again = _sign_in(client, area, username, "one-more-wrong-password")
        assert wrong_again.status_code == 401
        assert _login_records(app, username)[-1] == ("wrong_password", "", 1)  # the count started again


def test_a_right_password_clears_the_count_and_the_city_sets_its_own_limit(make_app):
    from tests.support import City

    app = make_app(login={"staff_max_failures": 2, "staff_lock_minutes": 60})
    City(app)
    with TestClient(create_app(app)) as client:
        assert _sign_in(client, "console", "clerk", "wrong-password-1").status_code == 401
        assert _sign_in(client, "console", "clerk", STAFF_PASSWORD).status_code == 303  # clears the one miss
        assert _sign_in(client, "console", "clerk", "wrong-password-2").status_code == 401
        assert _sign_in(client, "console", "clerk", "wrong-password-3").status_code == 423  # the second in a row locks
        assert _sign_in(client, "console", "clerk", STAFF_PASSWORD).status_code == 423


def test_an_unknown_user_answers_as_a_wrong_password_and_locks_nothing(app, city):
    with TestClient(create_app(app)) as client:
        for _ in range(6):
            assert _sign_in(client, "console", "nobody-here", "whatever-password").status_code == 401
        assert _sign_in(client, "console", "clerk", STAFF_PASSWORD).status_code == 303
    assert _login_records(app, "nobody-here") == []


def _refusals(app, operation: str) -> list[tuple[str, str, str, int | None]]:
    def work(session):
        rows = session.scalars(select(AuditRecord).where(AuditRecord.operation == operation,
                                                         AuditRecord.result != "viewed").order_by(AuditRecord.id)).all()
        return [(r.result, r.object_type, r.object_id, r.person_id) for r in rows]

    return app.db.run(work)


def test_a_teller_reading_a_card_cannot_tell_another_banks_card_from_a_card_of_nobody(app, city, api):
    """`GET /api/v1/cards/{n}` answered a GSB teller 403 `wrong_bank` for a JSB customer's card and 404
    `card_not_found` for a number no card has: any teller (or a script with a teller's token) learnt which
    card numbers exist and bank elsewhere. A card number names no bank (a PAN does, by its BIN, and a PAN of
    nobody under another BIN is already `wrong_bank`, R1.3), so to the bank side every card that is not its
    own is `wrong_bank` now, alike, each attempt recorded; its own card is read as before."""
    from sscard.core.identifiers import card_number_check_char

    jsb_card, gsb_card = city.issued_card("李四", bank="JSB"), city.issued_card("张三", bank="GSB")
    nobody = "ZZ999999" + card_number_check_char("ZZ999999")
    teller = bearer(city.token("teller"))
    answers = [api.get(f"/api/v1/cards/{number}", headers=teller) for number in (jsb_card.card_number, nobody)]
    assert [(a.status_code, a.json()) for a in answers] == [(403, {
        "code": "wrong_bank", "message": answers[0].json()["message"]})] * 2
    assert _refusals(app, "card.status") == [
        ("wrong_bank", "card", jsb_card.card_number, jsb_card.person_id), ("wrong_bank", "card", nobody, None)]
    own = api.get(f"/api/v1/cards/{gsb_card.card_number}", headers=teller)
    assert own.status_code == 200 and own.json()["ss_status"] == "normal"
    # not the bank side: a card of nobody is not found, as before
    clerk = api.get(f"/api/v1/cards/{nobody}", headers=bearer(city.token("clerk")))
    assert (clerk.status_code, clerk.json()["code"]) == (404, "card_not_found")


def test_one_ipv6_network_counts_as_one_client_at_the_login_throttle(make_app, city):
    """The login throttle counted each client address on its own: an IPv6 host, which picks any of its /64's
    2^64 addresses at will, sent every guess from a fresh address and was never throttled. An IPv6 client is
    counted by its /64 now (an IPv4-mapped one as its IPv4 address); another network is another client."""
    app = make_app(login={"client_failures_per_minute": 2})
    people = [city.issued_card("张三"), city.issued_card("李四")]
    server = create_app(app)

    def attempt(address: str, person) -> int:
        with TestClient(server, client=(address, 40000)) as client:
            return client.post("/api/v1/cardholder/login", json={"login": person.citizen_id,
                                                                  "password": "Wrong-pass-1"}).status_code

    one_network = [f"2001:db8:1:2:{i:x}::{i + 1:x}" for i in range(4)]
    assert [attempt(a, people[i % 2]) for i, a in enumerate(one_network)] == [401, 401, 429, 429]
    assert attempt("2001:db8:1:3::1", people[0]) == 401  # the next /64: another subscriber
    assert [attempt(a, people[1]) for a in ("::ffff:198.51.100.7", "198.51.100.7", "::ffff:198.51.100.7")] == [
        401, 401, 429]


@pytest.mark.parametrize("path, clear, shown", [
    ("/api/v1/bank-accounts/6222027436751784413x/statement", "6222027436751784413", "622202*********4413x"),
    ("/api/v1/bank-accounts/62220274367517844130/statement", "6222027436751784413", "622202**********4130"),
    ("/api/v1/cards/ID11010519491231002X", "11010519491231002", "ID110105*******1002X"),
])
def test_a_mistyped_identifier_in_a_request_reaches_the_access_log_masked(path, clear, shown):
    """A PAN with a letter run into it or one digit too many (a typo, or a probe) is refused 422 and its
    path goes to uvicorn's access line: the log's masking wanted a whole identifier bounded by no letter or
    digit, so the PAN (or the ID) was logged in clear. Any run of 17 digits or more is masked now; a
    transfer's id (32 hexadecimal characters) is left as it is, whatever digits it holds."""
    from uvicorn.logging import AccessFormatter

    from sscard.logs import JsonFormatter, MaskingFilter, MaskingFormatter

    transfer = "8ef70acf5524432cad0fc51dc84a3747".replace("8ef70acf55", "1234567890")
    for request_path in (path, f"{path}&transfer={transfer}" if "?" in path else f"{path}?transfer={transfer}"):
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                   ("127.0.0.1:5000", "GET", request_path, "1.1", 422), None)
        MaskingFilter().filter(record)
        for formatter in (MaskingFormatter(AccessFormatter('%(request_line)s')), JsonFormatter()):
            line = formatter.format(record)
            assert clear not in line and shown in line
            assert request_path == path or transfer in line
