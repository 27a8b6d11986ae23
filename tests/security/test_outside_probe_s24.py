"""Session 24's outside probe of the REST API and the ISO 8583 gateway: each finding as the request that
exposed it, sent again. Each test failed on the code the probe ran against."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from sscard.core.identifiers import make_pan
from sscard.models.foundation import AuditRecord
from tests.ledger.helpers import PIN, activated, balance_of, terminal_token
from tests.support import bearer

pytestmark = pytest.mark.keys_required


def _nobodys_pan(app, bin_: str) -> str:
    """A PAN under `bin_` that passes the Luhn check and that no account has."""
    from sscard.models.foundation import BankAccount

    rng = random.Random(24)
    with app.db.session() as s:
        while True:
            pan = make_pan(bin_, rng)
            if s.scalar(select(BankAccount.id).where(BankAccount.pan == pan)) is None:
                return pan


def test_the_bank_side_cannot_tell_another_banks_real_pan_from_a_pan_of_nobody_on_any_route(city, app, api):
    """A GSB teller or GSB terminal sending a JSB card's PAN got 403 `wrong_bank`, and for a JSB PAN no
    account has 404 `account_not_found`: which of another bank's card numbers exist was told to any teller
    or terminal (the staff routes, the terminal routes, the statement read). The BIN says the bank: both
    are `wrong_bank` now, and nothing moved."""
    theirs = activated(city, bank="JSB", opening_fen=10_000)
    nobodys = _nobodys_pan(app, theirs.pan[:6])
    teller, atm = city.token("teller"), terminal_token(city, "ATM-GSB-1")
    pos = terminal_token(city, "POS-1")
    calls = [
        ("post", "/api/v1/bank-accounts/{pan}/deposit", teller, {"amount_fen": 100}),
        ("post", "/api/v1/bank-accounts/{pan}/withdrawal", teller, {"amount_fen": 100, "pin": PIN}),
        ("post", "/api/v1/bank-accounts/{pan}/loss/written", teller, {"presented_citizen_id": theirs.citizen_id}),
        ("get", "/api/v1/bank-accounts/{pan}/statement", teller, None),
        ("post", "/api/v1/terminal/withdrawal", atm, {"amount_fen": 100, "pin": PIN}),
        ("post", "/api/v1/terminal/deposit", atm, {"amount_fen": 100}),
        ("post", "/api/v1/terminal/balance", atm, {"pin": PIN}),
        ("post", "/api/v1/terminal/payments", pos, {"amount_fen": 100, "pin": PIN}),
    ]
    for n, (method, route, token, body) in enumerate(calls):
        answers = []
        for which, pan in (("theirs", theirs.pan), ("nobodys", nobodys)):
            path = route.format(pan=pan)
            if body is not None and "{pan}" not in route:
                body = {**body, "pan": pan}
            r = api.request(method.upper(), path, json=body, headers=bearer(token, f"s24-oracle-{n}-{which}"))
            answers.append((r.status_code, r.json()))
        assert answers[0] == answers[1] == (403, answers[0][1]), (route, answers)
        assert answers[0][1]["code"] == "wrong_bank", route
    assert balance_of(app, theirs.pan) == 10_000
    with app.db.session() as s:  # the refused attempt on a PAN of nobody is recorded, as on a real one
        refused = s.scalars(select(AuditRecord).where(AuditRecord.object_id == nobodys)).all()
    assert refused and {r.result for r in refused} != {"ok"}
    own = activated(city, name="王五", bank="GSB")  # a PAN of the bank itself, or of no bank: still not found
    for pan in (_nobodys_pan(app, own.pan[:6]), _nobodys_pan(app, "999999")):
        r = api.post(f"/api/v1/bank-accounts/{pan}/deposit", json={"amount_fen": 100},
                     headers=bearer(teller, f"s24-own-{pan}"))
        assert (r.status_code, r.json()["code"]) == (404, "account_not_found")


def test_a_json_body_that_names_a_key_twice_is_refused_422_and_changes_nothing_on_every_kind_of_route(
        city, app, api):
    """`{"amount_fen": 1, "amount_fen": 2}` deposited 2 fen (Python's json keeps the last value): a proxy,
    a log or an auditor's tool that keeps the first read another amount than the ledger moved. Refused
    now wherever a body is read: the terminal lane (a group-committed route), FastAPI's own dispatch (a
    route the lane does not take), and an object nested in a list."""
    card = activated(city, opening_fen=10_000)
    teller, atm = city.token("teller"), terminal_token(city, "ATM-GSB-1")
    sent = [
        (f"/api/v1/bank-accounts/{card.pan}/deposit", teller, '{"amount_fen": 1, "amount_fen": 2}'),
        ("/api/v1/terminal/deposit", atm, f'{{"pan": "{card.pan}", "amount_fen": 1, "amount_fen": 2}}'),
        ("/api/v1/persons", city.token("clerk"),
         '{"citizen_id": "11010519491231002X", "name": "a", "name": "b"}'),
        ("/api/v1/medical/contributions", city.token("operator"),
         f'{{"month": "2026-01", "credits": [{{"person_id": {card.person_id}, "amount_fen": 1, "amount_fen": 2}}]}}'),
    ]
    for n, (path, token, body) in enumerate(sent):
        r = api.post(path, content=body, headers={**bearer(token, f"s24-dup-{n}"), "content-type": "application/json"})
        assert (r.status_code, r.json().get("code")) == (422, "invalid_request"), (path, r.text)
        same = api.post(path, content=body.replace(', "amount_fen": 2', "").replace(', "name": "b"', ""),
                        headers={**bearer(token, f"s24-once-{n}"), "content-type": "application/json"})
        assert same.status_code != 422 or same.json()["code"] != "invalid_request", (path, same.text)
    assert balance_of(app, card.pan) == 10_000 + 1 + 1  # only the two bodies that named amount_fen once


def test_a_transfer_without_the_right_pin_tells_nothing_of_the_payees_card(city, app, api):
    """A transfer looked for the payee's PAN before it checked the payer's PIN: with a wrong PIN, a PAN of
    nobody answered 404 `account_not_found` and a real card 401 `wrong_pin`, and once the PIN was locked
    423 `pin_locked` against 404 for ever: a card without its PIN (an ATM, a cardholder's API token)
    told which card numbers of any bank exist. The PIN comes first now; with it, a PAN of nobody is still
    `account_not_found` (the payer is told), and nothing moves either way."""
    payer = activated(city, opening_fen=10_000)
    payee = activated(city, name="李四", bank="JSB")
    nobodys = _nobodys_pan(app, payee.pan[:6])
    atm = terminal_token(city, "ATM-GSB-1")

    def send(to_pan: str, pin: str, key: str):
        r = api.post("/api/v1/terminal/transfers", headers=bearer(atm, key),
                     json={"from_pan": payer.pan, "to_pan": to_pan, "amount_fen": 100, "pin": pin})
        return r.status_code, r.json().get("code")

    assert send(payee.pan, "000000", "s24-t1") == send(nobodys, "000000", "s24-t2") == (401, "wrong_pin")
    assert send(payee.pan, "000000", "s24-t3") == (423, "pin_locked")
    assert send(nobodys, "000000", "s24-t4") == (423, "pin_locked")
    assert balance_of(app, payer.pan) == 10_000
    other = activated(city, name="王五", opening_fen=10_000)  # with the right PIN: the payer is told
    r = api.post("/api/v1/terminal/transfers", headers=bearer(atm, "s24-t5"),
                 json={"from_pan": other.pan, "to_pan": nobodys, "amount_fen": 100, "pin": PIN})
    assert (r.status_code, r.json()["code"]) == (404, "account_not_found")
    assert balance_of(app, other.pan) == 10_000


def _strict_models() -> list[type]:
    import sscard.composition  # noqa: F401  (every channel's routes, so every body model, imported)
    from sscard.api.schemas import Strict

    found, todo = [], [Strict]
    while todo:
        model = todo.pop()
        found.append(model)
        todo.extend(model.__subclasses__())
    return found


def test_every_whole_number_field_of_every_body_refuses_true_and_a_float():
    """`{"person_id": true}` was read as person 1 and `{"days": 30.0}` as 30 (pydantic's lax mode), by the
    identity check, the power of attorney, the first card, the activation extension, ...; money was strict
    already. Every body model's whole-number field refuses both now (schemas.Strict, the one base)."""
    from pydantic import ValidationError

    checked = 0
    for model in _strict_models():
        for name, info in model.model_fields.items():
            if info.annotation is None or "int" not in str(info.annotation) or "bool" in str(info.annotation):
                continue
            for value in (True, 1.0):
                with pytest.raises(ValidationError) as refused:
                    model.model_validate({name: value})
                assert any(e["loc"] == (name,) and e["type"] == "int_type" for e in refused.value.errors()), (
                    model.__name__, name, value)
            checked += 1
    assert checked >= 20


def test_an_identity_check_for_person_true_is_refused_and_opens_no_visit(city, app, api):
    card = city.issued_card()
    with app.db.session() as s:
        from sscard.models.counter import CounterVisit
        before = len(s.scalars(select(CounterVisit)).all())
    r = api.post("/api/v1/counter/identity-checks", headers=bearer(city.token("clerk"), "s24-true"),
                 json={"person_id": True, "presented_citizen_id": card.citizen_id})
    assert (r.status_code, r.json().get("code")) == (422, "invalid_request"), r.text
    assert r.json()["details"][0]["loc"] == ["body", "person_id"]
    with app.db.session() as s:
        assert len(s.scalars(select(CounterVisit)).all()) == before


def test_a_whole_number_in_a_url_is_ascii_digits_or_refused_422_on_the_lane_and_through_fastapi(city, app, api):
    """The probe's finding: pydantic read `1.0`, `+1`, ` 1`, `1_0` and Arabic-Indic digits in a URL as
    integers, so `/persons/1_0/cards` answered person 10's cards and `/persons/%201/cards` person 1's: the
    path a log or an auditor reads named another row than the one acted on. http.JsonRoute refuses them 422
    on every route's path and query integers (the read lane hands them to it), and plain digits work."""
    person_id, _cid = city.new_person()
    clerk = bearer(city.token("clerk"))
    assert api.get(f"/api/v1/persons/{person_id}/cards", headers=clerk).status_code == 200
    for written in (f"{person_id}.0", f"+{person_id}", f"%20{person_id}", f"{person_id}%20", f"{person_id}_0",
                    "".join(chr(0x0660 + int(d)) for d in str(person_id))):
        r = api.get(f"/api/v1/persons/{written}/cards", headers=clerk)
        assert r.status_code == 422, (written, r.status_code, r.text[:200])
        assert r.json()["code"] == "invalid_request" and r.json()["details"][0]["loc"] == ["path", "person_id"]
    operator = bearer(city.token("operator"))
    assert api.get("/api/v1/audit?limit=5", headers=operator).status_code == 200
    for written in ("5.0", "+5", "5_0", "%205"):
        r = api.get(f"/api/v1/audit?limit={written}", headers=operator)
        assert r.status_code == 422 and r.json()["details"][0]["loc"] == ["query", "limit"], (written, r.text[:200])
