"""Digits that are not 0-9 (session 12's sweep). `str.isdigit()` is true for every script's digits and for
superscripts and circled numbers; `int()` reads some of them (Arabic-Indic `٣`) and refuses others with a
ValueError (`²`, `①`). A new bank PIN of superscripts answered 500 and wrote one of its digits into the
server's log (the ValueError's message, in the traceback); an Arabic-Indic PIN was accepted as a PIN no
PIN pad can type; the hotline's `turn`, the portal's `year`, the window's `attorney_id` and `card_id` and
the bank counter's `days` and `before_id` answered 500, and so did each of these with 5,000 ASCII digits
(int() refuses more than 4,300). Every test for "digits" now goes through `core.identifiers.ascii_digits`,
no module calls `str.isdigit()` itself, and a number a channel parses itself is read by
`core.identifiers.whole_number` (0-9 only, bounded)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import sscard
from sscard.composition import create_app
from sscard.core.errors import SscardError
from sscard.core.identifiers import MAX_ROW_ID, ascii_digits, whole_number
from sscard.core.passwords import check_new_pin, weak_pin_reason
from sscard.core.roles import Channel
from sscard.services import attorney, websession
from tests.ledger.helpers import PIN, activated, terminal_token
from tests.support import STAFF_PASSWORD, bearer

pytestmark = pytest.mark.keys_required

SUPERSCRIPT = "²³⁴⁵⁶⁸"  # isdigit(), and int() raises ValueError
ARABIC_INDIC = "١٣٥٧٩٢"  # isdigit(), and int() reads 135792
CIRCLED = "①②④⑥⑧⑨"
FOREIGN = (SUPERSCRIPT, ARABIC_INDIC, CIRCLED, "１３５７９２")  # full-width: NFKC makes it ASCII, but a PIN is typed
NOT_A_NUMBER = ("²", "①", "1" * 5000, "9" * 30)  # int() fails on the first three; the last is beyond any row id


@pytest.fixture
def server(app):
    with TestClient(create_app(app), raise_server_exceptions=False) as client:
        yield client


def test_digits_are_ascii_0_to_9_only_and_no_module_tests_for_digits_another_way():
    assert ascii_digits("0123456789") and not ascii_digits("")
    for text in (*FOREIGN, "12a", " 1", "1.0", "-1"):
        assert not ascii_digits(text), text
    src = Path(sscard.__file__).parent
    offenders = []
    for path in src.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        allowed = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "ascii_digits"
                   for n in ast.walk(f)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in ("isdigit", "isdecimal", "isnumeric")
                    and id(node) not in allowed):
                offenders.append(f"{path.relative_to(src)}:{node.lineno}")
    assert not offenders, "test digits with core.identifiers.ascii_digits:\n" + "\n".join(offenders)


def test_a_new_pin_of_foreign_digits_is_weak_in_the_core():
    for pin in FOREIGN:
        assert weak_pin_reason(pin) == ("须为6位数字", "it must be 6 digits"), pin
        with pytest.raises(SscardError) as refused:
            check_new_pin(pin)
        assert refused.value.code == "weak_password"


def test_a_new_pin_of_foreign_digits_is_refused_422_on_every_route_that_sets_one_and_never_logged(
        city, app, server, caplog):
    """Every route that takes a new bank PIN (activation, reset, change at the counter's API and at an ATM)
    and the SS password change: 422 weak_password, nothing changed, no digit of it in any log line."""
    card = activated(city, "张三", "GSB")
    fresh = city.issued_card("李四", "GSB")  # not activated yet
    teller, atm = city.token("teller"), terminal_token(city, "ATM-GSB-1")
    cardholder = server.post("/api/v1/cardholder/login",
                             json={"login": card.citizen_id, "password": city.own_query_password(card)}).json()["token"]
    caplog.set_level(logging.DEBUG)
    for i, pin in enumerate(FOREIGN):
        sent = [
            ("POST", f"/api/v1/bank-accounts/{fresh.pan}/activate", teller,
             {"presented_citizen_id": fresh.citizen_id, "pin": pin, "pin_again": pin, "cardholder_in_person": True}),
            ("POST", f"/api/v1/bank-accounts/{card.pan}/pin/reset", teller,
             {"presented_citizen_id": card.citizen_id, "new": pin, "new_again": pin, "cardholder_in_person": True}),
            ("POST", f"/api/v1/bank-accounts/{card.pan}/pin/change", teller, {"old": PIN, "new": pin, "new_again": pin}),
            ("POST", "/api/v1/terminal/pin/change", atm, {"pan": card.pan, "old": PIN, "new": pin, "new_again": pin}),
            ("POST", f"/api/v1/cards/{card.card_number}/ss-password/change", cardholder,
             {"old": "123456", "new": pin, "new_again": pin}),
        ]
        for method, url, token, body in sent:
            r = server.request(method, url, json=body, headers=bearer(token, f"fd-{i}-{url}"))
            assert r.status_code == 422 and r.json()["code"] == "weak_password", (url, pin, r.status_code, r.text[:300])
            assert not set(pin) & set(r.text), (url, pin)
    logged = "\n".join(rec.getMessage() + (str(rec.exc_info[1]) if rec.exc_info else "") for rec in caplog.records)
    for pin in FOREIGN:
        assert not set(pin) & set(logged), pin
    # nothing changed: the PIN still pays, the fresh account is still to be activated
    r = server.post("/api/v1/terminal/balance", json={"pan": card.pan, "pin": PIN}, headers=bearer(atm, "fd-balance"))
    assert r.status_code == 200, r.text
    r = server.get(f"/api/v1/persons/{fresh.person_id}/cards", headers=bearer(teller))
    assert {c["bank"]["status"] for c in r.json()["cards"]} == {"not_activated"}, r.text


def test_a_whole_number_is_0_to_9_only_and_bounded():
    assert whole_number("0") == 0 and whole_number("0042") == 42 and whole_number(str(MAX_ROW_ID)) == MAX_ROW_ID
    for text in (None, "", "-1", "+1", " 1", "1.0", "٣", "²", "1" * 5000, str(MAX_ROW_ID + 1)):
        assert whole_number(text) is None, text
    assert whole_number("0" * 5000 + "7") == 7 and whole_number(str(2**63 - 1), 2**63 - 1) == 2**63 - 1


def test_the_hotlines_turn_in_foreign_digits_is_not_answered_500(server):
    # a query parameter of the voice webhook (the tests' settings leave it unsigned, as the demo does)
    for turn in ("%C2%B2", "%E2%91%A0", "%D9%A3", "1" * 5000, "9" * 30):
        r = server.post(f"/api/v1/hotline/12333/voice?turn={turn}",
                        data={"CallSid": f"CA-fd-{turn[:12]}", "From": "+8613800138000"})
        assert r.status_code == 200 and "<Gather" in r.text, (turn, r.status_code, r.text[:200])


def test_the_portals_year_in_foreign_digits_shows_every_year(city, app, server):
    card = city.issued_card()
    web = websession.cardholder_login(app, card.card_number, city.own_query_password(card))
    server.cookies.set("sscard_portal", web.token)
    for path in ("/portal/insurance", "/portal/insurance.csv"):
        r = server.get(f"{path}?year=%C2%B2%C2%B2%C2%B2%C2%B2", follow_redirects=False)
        assert r.status_code == 200, (path, r.status_code)


def test_the_windows_attorney_and_card_numbers_in_foreign_digits_are_refused_4xx(city, app, server):
    card = city.issued_card()
    staff = websession.staff_login(app, "clerk", STAFF_PASSWORD, Channel.WINDOW)
    server.cookies.set("sscard_staff", staff.token)
    for number in NOT_A_NUMBER:
        r = server.post(f"/console/persons/{card.person_id}/identity-check", follow_redirects=False,
                        data={"csrf_token": staff.csrf, "presenter": "agent", "attorney_id": number,
                              "citizen_id": card.citizen_id})
        assert 400 <= r.status_code < 500, (number[:10], r.status_code)
    visit = attorney.identity_check(app, city.actor("clerk"), card.person_id, card.citizen_id)
    for action in ("formal-loss", "cancel-loss", "collect"):
        for number in NOT_A_NUMBER:
            r = server.post(f"/console/visits/{visit['id']}/{action}", follow_redirects=False,
                            data={"csrf_token": staff.csrf, "card_id": number, "confirmed": "1"})
            assert 400 <= r.status_code < 500, (action, number[:10], r.status_code)


def test_the_bank_counters_days_and_page_in_foreign_digits_are_refused_or_ignored(city, app, server):
    card = city.issued_card()
    bank = websession.staff_login(app, "bsup", STAFF_PASSWORD, Channel.BANK_OUTLET)
    server.cookies.set("sscard_staff", bank.token)
    for number in NOT_A_NUMBER[:3]:
        r = server.post("/bank/supervisor", headers={"X-CSRF-Token": bank.csrf},
                        data={"pan": card.pan, "task": "extend", "days": number, "reason": "x", "step": "confirmed"})
        assert r.status_code == 422, (number[:10], r.status_code)
    for number in NOT_A_NUMBER:
        r = server.post("/bank/statement", headers={"X-CSRF-Token": bank.csrf},
                        data={"pan": card.pan, "before_id": number})
        assert r.status_code == 200, (number[:10], r.status_code)
