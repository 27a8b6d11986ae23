"""Who may use which /bank route: every route tried as every kind of caller, against a written table.

Outcomes: ok = the page did its work (or refused for a business reason, e.g. a state); login = sent to
/bank/login; deny = the console's refusal page (not bank staff, or not a supervisor); wrong_bank = the
card belongs to another bank. A cardholder's portal session, a window clerk's or an operator's session,
a forged cookie and an idle-expired session never reach a teller's work.
"""

from __future__ import annotations

from datetime import datetime

from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.core.roles import Channel
from sscard.core.txn_ref import short_ref
from sscard.services import banking, websession
from sscard.web.security import COOKIE
from tests.bank_console.conftest import GOOD_PIN
from tests.support import STAFF_PASSWORD

WHO = ["holder", "clerk", "teller", "other", "bsup", "oper", "nobody", "forged", "expired"]

# route                        holder clerk teller other      bsup oper nobody forged expired
TABLE = """
GET  /bank                     login  deny  ok     ok         ok   deny login  login  login
GET  /bank/activate            login  deny  ok     ok         ok   deny login  login  login
GET  /bank/loss                login  deny  ok     ok         ok   deny login  login  login
GET  /bank/deposit             login  deny  ok     ok         ok   deny login  login  login
GET  /bank/withdraw            login  deny  ok     ok         ok   deny login  login  login
GET  /bank/pin-reset           login  deny  ok     ok         ok   deny login  login  login
GET  /bank/close               login  deny  ok     ok         ok   deny login  login  login
GET  /bank/statement           login  deny  ok     ok         ok   deny login  login  login
GET  /bank/supervisor          login  deny  deny   deny       ok   deny login  login  login
POST /bank/account             login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/activate            login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/deposit             login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/withdraw            login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/pin-reset           login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/statement           login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/statement.pdf       login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/loss                login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/supervisor          login  deny  deny   deny       ok   deny login  login  login
POST /bank/close               login  deny  ok     wrong_bank ok   deny login  login  login
GET  /bank/slip                login  deny  ok     ok         ok   deny login  login  login
POST /bank/slip.pdf            login  deny  ok     wrong_bank ok   deny login  login  login
POST /bank/customer/end        login  deny  ok     ok         ok   deny login  login  login
GET  /bank/password            login  deny  ok     ok         ok   deny login  login  login
POST /bank/password            login  deny  ok     ok         ok   deny login  login  login
GET  /bank/staff               login  deny  deny   deny       ok   deny login  login  login
POST /bank/staff/{username}/{action} login deny deny deny     ok   deny login  login  login
POST /bank/logout              login  deny  ok     ok         ok   deny login  login  login
"""
ROUTES = [(line.split()[0], line.split()[1], dict(zip(WHO, line.split()[2:], strict=True)))
          for line in TABLE.strip().splitlines()]


def outcome(answer) -> str:
    if answer.status_code == 303 and answer.headers.get("location", "").split("?")[0] == "/bank/login":
        ended = "sscard_staff=" in answer.headers.get("set-cookie", "")  # a logout that ended a session
        return "ok" if ended else "login"
    if answer.status_code == 403 and "data-denied=" in answer.text:
        return "deny"
    if answer.status_code == 403 and 'data-code="wrong_bank"' in answer.text:
        return "wrong_bank"
    if answer.status_code == 403:
        return f"403:{answer.text[:60]}"
    if answer.status_code >= 500:
        return f"error {answer.status_code}"
    return "ok"


def test_every_bank_route_is_in_the_table():
    from sscard.web.bank_console import router

    served = {(m, r.path) for r in router.written for m in r.methods if m != "HEAD"}
    public = {("GET", "/bank/login"), ("POST", "/bank/login")}
    assert served - public == {(m, p) for m, p, _ in ROUTES}


def sessions(app, city, clock) -> dict:
    """who -> (token, csrf, cookie kind), or None for nobody. The expired one has been idle 16 minutes."""
    def staff(username, channel):
        web = websession.staff_login(app, username, STAFF_PASSWORD, channel)
        return (web.token, web.csrf, "staff")

    out = {"expired": staff("teller", Channel.BANK_OUTLET)}
    clock.advance(minutes=16)
    holder_card = city.issued_card("王五")
    holder = websession.cardholder_login(app, holder_card.citizen_id, holder_card.card_number[-6:])
    out.update(
        holder=(holder.token, holder.csrf, "cardholder"),
        clerk=staff("clerk", Channel.WINDOW),
        teller=staff("teller", Channel.BANK_OUTLET),
        other=staff("teller_jsb", Channel.BANK_OUTLET),
        bsup=staff("bsup", Channel.BANK_OUTLET),
        oper=staff("operator", Channel.API),
        nobody=None,
        forged=("forged-" + "x" * 40, "forged", "staff"),
    )
    return out


