"""The API's contract: typed answers, declared security and keys, and the committed snapshot."""

from __future__ import annotations

import copy
import json

import pytest

from sscard.api import snapshot
from sscard.api.responses import Out
from sscard.services import access

from ..ledger.helpers import PIN, activated, terminal_token


@pytest.fixture
def schema(client) -> dict:
    return client.app.openapi()


def _operations(schema: dict):
    for path, methods in schema["paths"].items():
        if path.startswith("/api/v1"):
            for method, op in methods.items():
                yield path, method, op


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_every_operation_has_a_typed_success_answer_and_declares_its_security(schema):
    untyped, unsecured, ids = [], [], []
    for path, method, op in _operations(schema):
        ids.append(op["operationId"])
        ok = next(op["responses"][s] for s in ("200", "201", "204") if s in op["responses"])
        content = ok.get("content", {})
        if "application/json" in content:
            body = _resolve(schema, content["application/json"]["schema"])
            if not body.get("properties"):
                untyped.append(f"{method} {path}")
        elif op["operationId"] != "hotline_call_status" and not content:
            untyped.append(f"{method} {path} (no media type)")
        public = op["operationId"] in ("query_password_login", "identifiers_check", "hotline_voice",
                                       "hotline_call_status")
        if public != (op["security"] == []) or (not public and op["security"] != [{"bearerAuth": []}]):
            unsecured.append(f"{method} {path}")
        decl = access.DECLARATIONS.get(op.get("x-operation", ""))
        keys = [p for p in op.get("parameters", []) if p["name"] == "Idempotency-Key"]
        if decl is not None and decl.keyed:
            assert keys and keys[0]["required"], f"{method} {path}: keyed operation without a required key"
    assert not untyped, untyped
    assert not unsecured, unsecured
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_operation_ids_are_named_after_the_operations(schema):
    ops = {op["operationId"]: (method, path) for path, method, op in _operations(schema)}
    assert ops["bank_withdraw"] == ("post", "/api/v1/bank-accounts/{pan}/withdrawal")
    assert ops["terminal_bank_withdraw"] == ("post", "/api/v1/terminal/withdrawal")
    assert ops["medical_pre_settle"] == ("post", "/api/v1/terminal/medical/pre-settlements")
    assert ops["medical_settlement_pdf"] == ("get", "/api/v1/medical/settlements/{code}/slip.pdf")


def test_errors_list_the_codes_each_operation_can_answer(schema):
    op = schema["paths"]["/api/v1/terminal/withdrawal"]["post"]
    for code in ("unauthenticated", "forbidden", "idempotency_key_required", "idempotency_key_reused",
                 "wrong_pin", "insufficient_funds", "wrong_terminal_kind"):
        assert code in op["x-error-codes"], code
    assert "idempotency_key_required" not in schema["paths"]["/api/v1/cardholder/login"]["post"]["x-error-codes"]


def test_errors_list_the_codes_raised_a_call_or_two_away_in_the_core(schema):
    """Session 21's integrator saw each of these answered and missing from the operation's list (the lists
    held only what the service module itself raised): an invalid identifier from core.identifiers through
    services.lookup, a lost or not-yet-activated account's debit refused by core.states' table, a state
    machine's illegal_transition, the login door's throttle."""
    def codes(path, method="post"):
        return set(schema["paths"][path][method]["x-error-codes"])

    assert {"invalid_pan", "account_lost", "not_activated", "account_frozen"} <= codes("/api/v1/terminal/withdrawal")
    assert {"invalid_pan", "invalid_amount"} <= codes("/api/v1/bank-accounts/{pan}/deposit")
    assert "invalid_pan" in codes("/api/v1/bank-accounts/{pan}/statement", "get")
    assert "invalid_citizen_id" in codes("/api/v1/persons")
    assert "invalid_card_number" in codes("/api/v1/cards/{card_number}", "get")
    assert "illegal_transition" in codes("/api/v1/bank-accounts/{pan}/loss/oral")
    assert "illegal_transition" in codes("/api/v1/cards/{card_number}/ss-loss/formal")
    assert "too_many_attempts" in codes("/api/v1/cardholder/login")


