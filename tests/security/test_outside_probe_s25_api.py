"""Session 25's outside probe of the REST API as an integrator sees it (the contract against what the server
answers, idempotency as a client whose network drops, errors, paging): each finding as the request that
exposed it, sent again. Each test failed on the code the probe ran against."""

from __future__ import annotations

import json
from datetime import date

import pytest

from tests.ledger.helpers import activated, balance_of, terminal_token
from tests.support import bearer

pytestmark = pytest.mark.keys_required

HARDENING = {"content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options",
             "cache-control", "content-type", "content-length"}
"""What every answer of the site carries whatever it is (web.hardening, the media type and length): the
contract's headers are the ones a client reads to act."""


def _declared(schema: dict, path: str, method: str, status: int) -> set[str]:
    answer = schema["paths"][path][method]["responses"][str(status)]
    return {name.lower() for name in answer.get("headers", {})}


def test_every_header_a_refusal_answers_is_declared_on_that_status_of_its_operation(city, app, client):
    """A 401 always carries WWW-Authenticate (RFC 9110 requires it; api.main adds it) and a 405 Allow,
    neither in the contract: a generated client or a contract checker (schemathesis' response headers
    conformance) saw headers the schema never named. Each real refusal's headers are declared now."""
    schema = client.app.openapi()
    card = activated(city, opening_fen=10_000)
    atm = terminal_token(city, "ATM-GSB-1")
    answers = [
        ("/api/v1/bank-accounts/{pan}/deposit", "post",
         client.post(f"/api/v1/bank-accounts/{card.pan}/deposit", json={"amount_fen": 1},
                     headers={"Idempotency-Key": "k-401"})),
        ("/api/v1/terminal/balance", "post",
         client.post("/api/v1/terminal/balance", json={"pan": card.pan, "pin": "000000"},
                     headers=bearer(atm, "k-wrong-pin"))),
        ("/api/v1/persons", "get", client.delete("/api/v1/persons", headers=bearer(city.token("clerk")))),
        ("/api/v1/persons", "post", client.put("/api/v1/persons", headers=bearer(city.token("clerk")))),
    ]
    statuses = []
    for path, method, answer in answers:
        statuses.append(answer.status_code)
        sent = {name.lower() for name in answer.headers} - HARDENING
        assert sent <= _declared(schema, path, method, answer.status_code), (path, answer.status_code, sent)
        for name, spec in schema["paths"][path][method]["responses"][str(answer.status_code)]["headers"].items():
            spec = schema["components"]["headers"][spec["$ref"].rsplit("/", 1)[1]] if "$ref" in spec else spec
            if spec.get("required"):
                assert name.lower() in {h.lower() for h in answer.headers}, (path, name)
    assert statuses == [401, 401, 405, 405]


