"""The outside probe's findings (issue 13), each as the request that exposed it, sent again.

Each test failed on the code the probe ran against and passes now; the fixes are in the frame
(services.access, services.operation, api.schemas), so the tests below also walk every route where a
finding could recur, not only the one the probe happened to try."""

from __future__ import annotations

import pytest

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR, Channel, Role
from sscard.services import access, banking
from tests.ledger.helpers import PIN, activated, balance_of, terminal_token
from tests.medical import helpers as med
from tests.support import bearer

pytestmark = pytest.mark.keys_required


def test_finding1_a_terminal_token_cannot_move_money_through_staff_routes(city, app, api):
    card = activated(city, opening_fen=10_000)
    atm = terminal_token(city, "ATM-GSB-1")
    before = balance_of(app, card.pan)
    deposit = api.post(f"/api/v1/bank-accounts/{card.pan}/deposit", json={"amount_fen": 100},
                       headers=bearer(atm, "f1-d"))
    withdrawal = api.post(f"/api/v1/bank-accounts/{card.pan}/withdrawal", json={"amount_fen": 100, "pin": PIN},
                          headers=bearer(atm, "f1-w"))
    assert (deposit.status_code, deposit.json()["code"]) == (403, "forbidden")
    assert (withdrawal.status_code, withdrawal.json()["code"]) == (403, "forbidden")
    assert balance_of(app, card.pan) == before
    # the same terminal on its own routes still works
    ok = api.post("/api/v1/terminal/deposit", json={"pan": card.pan, "amount_fen": 100}, headers=bearer(atm, "f1-t"))
    assert ok.status_code == 200 and balance_of(app, card.pan) == before + 100


def test_finding1_no_channel_admits_a_role_it_does_not_serve(city):
    """The audience table itself: terminals act only on the terminal channel, and only terminals do."""
    for channel, roles in access.AUDIENCE.items():
        assert (channel.value == "terminal") == ("terminal" in {r.value for r in roles}), channel


def test_finding2_a_staff_withdrawal_without_a_key_is_refused_and_moves_nothing(city, app, api):
    card = activated(city, opening_fen=10_000)
    teller = city.token("teller")
    before = balance_of(app, card.pan)
    for _ in range(2):
        r = api.post(f"/api/v1/bank-accounts/{card.pan}/withdrawal", json={"amount_fen": 100, "pin": PIN},
                     headers=bearer(teller))
        assert (r.status_code, r.json()["code"]) == (400, "idempotency_key_required")
    assert balance_of(app, card.pan) == before
    for _ in range(2):  # the same withdrawal twice with its key: applied once
        r = api.post(f"/api/v1/bank-accounts/{card.pan}/withdrawal", json={"amount_fen": 100, "pin": PIN},
                     headers=bearer(teller, "f2-once"))
        assert r.status_code == 200
    assert balance_of(app, card.pan) == before - 100


def test_finding2_every_keyed_operation_refuses_a_network_caller_without_a_key(city, app):
    """Every operation that changes state, through every API or terminal caller its roles admit, is
    refused without a key before it runs (the frame's admit, not the routes)."""
    card = activated(city, opening_fen=10_000)
    callers = [city.actor("teller").via(Channel.API), city.actor("clerk").via(Channel.API),
               city.actor("operator")]
    from tests.ledger.helpers import terminal

    callers += [terminal(city, code) for code in ("ATM-GSB-1", "POS-1", "KIOSK-1")]
    keyed = [d for d in access.DECLARATIONS.values() if d.keyed]
    assert len(keyed) > 50
    tried = 0
    for decl in keyed:
        for actor in callers:
            if not access.allowed(actor, decl.name) or (
                    actor.terminal_kind and decl.terminals is not None and actor.terminal_kind not in decl.terminals):
                continue
            with pytest.raises(SscardError) as refused:
                access.admit(actor, decl.name, None)
            assert refused.value.code == "idempotency_key_required", decl.name
            access.admit(actor, decl.name, "a-key")  # with a key: admitted
            tried += 1
    assert tried > 40
    assert balance_of(app, card.pan) == 10_000


def test_the_servers_own_gateway_is_never_asked_for_a_key_on_any_channel():
    """A SYSTEM actor is the server's own door (a login gateway, a hotline menu, a job): no token carries it
    and it does not retry over a network. The API door's `login.throttled` record was refused
    `idempotency_key_required` (a 400 in place of the 429) for being keyed on a keyed channel: now no
    operation a gateway may call is refused for want of a key, whatever the channel."""
    from sscard.core.roles import Actor

    tried = 0
    for channel in Channel:
        gateway = Actor(kind="channel", id="door", role=Role.SYSTEM, name="door", channel=channel)
        for decl in access.DECLARATIONS.values():
            if access.allowed(gateway, decl.name):
                access.admit(gateway, decl.name, None)
                tried += 1
    assert tried > 20