def test_each_route_lists_only_the_callers_its_channel_admits(schema):
    """One operation, two routes (a withdrawal at an ATM and at a teller's counter): each lists its own
    callers, as the server admits them (services.access.AUDIENCE), not every role of the operation."""
    atm = schema["paths"]["/api/v1/terminal/withdrawal"]["post"]
    counter = schema["paths"]["/api/v1/bank-accounts/{pan}/withdrawal"]["post"]
    assert atm["x-roles"] == ["terminal"] and atm["x-terminal-kinds"] == ["atm"]
    assert "teller" in counter["x-roles"] and "terminal" not in counter["x-roles"]
    assert "x-terminal-kinds" not in counter and "Token: terminal" not in counter["description"]
    for path, method, op in _operations(schema):
        if op.get("deprecated") and op.get("x-roles") == []:
            continue  # refused to every caller, kept so that its clients get the refusal (the kiosk's GET, s26)
        if "x-roles" in op and path.startswith("/api/v1/terminal/"):
            assert op["x-roles"] == ["terminal"], (method, path)
        elif "x-roles" in op:
            assert "terminal" not in op["x-roles"], (method, path)


def test_real_answers_carry_only_declared_fields(city, app, client):
    """FastAPI drops what a model does not declare: the lane (no FastAPI) must answer the same keys, and
    an answer's every key must be in its model (Out allows extras so none is cut silently)."""
    card = activated(city, opening_fen=10_000)
    pos = terminal_token(city, "POS-1")
    answers = {
        "BankPurchaseOut": client.post("/api/v1/terminal/payments", json={"pan": card.pan, "amount_fen": 100,
                                       "pin": PIN}, headers={"Authorization": f"Bearer {pos}",
                                                             "Idempotency-Key": "c-1"}),
        "CardView": client.get(f"/api/v1/cards/{card.card_number}",
                               headers={"Authorization": f"Bearer {city.token('teller')}"}),
    }
    from sscard.api import responses

    for name, answer in answers.items():
        assert answer.status_code == 200, answer.text
        model = getattr(responses, name)
        parsed = model.model_validate(answer.json())
        _no_extras(parsed, name)


def _no_extras(value, where: str) -> None:
    if isinstance(value, Out):
        assert not value.model_extra, f"{where}: undeclared fields {sorted(value.model_extra)}"
        for field in type(value).model_fields:
            _no_extras(getattr(value, field), f"{where}.{field}")
    elif isinstance(value, list):
        for item in value:
            _no_extras(item, where)


def test_the_committed_snapshot_is_the_live_contract(schema):
    old = json.loads(snapshot.SNAPSHOT.read_text(encoding="utf-8"))
    breaks, differs = snapshot.compare(old, schema)
    assert not breaks, "breaking changes to /api/v1 (docs/API.md, Versioning):\n" + "\n".join(breaks)
    assert not differs, "docs/openapi.json is out of date: run `sscard api snapshot` and commit it"


def test_the_checker_names_each_break(schema):
    new = copy.deepcopy(schema)
    comps = new["components"]["schemas"]
    del comps["BankPurchaseOut"]["properties"]["balance_fen"]  # a removed answer field
    comps["CardView"]["properties"]["card_number"] = {"type": "integer"}  # a retyped answer field
    comps["Purchase"]["properties"]["merchant_ref"] = {"type": "string"}
    comps["Purchase"]["required"].append("merchant_ref")  # a new required input
    del new["paths"]["/api/v1/ledger/check"]  # a removed route
    bill = comps["BillLineIn"]["properties"]["category"]
    bill["enum"] = [v for v in bill["enum"] if v != "material"]  # a narrowed enum
    breaks = "\n".join(snapshot.breaking_changes(schema, new))
    assert "POST /api/v1/terminal/payments 200.balance_fen: response field removed" in breaks
    assert "GET /api/v1/cards/{card_number} 200.card_number: retyped string -> integer" in breaks
    assert "POST /api/v1/terminal/payments body.merchant_ref: new required request field" in breaks
    assert "GET /api/v1/ledger/check: route removed" in breaks
    assert "enum narrowed, ['material'] removed" in breaks


def test_additive_changes_are_not_breaks_but_ask_for_a_refresh(schema):
    new = copy.deepcopy(schema)
    new["components"]["schemas"]["BankPurchaseOut"]["properties"]["merchant"] = {"type": "string"}
    breaks, differs = snapshot.compare(schema, new)
    assert breaks == [] and differs



def test_the_contract_does_not_depend_on_which_operator_modules_a_process_imported(app):
    """`sscard backup`'s codes (500) are registered when its module is imported (by the CLI, by its
    tests): the API's documented answers must not change with it (CI met a stale snapshot that way:
    an app built after test_backup documented a 500)."""
    import sscard.backup  # noqa: F401  registers its codes before the app below is built
    from sscard.composition import create_app

    old = json.loads(snapshot.SNAPSHOT.read_text(encoding="utf-8"))
    breaks, differs = snapshot.compare(old, create_app(app).openapi())
    assert not breaks and not differs, breaks[:5] or "docs/openapi.json differs from the live contract"
