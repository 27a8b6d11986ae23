"""Every route of the API tried by every kind of actor, against a written allow/deny table.

A route the table does not name fails the test, so a new route cannot ship without someone deciding
who may call it. "deny" means the route refused before touching anything of the target: 401
(no or forged credentials), 403 (`forbidden`, `wrong_bank`, `wrong_center`) or 404 (another person's
or another bank's record answers as if it did not exist). "allow" means the caller got past
authorization and scope: the operation's own answer, success or a business refusal (a frozen account,
a wrong PIN). A 5xx fails the test either way.

The target of every request is cardholder A: a GSB (ICBC-like) customer whose card was issued at
center C01, activated, with money. B is a JSB (CCB-like) customer.
"""

from __future__ import annotations

import itertools
import os
import uuid

import pytest
from fastapi.testclient import TestClient

from sscard.api.sessions import issue_cardholder_token
from sscard.composition import create_app
from sscard.services import banking, replacement
from tests.ledger.helpers import PIN, activated, terminal_token
from tests.medical import helpers as med
from tests.security.helpers import counter_work

pytestmark = pytest.mark.keys_required

ACTORS = ["cardholder", "other_cardholder", "clerk", "other_clerk", "csup", "teller", "other_teller", "bsup",
          "operator", "atm", "pos", "kiosk", "hospital", "nobody", "forged_staff", "forged_cardholder"]

DENY_403 = {"forbidden", "wrong_bank", "wrong_center", "wrong_terminal_kind"}