def test_every_query_password_check_takes_one_argon2_verify_whether_or_not_the_login_exists(city, app, monkeypatch):
    """Finding of session 21's probe: an unknown login answered in 7-19 ms, a known one after its argon2
    check (180-380 ms): the time told which citizen IDs are registered (R1.8). Now an unknown login, an initial
    password (compared, not hashed) and a set one each cost one verify."""
    from sscard.services import passwords

    verifies = []

    class Counting:  # the server's argon2 hasher, counting its verifies
        def __init__(self, hasher):
            self.hasher = hasher

        def hash(self, password):
            return self.hasher.hash(password)

        def verify(self, hashed, password):
            verifies.append(1)
            return self.hasher.verify(hashed, password)

    monkeypatch.setattr(app.secrets, "_argon2", Counting(app.secrets._argon2))
    initial = city.issued_card()
    changed = city.issued_card("李四")
    from sscard.core.roles import Actor

    gateway = Actor(kind="channel", id="portal", role=Role.SYSTEM, name="portal login", channel=Channel.PORTAL)
    passwords.login_with_query_password(app, gateway, changed.citizen_id, changed.card_number[-6:])
    me = passwords.cardholder_actor(changed.person_id, changed.name, Channel.API)
    passwords.change_query_password(app, me, changed.card_number[-6:], "58203917", "58203917", idempotency_key="c")
    for login in ("110101199001011237", initial.citizen_id, changed.citizen_id, "A9999999X"):
        verifies.clear()
        with pytest.raises(SscardError) as refused:
            passwords.login_with_query_password(app, gateway, login, "000999")
        assert refused.value.code == "wrong_password"
        assert len(verifies) == 1, login


def test_finding5_another_banks_teller_reads_nothing_of_a_customer(city, app, api):
    card = activated(city, bank="GSB")
    jsb, gsb = city.token("teller_jsb"), city.token("teller")
    refused = [
        api.get(f"/api/v1/cards/{card.card_number}", headers=bearer(jsb)),
        api.get(f"/api/v1/persons/{card.person_id}/cards", headers=bearer(jsb)),
        api.get("/api/v1/persons", params={"citizen_id": card.citizen_id}, headers=bearer(jsb)),
        api.get("/api/v1/persons", params={"card_number": card.card_number}, headers=bearer(jsb)),
        api.get(f"/api/v1/bank-accounts/{card.pan}/statement", headers=bearer(jsb)),
    ]
    assert [(r.status_code, r.json()["code"]) for r in refused] == [
        (403, "wrong_bank"), (404, "person_not_found"), (404, "person_not_found"), (404, "card_not_found"),
        (403, "wrong_bank")]  # (a person looked up by another bank's card: not found, as by citizen ID; session 22)
    for r in refused:
        assert card.citizen_id[-4:] not in r.text and card.pan[-4:] not in r.text
    mine = [api.get(f"/api/v1/cards/{card.card_number}", headers=bearer(gsb)),
            api.get(f"/api/v1/persons/{card.person_id}/cards", headers=bearer(gsb)),
            api.get("/api/v1/persons", params={"citizen_id": card.citizen_id}, headers=bearer(gsb))]
    assert [r.status_code for r in mine] == [200, 200, 200]


def test_finding5_a_bank_lists_only_its_own_cards_of_a_person_with_cards_at_two_banks(city, app, api):
    card = activated(city, bank="GSB")
    from sscard.services import replacement

    # the same person changes bank: a JSB card replaces the GSB one (both rows stay)
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "bank_change", card.citizen_id,
                            payment="cash", bank_code="JSB")
    jsb = api.get(f"/api/v1/persons/{card.person_id}/cards", headers=bearer(city.token("teller_jsb"))).json()
    gsb = api.get(f"/api/v1/persons/{card.person_id}/cards", headers=bearer(city.token("teller"))).json()
    assert [c["card_number"][-2:] for c in jsb["cards"]] == [out["card_number"][-2:]]
    assert len(gsb["cards"]) == 1 and gsb["cards"][0]["card_number"][-2:] == card.card_number[-2:]


