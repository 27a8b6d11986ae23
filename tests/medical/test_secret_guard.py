"""The frame's guard against a secret in an audit record, without false alarms (session 12's sweep).

The frame refuses (fails closed) when an operation writes a declared secret argument into its audit record;
it looked for the argument as a substring of every text detail. A settlement paid in cash with a `bank_pin`
the terminal sent anyway ("a", or any character of the quote's random hex id) answered 500, and so would a
settlement whose quote id (32 random hex digits) happened to hold the cardholder's 6-digit SS password
(about one settlement in 600,000). A secret now counts only from MIN_SECRET_LENGTH characters, written as
itself (not inside a longer run of letters and digits)."""

from __future__ import annotations

import pytest

from sscard.services import medical
from sscard.services.operation import MIN_SECRET_LENGTH, written_in
from tests.medical import helpers as h
from tests.support import bearer

pytestmark = pytest.mark.keys_required


@pytest.fixture
def med(city):
    h.set_up(city)
    return city


def test_a_secret_is_written_in_a_text_only_as_itself():
    assert MIN_SECRET_LENGTH == 6
    for text in ("123456", "PIN 123456", "密码123456。", "x=123456;", "(123456)"):
        assert written_in(text, "123456"), text
    for text in ("a0123456789b", "0f1234567a", "1234567", "9123456", "abc", ""):
        assert not written_in(text, "123456"), text


def test_a_cash_settlement_with_an_unused_short_bank_pin_is_settled_not_answered_500(med, app, client):
    card = med.issued_card()
    h.insure(app, card.person_id, 60_000)
    hospital = h.token(med, "HOSP-H3-1")
    ident = h.ident_code(app, card.card_number)
    for i, unused in enumerate(("a", "0", "1", "f")):
        quote = client.post("/api/v1/terminal/medical/pre-settlements", headers=bearer(hospital),
                            json={"card_number": card.card_number, "ident_code": ident, "lines": h.lines(covered=1_000)})
        assert quote.status_code == 200, quote.text
        paid = client.post("/api/v1/terminal/medical/settlements", headers=bearer(hospital, f"unused-pin-{i}"),
                           json={"quote": quote.json()["quote"], "card_number": card.card_number, "ident_code": ident,
                                 "ss_password": "123456", "pay_with": "cash", "bank_pin": unused})
        assert paid.status_code == 201, (unused, paid.status_code, paid.text[:200])


def test_a_settlement_whose_quote_id_holds_the_ss_password_is_settled(med, app, monkeypatch):
    card = med.issued_card()
    h.insure(app, card.person_id, 60_000)
    # the quote's nonce is 32 random hex digits; this one happens to hold the initial SS password
    monkeypatch.setattr(medical.pysecrets, "token_hex", lambda n=32: ("ab123456cd" * 7)[: 2 * n])
    paid = h.pay(app, h.terminal(med, "HOSP-H3-1"), card.card_number, h.lines(covered=1_000), key="nonce-holds-pw",
                 password="123456")
    assert paid["code"].startswith("MS") and paid["split"]["total_fen"] == 1_000


def test_an_operation_that_writes_a_secret_into_its_audit_record_still_fails_closed(app):
    from sscard.core.roles import SYSTEM_ACTOR
    from sscard.services.access import Declaration, Scope
    from sscard.services.operation import Op, run_declared

    decl = Declaration("test.leaky", frozenset({SYSTEM_ACTOR.role}), Scope.CITY, False, frozenset({"pin"}))

    def leaky(op: Op, pin: str, note: str) -> dict:
        op.audit("thing", 1, note=note)
        return {}

    for note in ("PIN 731902", "731902", "密码731902"):
        with pytest.raises(RuntimeError, match="secret argument"):
            run_declared(decl, Op(app, None, SYSTEM_ACTOR, decl.name, None), leaky, ("731902", note), {})
    for note in ("quote ab731902cd", "nothing"):
        run_declared(decl, Op(app, None, SYSTEM_ACTOR, decl.name, None), leaky, ("731902", note), {})