def test_an_idempotency_key_sent_twice_is_refused_422_and_runs_nothing_on_the_lane_and_through_fastapi(
        city, app, client):
    """`Idempotency-Key: a` and `Idempotency-Key: b` in one request: the server kept the first, a proxy in
    front may keep the last or join them (`a, b`), so the client's retry through it ran the deposit again
    under another key. Sent twice it is refused now, before anything runs (the terminal lane and FastAPI's
    routes alike), and the caller is still judged first."""
    card = activated(city, opening_fen=10_000)
    atm, teller = terminal_token(city, "ATM-GSB-1"), city.token("teller")
    calls = [("/api/v1/terminal/deposit", atm, {"pan": card.pan, "amount_fen": 100}),
             (f"/api/v1/bank-accounts/{card.pan}/deposit", teller, {"amount_fen": 100})]
    for path, token, body in calls:
        twice = [("Authorization", f"Bearer {token}"), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
        refused = client.post(path, json=body, headers=twice)
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["code"] == "invalid_request"
        assert refused.json()["details"][0]["loc"] == ["header", "idempotency-key"]
        assert balance_of(app, card.pan) == 10_000, path
        anonymous = client.post(path, json=body, headers=twice[1:])
        assert anonymous.status_code == 401, path
    once = client.post("/api/v1/terminal/deposit", json=calls[0][2], headers=bearer(atm, "a"))
    assert once.status_code == 200 and balance_of(app, card.pan) == 10_100


def _schemas(schema, node, wanted, seen=None, into=None):
    """Every schema in `node` that `wanted` takes, through its $refs (each component once); `into`: the keys
    walked down (None: all of them)."""
    seen = set() if seen is None else seen
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/") and ref not in seen:
            seen.add(ref)
            yield from _schemas(schema, schema["components"]["schemas"][ref.rsplit("/", 1)[1]], wanted, seen, into)
        if wanted(node):
            yield node
        for key, value in node.items():
            if into is None or key in into:
                yield from _schemas(schema, list(value.values()) if key == "properties" and into else value,
                                    wanted, seen, into)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(schema, value, wanted, seen, into)


def _integers(schema, node):
    """Every integer schema in `node`."""
    return _schemas(schema, node, lambda n: n.get("type") == "integer")


def test_a_whole_number_past_what_a_database_holds_is_refused_naming_it_and_the_contract_says_so(
        city, app, client):
    """`/counter/visits/9223372036854775808`, `{"person_id": 2**63}`: the contract declared them as any
    integer, and the server passed them to the database, whose refusal (SQLite's OverflowError) was answered
    422 without a word of which input (schemathesis: "schema-valid request rejected" on every such id and
    offset). Refused now by the frame, naming the input, and the contract declares the range on every
    whole number of every parameter and request body."""
    schema = client.app.openapi()
    unbounded = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            inputs = [[p["schema"] for p in op.get("parameters", [])], op.get("requestBody")]
            unbounded += [f"{method} {path}" for node in _integers(schema, inputs)
                          if not {"maximum", "exclusiveMaximum"} & node.keys()
                          or not {"minimum", "exclusiveMinimum"} & node.keys()]
    assert not unbounded, sorted(set(unbounded))
    clerk = city.token("clerk")
    _person_id, citizen_id = city.new_person()
    for path in ("/api/v1/counter/visits/9223372036854775808", "/api/v1/counter/persons/-9223372036854775809"):
        r = client.get(path, headers=bearer(clerk))
        assert r.status_code == 422 and r.json()["details"][0]["loc"][0] == "path", (path, r.text)
    r = client.post("/api/v1/counter/identity-checks", headers=bearer(clerk, "too-big"),
                    json={"person_id": 2**63, "presented_citizen_id": citizen_id})
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["body", "person_id"], r.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-8-sig"])
def test_a_json_body_that_is_not_utf8_text_is_refused_and_moves_nothing_on_the_lane_and_through_fastapi(
        city, app, client, encoding):
    """The same deposit written in UTF-16, UTF-32 or UTF-8 with a byte order mark was read and done by every
    route (Python's json guesses the encoding of bytes): a proxy, a filter or a log that reads the body as
    UTF-8 (RFC 8259: JSON between systems is UTF-8) saw something else than what the ledger did. Refused
    now (422, as any body that is not JSON), nothing moved; the caller is judged first as always."""
    card = activated(city, opening_fen=10_000)
    atm, teller = terminal_token(city, "ATM-GSB-1"), city.token("teller")
    calls = [("/api/v1/terminal/deposit", atm, json.dumps({"pan": card.pan, "amount_fen": 100})),
             (f"/api/v1/bank-accounts/{card.pan}/deposit", teller, '{"amount_fen": 100}')]
    for n, (path, token, body) in enumerate(calls):
        headers = {**bearer(token, f"enc-{encoding}-{n}"), "Content-Type": "application/json"}
        refused = client.post(path, content=body.encode(encoding), headers=headers)
        assert refused.status_code == 422, (path, refused.text)
        assert refused.json()["code"] == "invalid_request"
        assert balance_of(app, card.pan) == 10_000, path
        del headers["Authorization"]
        assert client.post(path, content=body.encode(encoding), headers=headers).status_code == 401
    done = client.post(calls[0][0], content=calls[0][2].encode(), headers={
        **bearer(atm, "enc-utf8"), "Content-Type": "application/json"})
    assert done.status_code == 200 and balance_of(app, card.pan) == 10_100


@pytest.mark.parametrize("name", ["\u202e三张", "\u200b", "\ufeff张三", "张\u2066三\u2069", "\u200f张三"])
def test_a_name_with_a_bidirectional_control_or_an_invisible_character_is_refused_and_registers_nobody(
        city, app, client, name):
    """`{"name": "\\u202e三张"}` registered a person whose name every page, receipt and log shows as 张三 (the
    override reverses it), and `"\\u200b"` one whose name shows as nothing: the frame refused control
    characters in every body string, not these. Refused now (422 naming the field), in every body string and
    text query of the API (schemas.clean_text), and nobody is registered."""
    from sqlalchemy import func, select

    from sscard.core.identifiers import make_citizen_id
    from sscard.models.foundation import Person

    clerk = city.token("clerk")
    with app.db.session() as s:
        before = s.scalar(select(func.count()).select_from(Person))
    r = client.post("/api/v1/persons", headers=bearer(clerk, f"bidi-{name!a}"),
                    json={"citizen_id": make_citizen_id("330106", date(1980, 5, 17), 777), "name": name})
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["body", "name"], r.text
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == before
    r = client.get("/api/v1/persons", params={"citizen_id": name}, headers=bearer(clerk))
    assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["query", "citizen_id"], r.text


def test_the_contract_declares_the_text_every_body_string_refuses(client):
    """Every free string of every request body (and every text query the frame cleans) refused control,
    bidirectional and invisible characters while the contract said any string: schemathesis counted 675
    'schema-valid' requests refused. The refusal is declared now, as the pattern `clean_text` enforces."""
    import re

    from sscard.api.schemas import CLEAN_TEXT_PATTERN, clean_text

    schema = client.app.openapi()
    undeclared = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            for media in ((op.get("requestBody") or {}).get("content") or {}).values():
                if "json" not in str(media):
                    continue
                for node in _strings(schema, media["schema"]):
                    if node.get("pattern") != CLEAN_TEXT_PATTERN:
                        undeclared.append(f"{method} {path}")
    assert not undeclared, sorted(set(undeclared))
    pattern = re.compile(CLEAN_TEXT_PATTERN)
    for text in ("张三", "a b\tc", "x\x00", "\u202e三张", "\u200b", "\ufeff1", "\x7f", "a\u2066b"):
        refused = False
        try:
            clean_text(text)
        except ValueError:
            refused = True
        assert refused == (pattern.match(text) is None), repr(text)


def _strings(schema, node):
    """Every free string (no format, enum or const) of a request body."""
    return _schemas(schema, node, lambda n: n.get("type") == "string" and not {"format", "enum", "const"} & n.keys(),
                    into=("properties", "items", "anyOf"))