@pytest.mark.parametrize("amount", [100.0, "100", True, -1, 0, 10**15])
def test_finding6_money_is_a_strict_integer_of_fen(city, app, api, amount):
    med.set_up(city)
    card = activated(city, opening_fen=10_000)
    med.insure(app, card.person_id)
    hospital = terminal_token(city, med.INSTITUTIONS[0][5])
    line = {"category": "drug", "name": "x", "amount_fen": amount, "covered": True}
    quote = api.post("/api/v1/terminal/medical/pre-settlements", headers=bearer(hospital, "f6-q"),
                     json={"card_number": card.card_number, "ident_code": med.ident_code(app, card.card_number),
                           "lines": [line]})
    assert quote.status_code == 422 and quote.json()["code"] == "invalid_request"
    credit = api.post("/api/v1/medical/contributions", headers=bearer(city.token("operator"), "f6-c"),
                      json={"month": "2026-01", "credits": [{"person_id": card.person_id, "amount_fen": amount}]})
    expect = 422 if amount != 0 else 200  # a month's credit of 0 is allowed; its type still is strict
    assert credit.status_code == expect, credit.text
    deposit = api.post(f"/api/v1/bank-accounts/{card.pan}/deposit", headers=bearer(city.token("teller"), "f6-d"),
                       json={"amount_fen": amount})
    assert deposit.status_code == 422
    assert balance_of(app, card.pan) == 10_000


def test_finding6_every_money_field_of_the_api_is_a_strict_integer(app, api):
    """Read from the OpenAPI: every `*_fen` input is an integer (no number, string or boolean form)."""
    spec = api.get("/openapi.json").json()
    fields = []
    for name, schema in spec["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            if field.endswith("_fen") and not name.endswith("Response"):
                kinds = {p.get("type") for p in prop.get("anyOf", [prop])} - {"null"}
                assert kinds == {"integer"}, (name, field, prop)
                fields.append((name, field))
    assert len(fields) >= 8

    from sscard.api.schemas import Strict

    with pytest.raises(TypeError, match="strict integer"):
        class Loose(Strict):  # noqa: F841  (a money field of a plain int fails when the class is made)
            amount_fen: int


def test_a_declared_scope_that_is_never_checked_fails_closed(city, app):
    """An operation that forgot its scope check answers with an internal error, never with data."""
    from sscard.services.operation import query

    @query("test.forgot_scope", roles={Role.CARDHOLDER}, scope=access.Scope.OWN)
    def forgot(op):
        return {"everyone's": "data"}

    holder = activated(city)
    from sscard.services.passwords import cardholder_actor

    actor = cardholder_actor(holder.person_id, "张三", Channel.PORTAL)
    with pytest.raises(RuntimeError, match="never checked"):
        forgot(app, actor)


def test_an_argument_named_like_a_secret_must_be_declared_one():
    from sscard.services.operation import operation

    with pytest.raises(ValueError, match="undeclared secrets"):
        @operation("test.undeclared_pin", roles={Role.TELLER}, scope=access.Scope.OWN)
        def leaky(op, pan: str, pin: str):
            return {}


def test_a_secret_argument_never_reaches_the_audit_record(city, app):
    from sscard.services.operation import operation

    @operation("test.audits_its_pin", roles={Role.SYSTEM}, scope=access.Scope.CITY, secrets=("pin",))
    def careless(op, pin: str):
        op.audit("test", "x", note=f"pin was {pin}")
        return {}

    with pytest.raises(RuntimeError, match="secret"):
        careless(app, SYSTEM_ACTOR, "937201")
    assert banking  # the real operations are declared with their secrets at import


def test_finding3_every_declared_secret_is_masked_in_a_log_line():
    """The log filter masks values under any argument name an operation declared secret."""
    from sscard.logs import mask_secrets

    assert len(access.SECRET_NAMES) >= 8
    for name in sorted(access.SECRET_NAMES):
        for shape in (f"{{'{name}': '937201'}}", f'{{"{name}": "937201"}}', f"{name}=937201"):
            assert "937201" not in mask_secrets(shape), (name, shape)


def test_activation_and_pin_reset_need_the_cardholder_in_person_on_every_channel(city, app, api):
    """The rule lives in the service: the API refuses what the bank console refuses."""
    card = city.issued_card()
    teller = city.token("teller")
    body = {"presented_citizen_id": card.citizen_id, "pin": PIN, "pin_again": PIN, "cardholder_in_person": False}
    r = api.post(f"/api/v1/bank-accounts/{card.pan}/activate", json=body, headers=bearer(teller, "ip-1"))
    assert (r.status_code, r.json()["code"]) == (403, "cardholder_in_person")
    with pytest.raises(SscardError, match="in person"):
        banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=False)
    r = api.post(f"/api/v1/bank-accounts/{card.pan}/activate", json={**body, "cardholder_in_person": True},
                 headers=bearer(teller, "ip-2"))
    assert r.status_code == 200 and r.json()["status"] == "active"
    reset = {"presented_citizen_id": card.citizen_id, "new": "258369", "new_again": "258369",
             "cardholder_in_person": False}
    r = api.post(f"/api/v1/bank-accounts/{card.pan}/pin/reset", json=reset, headers=bearer(teller, "ip-3"))
    assert (r.status_code, r.json()["code"]) == (403, "cardholder_in_person")