# Who gets past authorization and scope on A's objects. Every other actor of ACTORS is refused.
PUBLIC = set(ACTORS)  # no credentials needed: every caller gets the route's own answer
TABLE: dict[str, set[str]] = {
    # identity, cards and the social security side
    "GET /api/v1/identifiers/check": PUBLIC,
    # events for partners: each bank its own cards', centers the SS side's, the operator all (tests/events)
    "GET /api/v1/events": {"clerk", "other_clerk", "csup", "teller", "other_teller", "bsup", "operator"},
    "GET /api/v1/terminal/events": {"atm", "pos"},
    "POST /api/v1/cardholder/login": PUBLIC,
    "POST /api/v1/persons": {"clerk", "other_clerk", "csup", "operator"},
    "GET /api/v1/persons": {"clerk", "other_clerk", "csup", "teller", "bsup", "operator"},  # JSB: not its customer
    "GET /api/v1/persons/{person_id}/cards": {"cardholder", "clerk", "other_clerk", "csup", "teller", "bsup",
                                              "operator"},
    "POST /api/v1/cards": {"clerk", "csup", "operator"},  # for center C01: the other center's clerk is refused
    "GET /api/v1/cards/{card_number}": {"cardholder", "clerk", "other_clerk", "csup", "teller", "bsup", "operator"},
    "GET /api/v1/terminal/cards/{card_number}": set(),  # deprecated: a kiosk shows a card with its SS password (s26)
    "POST /api/v1/terminal/cards/{card_number}/status": {"kiosk"},
    "POST /api/v1/production-batches": {"clerk", "csup", "operator"},
    "POST /api/v1/production-batches/{batch_code}/complete": {"clerk", "csup", "operator"},
    "POST /api/v1/cards/{card_number}/collect": {"clerk", "csup"},  # where the card is ready only
    "POST /api/v1/cards/{card_number}/unseal": {"clerk", "csup"},
    "POST /api/v1/cards/{card_number}/ss-password/change": {"cardholder", "clerk", "other_clerk", "csup"},
    "POST /api/v1/terminal/cards/{card_number}/ss-password/change": {"kiosk"},
    "POST /api/v1/cards/{card_number}/ss-password/verify": {"cardholder"},
    "POST /api/v1/terminal/cards/{card_number}/ss-password/verify": {"kiosk", "hospital"},
    "POST /api/v1/cards/{card_number}/ss-password/reset": {"clerk", "other_clerk", "csup"},
    "POST /api/v1/cardholder/query-password/change": {"cardholder", "other_cardholder"},  # each their own
    "POST /api/v1/query-password/reset": {"clerk", "other_clerk", "csup"},
    "POST /api/v1/cards/{card_number}/ss-loss/temporary": {"cardholder", "clerk", "other_clerk", "csup"},
    "POST /api/v1/cards/{card_number}/ss-loss/formal": {"clerk", "other_clerk", "csup"},
    # by now A's loss is formal: a cardholder cancels only a temporary loss online (forbidden, RULES §4)
    "POST /api/v1/cards/{card_number}/ss-loss/cancel": {"clerk", "other_clerk", "csup"},
    "GET /api/v1/audit": {"csup", "bsup", "operator"},
    # the bank side: only the card's own bank (GSB); terminals only on /terminal paths
    "POST /api/v1/bank-accounts/{pan}/loss/oral": {"cardholder", "teller", "bsup"},
    "POST /api/v1/bank-accounts/{pan}/loss/written": {"teller", "bsup"},
    # by now A's loss is written: a cardholder cancels only an oral loss, and only on the bank's hotline (forbidden)
    "POST /api/v1/bank-accounts/{pan}/loss/cancel": {"teller", "bsup"},
    "POST /api/v1/bank-accounts/{pan}/activate": {"teller", "bsup"},
    "POST /api/v1/bank-accounts/{pan}/activation-extension": {"bsup"},
    "POST /api/v1/bank-accounts/{pan}/deposit": {"teller", "bsup"},  # finding 1: not an ATM's token
    "POST /api/v1/bank-accounts/{pan}/withdrawal": {"teller", "bsup"},  # finding 1
    "POST /api/v1/bank-accounts/{pan}/transfer": {"cardholder", "teller", "bsup"},
    "POST /api/v1/bank-accounts/{pan}/pin/reset": {"teller", "bsup"},
    "POST /api/v1/bank-accounts/{pan}/pin/change": {"cardholder", "teller", "bsup"},
    "POST /api/v1/bank-accounts/{pan}/freeze": {"bsup"},
    "POST /api/v1/bank-accounts/{pan}/unfreeze": {"bsup"},
    "POST /api/v1/bank-accounts/{pan}/close": {"teller", "bsup"},
    "POST /api/v1/bank-accounts/{pan}/pension": set(),  # the pension payer's batch job only (session 25)
    "GET /api/v1/bank-accounts/{pan}/statement": {"cardholder", "teller", "bsup", "operator"},
    "POST /api/v1/ledger/expire-pending": {"operator"},
    "GET /api/v1/ledger/check": {"operator"},
    "POST /api/v1/terminal/withdrawal": {"atm"},
    "POST /api/v1/terminal/deposit": {"atm"},
    "POST /api/v1/terminal/balance": {"atm", "pos", "kiosk"},
    "POST /api/v1/terminal/payments": {"pos"},
    "POST /api/v1/terminal/payments/authorize": {"pos"},
    "POST /api/v1/terminal/payments/{transfer_id}/capture": {"pos"},
    "POST /api/v1/terminal/payments/{transfer_id}/void": {"pos"},
    "POST /api/v1/terminal/transfers": {"atm"},
    "POST /api/v1/terminal/pin/change": {"atm"},
    "POST /api/v1/terminal/reversals": {"atm", "pos"},  # its own originals only (404 when it made none)
    # medical: the hospital's terminal; people read their own, center staff and the operator anyone's
    "POST /api/v1/terminal/medical/pre-settlements": {"hospital"},
    "POST /api/v1/terminal/medical/settlements": {"hospital"},
    "POST /api/v1/terminal/medical/settlements/{code}/refund": {"hospital"},
    "GET /api/v1/terminal/medical/settlements/{code}": {"hospital"},
    "GET /api/v1/medical/settlements/{code}": {"cardholder", "clerk", "other_clerk", "csup", "operator"},
    "GET /api/v1/medical/settlements/{code}/slip.pdf": {"cardholder", "clerk", "other_clerk", "csup", "operator"},
    "GET /api/v1/persons/{person_id}/medical/settlements": {"cardholder", "clerk", "other_clerk", "csup", "operator"},
    "GET /api/v1/persons/{person_id}/medical/account": {"cardholder", "clerk", "other_clerk", "csup", "operator"},
    "GET /api/v1/medical/institutions": {"cardholder", "other_cardholder", "clerk", "other_clerk", "csup", "teller",
                                         "other_teller", "bsup", "operator"},
    "POST /api/v1/medical/institutions": {"operator"},
    "POST /api/v1/medical/institutions/{code}/designation": {"operator"},
    "POST /api/v1/medical/institutions/{code}/terminals": {"operator"},
    "POST /api/v1/medical/contributions": {"operator"},
    # the window's counter API: center staff; their own center's queue, receipts and visits
    "GET /api/v1/counter/persons": {"clerk", "other_clerk", "csup", "operator"},
    "GET /api/v1/counter/persons/{person_id}": {"clerk", "other_clerk", "csup"},
    "POST /api/v1/counter/identity-checks": {"clerk", "other_clerk", "csup"},
    "GET /api/v1/counter/visits/{visit_id}": {"clerk"},  # the clerk's own visit
    "POST /api/v1/counter/visits/{visit_id}/end": {"clerk"},
    "POST /api/v1/counter/attorneys": {"clerk", "other_clerk", "csup"},
    "GET /api/v1/counter/persons/{person_id}/attorneys": {"clerk", "other_clerk", "csup"},
    "GET /api/v1/counter/attorneys/{attorney_id}": {"clerk", "other_clerk", "csup"},
    "POST /api/v1/counter/attorneys/{attorney_id}/revoke": {"clerk", "other_clerk", "csup"},
    "POST /api/v1/counter/replacements": {"clerk", "other_clerk", "csup"},
    "POST /api/v1/counter/replacements/waived": {"csup"},
    "GET /api/v1/counter/receipts/{receipt_no}": {"clerk", "csup"},
    "GET /api/v1/counter/receipts/{receipt_no}/pdf": {"clerk", "csup"},
    "POST /api/v1/counter/production-batches/{batch_code}/complete": {"clerk", "csup", "operator"},
    "POST /api/v1/counter/cards/{card_number}/collect": {"clerk", "csup"},
    "POST /api/v1/counter/cards/{card_number}/ss-password/reset-by-agent": {"clerk", "other_clerk", "csup"},
    "GET /api/v1/counter/cards/{card_number}/collection-receipt": {"clerk", "csup"},
    "GET /api/v1/counter/cards/{card_number}/collection-receipt/pdf": {"clerk", "csup"},
    "GET /api/v1/counter/queue": {"clerk", "other_clerk", "csup"},  # each their own center's
    "GET /api/v1/counter/reports/day": {"csup", "operator"},
    "GET /api/v1/counter/reversals": {"csup"},  # a center supervisor reverses a clerk's action (RULES §1)
    "POST /api/v1/counter/reversals": {"csup"},
    # hotlines: the telephony provider's webhooks (checked by its signature), and the agents' queue
    "POST /api/v1/hotline/{line}/voice": PUBLIC,
    "POST /api/v1/hotline/{line}/status": PUBLIC,
    "GET /api/v1/hotline/agent-queue": {"clerk", "other_clerk", "csup", "teller", "other_teller", "bsup", "operator"},
    "POST /api/v1/hotline/agent-queue/{request_id}/take": {"clerk", "other_clerk", "csup"},  # a 12333 call
    "POST /api/v1/hotline/agent-queue/{request_id}/close": {"clerk", "other_clerk", "csup"},
}