def forms(card, fresh, closing) -> dict[str, dict]:
    return {
        "/bank/account": {"pan": card.pan},
        "/bank/activate": {"pan": fresh.pan, "citizen_id": fresh.citizen_id, "pin": GOOD_PIN, "pin_again": GOOD_PIN,
                           "in_person": "yes"},
        "/bank/loss": {"pan": card.pan, "citizen_id": card.citizen_id, "action": "written", "step": "confirmed"},
        "/bank/deposit": {"pan": card.pan, "amount": "1.00", "step": "confirmed"},
        "/bank/withdraw": {"pan": card.pan, "amount": "0.50", "pin": GOOD_PIN, "step": "confirmed"},
        "/bank/pin-reset": {"pan": card.pan, "citizen_id": card.citizen_id, "new": GOOD_PIN, "new_again": GOOD_PIN,
                            "in_person": "yes"},
        "/bank/statement": {"pan": card.pan},
        "/bank/statement.pdf": {"pan": card.pan},
        "/bank/supervisor": {"pan": fresh.pan, "task": "freeze", "reason": "matrix"},
        "/bank/close": {"pan": closing.pan, "citizen_id": closing.citizen_id, "confirm": "yes", "step": "confirmed"},
        "/bank/slip.pdf": {"pan": card.pan, "ref": ""},
        "/bank/customer/end": {},
        # each signed-in member changes their own password (session 28); the staff page's action: the literal
        # path's "{action}" is no action of the page (422 to the supervisor, refused to everyone else)
        "/bank/password": {"old": STAFF_PASSWORD, "new": "Matrix-pass-2027", "new_again": "Matrix-pass-2027"},
        "/bank/staff/{username}/{action}": {},
        "/bank/logout": {},
    }


def test_authorization_matrix(app, bank_city, clock):
    city = bank_city
    teller = city.actor("teller")
    card, fresh, closing = city.issued_card("甲"), city.issued_card("乙"), city.issued_card("丙")
    banking.activate(app, teller, card.pan, card.citizen_id, GOOD_PIN, GOOD_PIN, cardholder_in_person=True)
    banking.activate(app, teller, closing.pan, closing.citizen_id, GOOD_PIN, GOOD_PIN, cardholder_in_person=True)
    paid = banking.deposit(app, teller, card.pan, 10_000)
    bodies = forms(card, fresh, closing)
    bodies["/bank/slip.pdf"]["ref"] = short_ref(paid["transfer_id"], datetime.fromisoformat(str(paid["at"])))
    live = sessions(app, city, clock)

    got: dict[tuple[str, str], dict[str, str]] = {}
    teller_answers = {}
    with TestClient(create_app(app)) as client:
        for who in WHO:
            client.cookies.clear()
            ident = live[who]
            if ident is not None:
                token, csrf, kind = ident
                client.cookies.set(COOKIE[kind], token)
                if kind == "cardholder":
                    client.cookies.set(COOKIE["staff"], token)  # a portal token is no staff session either
            for method, path, _ in ROUTES:
                if method == "GET":
                    answer = client.get(path, follow_redirects=False)
                else:
                    body = {"csrf_token": ident[1] if ident else "", **bodies[path]}
                    answer = client.post(path, data=body, follow_redirects=False)
                got.setdefault((method, path), {})[who] = outcome(answer)
                if who == "teller":
                    teller_answers[(method, path)] = answer.status_code
    expected = {(m, p): row for m, p, row in ROUTES}
    wrong = {k: {w: (expected[k][w], got[k][w]) for w in WHO if expected[k][w] != got[k][w]} for k in expected}
    assert {k: v for k, v in wrong.items() if v} == {}
    # the teller's allowed cells really did the work
    # (GET /bank/slip carries no reference here: with a customer at the desk that is "not found", a 404)
    allowed = {(m, p) for m, p, row in ROUTES if row["teller"] == "ok"} - {("GET", "/bank/slip")}
    assert {k: c for k, c in teller_answers.items() if k in allowed and c not in (200, 303)} == {}
    assert banking.statement(app, teller, card.pan)["status"] == "written_loss"
    assert banking.statement(app, teller, fresh.pan)["status"] == "frozen"  # by the supervisor alone
    assert banking.statement(app, teller, closing.pan)["status"] == "closed"