def test_every_operation_an_agent_may_do_takes_the_agents_own_id_and_checks_it(city, app):
    """Session 22's authorization probe: an agent reported a formal loss through the API with a power of
    attorney and no ID of their own (RULES §6: the agent's own ID is recorded too); every other agent route
    asked for it. Every operation that takes `attorney_id` now takes `agent_citizen_id` too, and the formal
    loss refuses a missing or wrong one as collection does."""
    import importlib
    import inspect
    import pkgutil
    from datetime import timedelta

    import sscard.services
    from sscard.services import attorney, loss, operation

    for module in pkgutil.iter_modules(sscard.services.__path__):
        importlib.import_module(f"sscard.services.{module.name}")
    takes_poa = {name: inspect.signature(fn).parameters for name, fn in operation._BODIES.items()
                 if "attorney_id" in inspect.signature(fn).parameters and not name.startswith("attorney.")}
    assert {"ss_loss.report_formal", "card.collect", "replacement.apply"} <= takes_poa.keys()
    assert [name for name, params in takes_poa.items() if "agent_citizen_id" not in params] == []

    card = city.issued_card()
    clerk = city.actor("clerk")
    agent_id = "11010519491231002X"
    today = app.clock.today()
    poa = attorney.record(app, clerk, card.person_id, "李代理", agent_id, ["ss_loss.report_formal"],
                            today, today + timedelta(days=30), "D1")
    for wrong in (None, "110101195706111336"):
        with pytest.raises(SscardError) as refused:
            loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id, poa["id"], wrong)
        assert refused.value.code == "identity_mismatch"
    done = loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id, poa["id"], agent_id)
    assert done["ss_status"] == "formal_loss"


def test_a_cardholder_cannot_tell_another_persons_id_from_an_id_of_nobody(city, app, api):
    """Session 22's authorization probe: a cardholder's token on /persons/{id}/... answered another
    person's id `not_found` and an id of nobody `person_not_found`, so the ids of the city's people could be
    enumerated. Both now answer alike, on every route that takes a person id."""
    from sscard.api.sessions import issue_cardholder_token

    mine, other = city.issued_card(), city.issued_card("李四")
    city.own_query_password(mine)
    token = issue_cardholder_token(app, mine.person_id)
    for route in ("/api/v1/persons/{}/cards", "/api/v1/persons/{}/medical/settlements",
                  "/api/v1/persons/{}/medical/account"):
        theirs = api.get(route.format(other.person_id), headers=bearer(token))
        nobodys = api.get(route.format(other.person_id + 10_000), headers=bearer(token))
        assert (theirs.status_code, theirs.json()) == (nobodys.status_code, nobodys.json()) == (
            404, nobodys.json()), route
        assert nobodys.json()["code"] == "person_not_found"


def test_a_teller_looking_up_another_banks_card_learns_no_more_than_for_a_card_of_nobody(city, app, api):
    """Session 22's authorization probe: `GET /persons?card_number=` answered another bank's card
    `wrong_bank` and a card of nobody `card_not_found`, while by citizen ID another bank's customer is
    `person_not_found`: the card's existence and its bank were told."""
    gsb_card = city.issued_card(bank="GSB")
    jsb_teller = city.token("teller_jsb")
    theirs = api.get("/api/v1/persons", params={"card_number": gsb_card.card_number}, headers=bearer(jsb_teller))
    assert (theirs.status_code, theirs.json()["code"]) == (404, "card_not_found")
    own = api.get("/api/v1/persons", params={"card_number": gsb_card.card_number},
                  headers=bearer(city.token("teller")))
    assert own.status_code == 200 and own.json()["id"] == gsb_card.person_id