@pytest.fixture
def world(city, app, clock):
    from tests.console.helpers import AGENT_ID

    med.set_up(city)
    a = activated(city, "张三", "GSB", opening_fen=500_000)
    b = activated(city, "李四", "JSB", opening_fen=500_000)
    med.insure(app, a.person_id)
    held = banking.authorize_payment(app, _pos(city), a.pan, 1_000, PIN, idempotency_key="w-held")
    # an ATM's withdrawal and a POS's payment under one key, each its terminal's own to reverse
    from tests.ledger.helpers import terminal

    banking.withdraw(app, terminal(city, "ATM-GSB-1"), a.pan, 1_000, PIN, idempotency_key="w-original")
    banking.purchase(app, _pos(city), a.pan, 1_000, PIN, idempotency_key="w-original")
    settlement = med.pay(app, med.terminal(city, med.INSTITUTIONS[0][5]), a.card_number, med.lines(covered=5_000),
                         key="w-settle")
    clerk = city.actor("clerk")
    work = counter_work(city, app, a, "CA-walk")
    city.own_query_password(a), city.own_query_password(b)  # RULES §4: an initial one's token may only change it
    tokens = {
        "cardholder": issue_cardholder_token(app, a.person_id),
        "other_cardholder": issue_cardholder_token(app, b.person_id),
        "clerk": city.token("clerk"), "other_clerk": city.token("clerk2"), "csup": city.token("csup"),
        "teller": city.token("teller"), "other_teller": city.token("teller_jsb"), "bsup": city.token("bsup"),
        "operator": city.token("operator"), "atm": terminal_token(city, "ATM-GSB-1"),
        "pos": terminal_token(city, "POS-1"), "kiosk": terminal_token(city, "KIOSK-1"),
        "hospital": terminal_token(city, med.INSTITUTIONS[0][5]),
        "forged_staff": "staff-" + uuid.uuid4().hex, "forged_cardholder": tokens_forged_cardholder(app, a.person_id),
    }
    values = {
        "pan": a.pan, "card_number": a.card_number, "person_id": a.person_id, "citizen_id": a.citizen_id,
        "presented_citizen_id": a.citizen_id, "transfer_id": held["transfer_id"], "original_idempotency_key": "w-original",
        "settlement_code": settlement["code"], "visit_id": work["visit_id"], "attorney_id": work["attorney_id"],
        "agent_citizen_id": AGENT_ID, "receipt_no": work["receipt_no"], "batch_code": "B-NONE", "request_id": 1, "line": "12333",
        "to_pan": b.pan, "from_pan": a.pan, "ident_code": med.ident_code(app, a.card_number),
        "center_code": "C01", "bank_code": "GSB", "cardholder_in_person": True, "institution_code": med.INSTITUTIONS[0][0],
        "query": {"name": a.name, "birth_date": a.birth.isoformat(), "kind": "pan", "value": a.pan},
        "by_path": {("/institutions/", "code"): med.INSTITUTIONS[0][0],
                    ("/settlements/", "code"): settlement["code"], ("/production-batches/", "batch_code"): work["batch_code"],
                    ("/agent-queue/", "request_id"): work["request_id"],
                    ("/cardholder/login", "login"): a.citizen_id, ("/cardholder/login", "password"): a.card_number[-6:]},
    }
    def one_more_application():  # each actor's POST /production-batches finds a card to produce
        nxt = city.issued_card("赵六")
        replacement.apply(app, clerk, nxt.card_number, "damaged", nxt.citizen_id, payment="cash")

    prepare = {"POST /api/v1/production-batches": one_more_application}

    def sign_in_again():  # a change or reset of the query password ends the cardholder's tokens (api.sessions)
        from sscard.api.sessions import query_password_state

        if query_password_state(app, a.person_id)[1]:  # reset to the initial one: the forced change first
            city.own_query_password(a)
        tokens["cardholder"] = issue_cardholder_token(app, a.person_id)

    after = {"POST /api/v1/cardholder/query-password/change": sign_in_again,
             "POST /api/v1/query-password/reset": sign_in_again}
    return {"tokens": tokens, "values": values, "a": a, "b": b, "prepare": prepare, "after": after}


