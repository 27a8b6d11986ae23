"""Every web page and form of the three web surfaces tried by every kind of actor, against a table.

The routes are read from the routers themselves, so a new page without a row fails the test. "deny":
sent to a login page, or 401/403/404; "allow": the page or the form's own answer (a refused form
re-rendered with its error counts: the caller got past who-may-call). POSTs carry the caller's own
CSRF token. A 5xx fails the test.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from sscard.composition import create_app
from sscard.core.roles import Channel
from sscard.core.txn_ref import short_ref
from sscard.models.foundation import Card
from sscard.services import banking, replacement, websession
from sscard.web import bank_console, console, pages, portal
from tests.ledger.helpers import PIN, activated, terminal_token
from tests.security.helpers import counter_work
from tests.support import STAFF_PASSWORD

ACTORS = ["cardholder", "other_cardholder", "clerk", "other_clerk", "csup", "teller", "other_teller", "bsup",
          "operator", "atm", "nobody", "forged_staff", "forged_cardholder"]
PUBLIC = set(ACTORS)
CENTER = {"clerk", "other_clerk", "csup"}
BANK = {"teller", "other_teller", "bsup"}
GSB = {"teller", "bsup"}  # forms about A's GSB card: JSB's teller is refused (wrong_bank)
HOLDERS = {"cardholder", "other_cardholder"}

TABLE: dict[str, set[str]] = {
    "GET /": PUBLIC,
    "GET /lang/{lang}": PUBLIC,
    # sign-in pages are public; their forms need the page's own one-time token, which the walker does
    # not fetch: refused for everyone here (signing in is tested in each surface's own tests)
    "GET /console/login": PUBLIC, "POST /console/login": set(),
    "GET /bank/login": PUBLIC, "POST /bank/login": set(),
    "GET /portal/login": PUBLIC, "POST /portal/login": set(),
    # signing out of a console with a session this console refuses (a bank's, the operator's) is refused
    "POST /console/logout": PUBLIC - BANK,  # (the operator signs in there for the staff accounts page: s28)
    # (the walker signs out of /console first: every window session, the operator's too since session 28, is over
    # by then, and signing out with an ended session ends on the sign-in page)
    "POST /bank/logout": PUBLIC, "POST /portal/logout": PUBLIC,
    "GET /portal/logout": PUBLIC,
    # the window console: center staff (another center's receipts, visits and batches refused)
    "GET /console": CENTER,
    "POST /console/hotline/{request_id}/{action}": CENTER,
    "POST /console/find": CENTER,
    "GET /console/persons/{person_id}": CENTER,
    "POST /console/persons/{person_id}/identity-check": CENTER,
    "POST /console/persons/{person_id}/attorneys": CENTER,
    "POST /console/attorneys/{attorney_id}/revoke": CENTER,
    "GET /console/visits/{visit_id}": {"clerk"},
    # a result and the fee step after a redirect: the visit's own clerk (whose address is sealed, else 422)
    "GET /console/visits/{visit_id}/done": {"clerk"}, "GET /console/visits/{visit_id}/fee": {"clerk"},
    "POST /console/visits/{visit_id}/end": {"clerk"},
    "POST /console/visits/{visit_id}/show-id": {"clerk"},  # only the clerk whose visit it is
    "POST /console/visits/{visit_id}/{action}": {"clerk"},
    "GET /console/receipts/{receipt_no}.pdf": {"clerk", "csup"},
    "GET /console/persons/{person_id}/cards/{card_id}/collection-receipt.pdf": {"clerk", "csup"},
    "GET /console/production": CENTER,
    "POST /console/production/start": {"clerk", "csup"},  # C02 has nothing applied to produce
    "POST /console/production/{batch_code}/complete": {"clerk", "csup"},
    "GET /console/report": {"csup"},
    "GET /console/report.csv": {"csup"},
    "GET /console/reversals": {"csup"}, "POST /console/reversals/{audit_record_id}": {"csup"},
    # staff accounts (session 28): everyone's own password; the Staff page the supervisor's and, at the window,
    # the operator's (its POST with the walker's action "take", no action of the page: 422 to them, refused to
    # everyone else); every other window page refuses the operator
    "GET /console/password": CENTER | {"operator"}, "POST /console/password": CENTER | {"operator"},
    "GET /console/staff": {"csup", "operator"}, "POST /console/staff/{username}/{action}": {"csup", "operator"},
    "GET /bank/password": BANK, "POST /bank/password": BANK,
    "GET /bank/staff": {"bsup"}, "POST /bank/staff/{username}/{action}": {"bsup"},
    # the bank counter: tellers and supervisors of either bank (the card's bank is checked per card)
    "GET /bank": BANK, "POST /bank/account": GSB,
    "GET /bank/activate": BANK, "POST /bank/activate": GSB,
    "GET /bank/supervisor": {"bsup"}, "POST /bank/supervisor": {"bsup"},
    "GET /bank/loss": BANK, "POST /bank/loss": GSB,
    "GET /bank/deposit": BANK, "POST /bank/deposit": GSB,
    "GET /bank/withdraw": BANK, "POST /bank/withdraw": GSB,
    "GET /bank/pin-reset": BANK, "POST /bank/pin-reset": GSB,
    "GET /bank/close": BANK, "POST /bank/close": GSB,
    "GET /bank/statement": BANK, "POST /bank/statement": GSB, "POST /bank/statement.pdf": GSB,
    "GET /bank/slip": BANK, "POST /bank/slip.pdf": GSB, "POST /bank/customer/end": BANK,
    # the portal: each cardholder their own (nothing of another person is addressable)
    "GET /portal/": HOLDERS, "GET /portal": HOLDERS, "GET /portal/card": HOLDERS, "GET /portal/progress": HOLDERS,
    "GET /portal/insurance": HOLDERS, "GET /portal/insurance.csv": HOLDERS, "GET /portal/medical": HOLDERS,
    "GET /portal/loss": HOLDERS, "POST /portal/loss/report": HOLDERS, "POST /portal/loss/cancel": HOLDERS,
    "GET /portal/password": HOLDERS, "POST /portal/password/query": HOLDERS, "POST /portal/password/ss": HOLDERS,
    "GET /portal/access": HOLDERS,
    "GET /portal/certificate": HOLDERS, "POST /portal/certificate": HOLDERS,
    # the public check of a proof of insurance: anyone, no sign-in (a wrong code is counted per address)
    "GET /portal/verify": PUBLIC, "POST /portal/verify": PUBLIC,
    # a GET of a form's address only redirects to the form's page (which then asks who you are)
    "GET /portal/loss/report": PUBLIC, "GET /portal/loss/cancel": PUBLIC,
    "GET /portal/password/query": PUBLIC, "GET /portal/password/ss": PUBLIC,
}


@pytest.fixture
def world(city, app):
    a = activated(city, "张三", "GSB")
    b = activated(city, "李四", "JSB")
    clerk = city.actor("clerk")
    paid = banking.deposit(app, city.actor("teller"), a.pan, 100)  # a slip to reprint (POST /bank/slip.pdf)
    work = counter_work(city, app, a, "CA-web")
    with app.db.session() as s:
        card_id = s.scalar(select(Card.id).where(Card.card_number == a.card_number))
    values = {**work, "person_id": a.person_id, "action": "take", "card_id": card_id, "lang": "en",
              "audit_record_id": 1,
              "username": "clerk"}  # a record no clerk made today: the supervisor is answered why not (409)
    form = {"pan": a.pan, "citizen_id": a.citizen_id, "card_number": a.card_number, "query": a.citizen_id,
            "amount": "1.00", "pin": PIN, "pin_again": PIN, "presenter": "cardholder", "reason": "test",
            "confirm": "yes", "in_person": "yes", "new": PIN, "new_again": PIN, "days": "30",
            "ref": short_ref(paid["transfer_id"], datetime.fromisoformat(str(paid["at"])))}

    def one_more_application():  # each actor's "start production" finds a card to produce
        nxt = city.issued_card("赵六")
        replacement.apply(app, clerk, nxt.card_number, "damaged", nxt.citizen_id, payment="cash")

    return {"a": a, "b": b, "values": values, "form": form,
            "by_path": {"/console/visits/": {"action": "query-password"}},
            "prepare": {"POST /console/production/start": one_more_application}}


def _sessions(app, city, world) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for actor, user, channel in (("clerk", "clerk", Channel.WINDOW), ("other_clerk", "clerk2", Channel.WINDOW),
                                 ("csup", "csup", Channel.WINDOW), ("teller", "teller", Channel.BANK_OUTLET),
                                 ("other_teller", "teller_jsb", Channel.BANK_OUTLET),
                                 ("bsup", "bsup", Channel.BANK_OUTLET), ("operator", "operator", Channel.WINDOW)):
        web = websession.staff_login(app, user, STAFF_PASSWORD, channel)
        out[actor] = {"cookies": {"sscard_staff": web.token}, "csrf": web.csrf, "headers": {}}
    for actor, card in (("cardholder", world["a"]), ("other_cardholder", world["b"])):
        web = websession.cardholder_login(app, card.card_number, card.card_number[-6:])
        out[actor] = {"cookies": {"sscard_portal": web.token}, "csrf": web.csrf, "headers": {}}
    out["atm"] = {"cookies": {}, "csrf": "", "headers": {"Authorization": f"Bearer {terminal_token(city, 'ATM-GSB-1')}"}}
    out["nobody"] = {"cookies": {}, "csrf": "", "headers": {}}
    out["forged_staff"] = {"cookies": {"sscard_staff": secrets.token_urlsafe(32)}, "csrf": "x", "headers": {}}
    out["forged_cardholder"] = {"cookies": {"sscard_portal": secrets.token_urlsafe(32)}, "csrf": "x", "headers": {}}
    return out


def _routes():
    """Every route of the web routers, signing out last (it ends the walker's sessions)."""
    found = [(f"{method} {route.path}", method, route.path)
             for module in (pages, console, portal, bank_console) for route in module.router.written
             for method in sorted(route.methods - {"HEAD"})]
    return sorted(found, key=lambda r: r[2].endswith("/logout"))


def _verdict(r, key: str) -> str:
    if r.status_code >= 500:
        return "error"
    if key.endswith("/logout") and r.status_code in (302, 303):
        return "allow"  # signing out always ends on the sign-in page, signed in or not
    if r.status_code in (301, 302, 303, 307) and "/login" in r.headers.get("location", ""):
        return "deny"
    if r.status_code in (403, 404):  # (a 401 page is a wrong password, the form's own answer)
        return "deny"
    return "allow"


def test_every_web_route_as_every_actor_matches_the_table(city, app, world):
    sessions = _sessions(app, city, world)
    observed: dict[str, dict[str, str]] = {}
    with TestClient(create_app(app), raise_server_exceptions=False) as client:
        for key, method, path in _routes():
            url = path
            here = dict(world["values"])
            for prefix, extra in world["by_path"].items():
                if path.startswith(prefix):
                    here.update(extra)
            for name, value in here.items():
                url = url.replace("{" + name + "}", str(value))
            row = observed.setdefault(key, {})
            for actor in ACTORS:
                world["prepare"].get(key, lambda: None)()
                s = sessions[actor]
                client.cookies.clear()
                for name, value in s["cookies"].items():
                    client.cookies.set(name, value)
                if method == "GET":
                    r = client.get(url, headers=s["headers"], follow_redirects=False)
                else:
                    r = client.post(url, data={**world["form"], "csrf_token": s["csrf"]},
                                    headers={**s["headers"], "X-CSRF-Token": s["csrf"]} if s["csrf"] else s["headers"],
                                    follow_redirects=False)
                row[actor] = _verdict(r, key)
                if os.environ.get("SSCARD_PRINT_TABLE") and key in os.environ.get("SSCARD_SHOW", ""):
                    print("SHOW", key, actor, r.status_code, r.headers.get("location"), r.text[:200].replace("\n", " "))
                if os.environ.get("SSCARD_PRINT_TABLE") and row[actor] == "error":
                    print("ERROR", key, actor, r.text[:300])
    if os.environ.get("SSCARD_PRINT_TABLE"):
        for key, row in observed.items():
            print(f'    "{key}": {sorted(a for a, v in row.items() if v == "allow")},')
    errors = [(k, a) for k, row in observed.items() for a, v in row.items() if v == "error"]
    assert not errors, f"5xx answers: {errors}"
    missing = sorted(set(observed) - set(TABLE))
    assert not missing, f"web routes with no row in the allow/deny table: {missing}"
    wrong = {k: {a: v for a, v in row.items() if (v == "allow") != (a in TABLE[k])} for k, row in observed.items()}
    wrong = {k: v for k, v in wrong.items() if v}
    assert not wrong, f"web routes answering other than the table says: {wrong}"
