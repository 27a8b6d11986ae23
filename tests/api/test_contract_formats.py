"""The contract for code generators: times declared with their format, states and roles with their core
table's values, and X-Request-ID on every response (session 23's integrator).

The wire is unchanged (times stay ISO text, states plain strings): only what the OpenAPI says of them. Real
answers of a first-issue path, a loss, a statement, the audit and the events feed are checked against the
schema of their route: each time parses as RFC 3339 in its declared format, each state is in its enum."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
from sqlalchemy import select

from sscard.core.identifiers import make_citizen_id
from sscard.core.roles import Channel, Role
from sscard.core.states import BankStatus, SsStatus
from sscard.models.foundation import BankAccount, Card
from tests.ledger.helpers import PIN
from tests.support import bearer

DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME_NAME = re.compile(r"(^at|_at|_until|_on|date|_deadline)$")

STATE_TABLES = {"ss_status": SsStatus, "linked_ss_status": SsStatus, "old_card_status": SsStatus,
                "bank_status": BankStatus, "linked_bank_status": BankStatus}
"""Answer fields that carry a state, by name, and the core table of their values."""
BY_MODEL = {("AuditActor", "role"): Role, ("AuditRecordOut", "channel"): Channel,
            **{(m, "status"): BankStatus for m in ("BankBalanceOut", "CardBankSide", "BankLossReportOralOut",
                                                   "BankLossReportWrittenOut", "BankAccountState")}}
"""Fields whose name alone does not say which table (a `status`, a `role`)."""


@pytest.fixture
def schema(client) -> dict:
    return client.app.openapi()


def _strings(prop: dict) -> list[dict]:
    return [b for b in [prop, *prop.get("anyOf", ())] if b.get("type") == "string"]


def test_every_time_field_is_declared_with_its_format(schema):
    undeclared = []
    for model, component in schema["components"]["schemas"].items():
        for name, prop in component.get("properties", {}).items():
            if TIME_NAME.search(name):
                for branch in _strings(prop):
                    if branch.get("format") not in ("date-time", "date"):
                        undeclared.append(f"{model}.{name}")
    assert not undeclared, undeclared
    from sscard.api.contract import time_format

    assert time_format("applied_at") == "date-time" and time_format("at") == "date-time"
    assert time_format("locked_until") == "date-time" and time_format("birth_date") == "date"
    assert time_format("activation_deadline") == "date" and time_format("candidate") is None


def test_every_state_field_declares_exactly_its_core_tables_values(schema):
    seen = set()
    for model, component in schema["components"]["schemas"].items():
        for name, prop in component.get("properties", {}).items():
            table = BY_MODEL.get((model, name)) or STATE_TABLES.get(name)
            if table is None and (name.endswith("ss_status") or name.endswith("bank_status")):
                table = object  # a new state field not in the tables above: fails below
            if table is None:
                continue
            seen.add((model, name))
            branches = _strings(prop)
            assert branches, f"{model}.{name}"
            for branch in branches:
                assert table is not object and branch.get("enum") == [m.value for m in table], f"{model}.{name}"
    assert {k for k in BY_MODEL if k[0] in schema["components"]["schemas"]} <= seen
    assert ("CardView", "ss_status") in seen and ("BankAccountState", "status") in seen


def test_every_response_of_every_operation_declares_x_request_id(schema, client):
    missing = [f"{m} {p} {s}" for p, methods in schema["paths"].items() for m, op in methods.items()
               for s, answer in op.get("responses", {}).items() if "X-Request-ID" not in answer.get("headers", {})]
    assert not missing, missing
    for answer in (client.get("/api/v1/cards/00000000"), client.get("/api/v1/identifiers/check",
                                                                     params={"kind": "pan", "value": "1"})):
        assert re.fullmatch(schema["components"]["headers"]["X-Request-ID"]["schema"]["pattern"].strip("^$"),
                            answer.headers["x-request-id"])


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _check(schema: dict, node: dict, value, where: str, bad: list[str], seen: dict[str, int]) -> None:
    """`value` against its schema `node`: every declared format parses, every enum holds the value."""
    node = _resolve(schema, node)
    if value is None:
        return
    if "anyOf" in node:
        for branch in node["anyOf"]:
            branch = _resolve(schema, branch)
            if branch.get("type") == {str: "string", int: "integer", bool: "boolean", list: "array",
                                      dict: "object", float: "number"}[type(value)] or "properties" in branch \
                    and isinstance(value, dict):
                _check(schema, branch, value, where, bad, seen)
        return
    if isinstance(value, dict):
        for key, sub in value.items():
            if key in node.get("properties", {}):
                _check(schema, node["properties"][key], sub, f"{where}.{key}", bad, seen)
    elif isinstance(value, list):
        for item in value:
            _check(schema, node.get("items", {}), item, where + "[]", bad, seen)
    elif isinstance(value, str):
        fmt = node.get("format")
        if fmt == "date-time":
            seen["date-time"] = seen.get("date-time", 0) + 1
            if not DATE_TIME.fullmatch(value) or datetime.fromisoformat(value).tzinfo is None:
                bad.append(f"{where}: {value!r} is not an RFC 3339 date-time")
        elif fmt == "date":
            seen["date"] = seen.get("date", 0) + 1
            if not DATE.fullmatch(value) or date.fromisoformat(value) is None:
                bad.append(f"{where}: {value!r} is not an RFC 3339 full-date")
        if "enum" in node:
            seen["enum"] = seen.get("enum", 0) + 1
            if value not in node["enum"]:
                bad.append(f"{where}: {value!r} not in its enum")


def test_real_answers_parse_in_their_declared_formats_and_enums(city, app, client, schema):
    clerk, teller, csup = city.token("clerk"), city.token("teller"), city.token("csup")
    answers: list[tuple[str, str, object]] = []

    def call(method: str, path: str, template: str, token: str, **kwargs):
        got = client.request(method, path, headers=bearer(token), **kwargs)
        assert got.status_code in (200, 201), (path, got.text)
        answers.append((template, method.lower(), got.json()))
        return got.json()

    cid = make_citizen_id("330106", date(1990, 2, 3), 21)
    person = call("POST", "/api/v1/persons", "/api/v1/persons", clerk, json={"citizen_id": cid, "name": "陈明"})
    card = call("POST", "/api/v1/cards", "/api/v1/cards", clerk,
                json={"person_id": person["id"], "bank_code": "GSB", "center_code": "C01"})
    number = card["card_number"]
    batch = call("POST", "/api/v1/production-batches", "/api/v1/production-batches", clerk,
                 json={"center_code": "C01"})["batch"]
    call("POST", f"/api/v1/production-batches/{batch}/complete", "/api/v1/production-batches/{batch_code}/complete",
         clerk)
    collected = call("POST", f"/api/v1/cards/{number}/collect", "/api/v1/cards/{card_number}/collect", clerk,
                     json={"presented_citizen_id": cid})
    with app.db.session() as s:
        card_id = s.scalar(select(Card.id).where(Card.card_number == number))
        pan = s.scalar(select(BankAccount.pan).where(BankAccount.card_id == card_id))
    call("POST", f"/api/v1/bank-accounts/{pan}/activate", "/api/v1/bank-accounts/{pan}/activate", teller,
         json={"presented_citizen_id": cid, "pin": PIN, "pin_again": PIN, "cardholder_in_person": True})
    call("POST", f"/api/v1/bank-accounts/{pan}/deposit", "/api/v1/bank-accounts/{pan}/deposit", teller,
         json={"amount_fen": 500})
    call("GET", f"/api/v1/bank-accounts/{pan}/statement", "/api/v1/bank-accounts/{pan}/statement", teller)
    call("GET", f"/api/v1/cards/{number}", "/api/v1/cards/{card_number}", clerk)
    call("POST", f"/api/v1/cards/{number}/ss-loss/temporary", "/api/v1/cards/{card_number}/ss-loss/temporary",
         clerk)
    call("GET", f"/api/v1/persons/{person['id']}/cards", "/api/v1/persons/{person_id}/cards", clerk)
    call("GET", "/api/v1/audit", "/api/v1/audit", csup, params={"limit": 50})
    call("GET", "/api/v1/events", "/api/v1/events", csup)
    assert collected["expiry_date"] == "2036-01-05"  # the wire as it was: plain ISO text

    bad: list[str] = []
    seen: dict[str, int] = {}
    for template, method, body in answers:
        op = schema["paths"][template][method]
        ok = next(op["responses"][s] for s in ("200", "201") if s in op["responses"])
        _check(schema, ok["content"]["application/json"]["schema"], body, f"{method} {template}", bad, seen)
    assert not bad, bad
    assert seen.get("date-time", 0) > 10 and seen.get("date", 0) > 3 and seen.get("enum", 0) > 10, seen