def _pos(city):
    from tests.ledger.helpers import terminal

    return terminal(city, "POS-1")


def tokens_forged_cardholder(app, person_id: int) -> str:
    """A cardholder token signed with another key: the right shape, the wrong signature."""
    real = issue_cardholder_token(app, person_id)
    return real[:-6] + ("AAAAAA" if not real.endswith("AAAAAA") else "BBBBBB")


def _sample(schema: dict, spec: dict, values: dict, name: str = ""):
    """A valid instance of a JSON schema, with A's real identifiers where a field names one."""
    if "$ref" in schema:
        return _sample(spec["components"]["schemas"][schema["$ref"].split("/")[-1]], spec, values, name)
    if "anyOf" in schema:
        return _sample(next(s for s in schema["anyOf"] if s.get("type") != "null"), spec, values, name)
    if name in values:
        return values[name]
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _sample(v, spec, values, k) for k, v in props.items() if k in schema.get("required", ()) or k in values
                or k in _OPTIONAL_WANTED}
    if kind == "array":
        return [_sample(schema.get("items", {}), spec, values, name)]
    if kind == "integer":
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1, 1) if "fen" in name else \
            max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if schema.get("format") == "date":
        return "2026-01-01"
    if "pin" in name or name in ("new", "new_again", "old", "password", "ss_password"):
        return PIN if "pin" in name or name.startswith("new") or name == "old" else "123456"
    if schema.get("pattern") == r"^\d{4}-\d{2}$":
        return "2026-01"
    return "x" * max(1, schema.get("minLength", 1))


_OPTIONAL_WANTED = {"pin", "payment", "attorney_id"}


def _requests(spec: dict, values: dict):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            url = path
            here = {**values, **{k: v for (prefix, k), v in values.get("by_path", {}).items() if prefix in path}}
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    url = url.replace("{" + p["name"] + "}", str(here.get(p["name"], "x")))
            known = {**values, **values["query"]}
            query = {p["name"]: known[p["name"]] for p in op.get("parameters", [])
                     if p["in"] == "query" and p["name"] in known}
            body, form = None, None
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = _sample(content["application/json"]["schema"], spec, here)
            if "application/x-www-form-urlencoded" in content:
                form = _sample(content["application/x-www-form-urlencoded"]["schema"], spec, values)
            yield f"{method.upper()} {path}", method.upper(), url, query, body, form


def _verdict(response) -> str:
    if response.status_code >= 500:
        return "error"
    body = response.json() if "json" in response.headers.get("content-type", "") else {}
    code = body.get("code")
    if response.status_code == 422 and "details" in body:
        return "invalid"  # the walker's own input was wrong: it proves nothing, so it fails the test
    if (response.status_code == 401 and code == "unauthenticated") or response.status_code == 404 \
            or (response.status_code == 403 and code in DENY_403):
        return "deny"
    return "allow"


def walk(app, world) -> dict[str, dict[str, str]]:
    observed: dict[str, dict[str, str]] = {}
    seq = itertools.count()
    with TestClient(create_app(app), raise_server_exceptions=bool(os.environ.get("SSCARD_RAISE"))) as client:
        spec = client.get("/openapi.json").json()
        for route, method, url, query, body, form in _requests(spec, world["values"]):
            row = observed.setdefault(route, {})
            for actor in ACTORS:
                world["prepare"].get(route, lambda: None)()
                headers = {"Idempotency-Key": f"walk-{next(seq)}"}
                token = world["tokens"].get(actor)
                if token:
                    headers["Authorization"] = f"Bearer {token}"
                r = client.request(method, url, params=query, json=body, data=form, headers=headers)
                row[actor] = _verdict(r)
                world.get("after", {}).get(route, lambda: None)()
                if os.environ.get("SSCARD_PRINT_TABLE") and row[actor] == "invalid":
                    print("INVALID", route, actor, body, form, r.text[:400])
    return observed


def test_every_api_route_as_every_actor_matches_the_table(app, world):
    observed = walk(app, world)
    if os.environ.get("SSCARD_PRINT_TABLE"):
        for route, row in observed.items():
            print(f'    "{route}": {sorted(a for a, v in row.items() if v == "allow")},')
    errors = [(route, a) for route, row in observed.items() for a, v in row.items() if v == "error"]
    assert not errors, f"5xx answers: {errors}"
    invalid = sorted({route for route, row in observed.items() for v in row.values() if v == "invalid"})
    assert not invalid, f"the walker sent input these routes refuse as malformed: {invalid}"
    missing = sorted(set(observed) - set(TABLE))
    assert not missing, f"routes with no row in the allow/deny table: {missing}"
    wrong = {route: {a: v for a, v in row.items() if (v == "allow") != (a in TABLE[route])}
             for route, row in observed.items()}
    wrong = {k: v for k, v in wrong.items() if v}
    assert not wrong, f"routes answering other than the table says: {wrong}"
