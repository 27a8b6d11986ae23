"""End to end through the terminal API (/api/v1/terminal/medical/...) with the test client."""

from __future__ import annotations

import pytest

from sscard.api.sessions import issue_cardholder_token
from sscard.core.roles import Channel
from sscard.services import loss
from tests.medical import helpers as h
from tests.support import bearer, own_query_password

pytestmark = pytest.mark.keys_required


@pytest.fixture
def med(city):
    h.set_up(city)
    return city


_auth = bearer


def _pay(client, token, card_number, ident, bill, key, password="123456"):
    quote = client.post("/api/v1/terminal/medical/pre-settlements", headers=_auth(token),
                        json={"card_number": card_number, "ident_code": ident, "lines": bill})
    if quote.status_code != 200:
        return quote
    return client.post("/api/v1/terminal/medical/settlements", headers=_auth(token, key),
                       json={"quote": quote.json()["quote"], "card_number": card_number, "ident_code": ident,
                             "ss_password": password, "pay_with": "cash"})


def test_lost_card_refused_at_a_pharmacy_then_the_new_card_pays_from_the_same_personal_account(med, app, client):
    card = med.issued_card()
    h.insure(app, card.person_id, 60_000)
    pharmacy = h.token(med, "PHAR-P1-1")
    ident = h.ident_code(app, card.card_number)
    bill = h.lines(covered=12_000)
    ok = _pay(client, pharmacy, card.card_number, ident, bill, "e2e-1")
    assert ok.status_code == 201, ok.text
    assert ok.json()["personal_balance_after_fen"] == 48_000

    loss.report_temporary_loss(app, med.cardholder(card, Channel.HOTLINE_12333), card.card_number)
    refused = _pay(client, pharmacy, card.card_number, ident, bill, "e2e-2")
    assert refused.status_code == 409 and refused.json()["code"] == "card_lost"
    assert "挂失" in refused.json()["message"]

    new_number = h.replace_lost_card(med, card)
    old_again = _pay(client, pharmacy, card.card_number, ident, bill, "e2e-3")
    assert old_again.json()["code"] == "card_cancelled"
    new_ident = h.ident_code(app, new_number)
    paid = _pay(client, pharmacy, new_number, new_ident, bill, "e2e-4")
    assert paid.status_code == 201, paid.text
    assert paid.json()["split"]["personal_fen"] == 12_000
    assert paid.json()["personal_balance_after_fen"] == 36_000
    mixed = _pay(client, pharmacy, new_number, ident, bill, "e2e-5")  # old card's code with the new number
    assert mixed.status_code == 403 and mixed.json()["code"] == "ident_code_mismatch"

    staff = med.token("clerk")
    listed = client.get(f"/api/v1/persons/{card.person_id}/medical/settlements", headers=_auth(staff))
    assert listed.status_code == 200 and listed.json()["total"] == 2
    account = client.get(f"/api/v1/persons/{card.person_id}/medical/account", headers=_auth(staff)).json()
    assert account["balance_fen"] == 36_000


def test_settlement_slip_and_the_cardholders_own_list(med, app, client):
    card = med.issued_card()
    h.insure(app, card.person_id, 150_000)
    hospital = h.token(med, "HOSP-H3-1")
    ident = h.ident_code(app, card.card_number)
    paid = _pay(client, hospital, card.card_number, ident, h.lines(covered=200_000, uncovered=5_000), "s-1")
    assert paid.status_code == 201, paid.text
    code = paid.json()["code"]
    replay = client.post("/api/v1/terminal/medical/settlements", headers=_auth(hospital, "s-1"), json={})
    assert replay.status_code == 422  # a body is still required
    own_query_password(app, card.person_id)
    holder = issue_cardholder_token(app, card.person_id)
    mine = client.get(f"/api/v1/persons/{card.person_id}/medical/settlements", headers=_auth(holder))
    assert mine.status_code == 200 and [s["code"] for s in mine.json()["settlements"]] == [code]
    slip = client.get(f"/api/v1/medical/settlements/{code}/slip.pdf", headers=_auth(holder))
    assert slip.status_code == 200 and slip.headers["content-type"] == "application/pdf"
    assert slip.content.startswith(b"%PDF") and len(slip.content) > 2_000
    other = med.issued_card(name="李四")
    own_query_password(app, other.person_id)
    stranger = issue_cardholder_token(app, other.person_id)
    assert client.get(f"/api/v1/medical/settlements/{code}/slip.pdf", headers=_auth(stranger)).status_code == 404
    assert client.get(f"/api/v1/persons/{card.person_id}/medical/settlements",
                      headers=_auth(stranger)).status_code == 404
    for path, token in ((f"/api/v1/terminal/medical/settlements/{code}", hospital),
                        (f"/api/v1/medical/settlements/{code}", med.token("clerk"))):
        unrefunded = client.get(path, headers=_auth(token))
        assert unrefunded.status_code == 200, unrefunded.text  # was a 500: the answer model wanted a string
        assert unrefunded.json()["refunded_by"] is None
    refund = client.post(f"/api/v1/terminal/medical/settlements/{code}/refund", headers=_auth(hospital, "s-r"),
                         json={"reason": "退药"})
    assert refund.status_code == 201 and refund.json()["split"]["fund_fen"] == -96_000
    refunded = client.get(f"/api/v1/terminal/medical/settlements/{code}", headers=_auth(hospital))
    assert refunded.status_code == 200 and refunded.json()["refunded_by"] == refund.json()["code"]
    no_key = client.post(f"/api/v1/terminal/medical/settlements/{code}/refund", headers=_auth(hospital), json={})
    assert no_key.status_code == 400 and no_key.json()["code"] == "idempotency_key_required"


def test_only_medical_terminals_settle(med, app, client):
    card = med.issued_card()
    h.insure(app, card.person_id, 10_000)
    kiosk = med.token(terminal="KIOSK-1")
    out = client.post("/api/v1/terminal/medical/pre-settlements", headers=_auth(kiosk),
                      json={"card_number": card.card_number, "ident_code": h.ident_code(app, card.card_number),
                            "lines": h.lines(1_000)})
    assert out.status_code == 403 and out.json()["code"] == "wrong_terminal_kind"  # declared: access.MEDICAL
    clerk = med.token("clerk")
    out = client.post("/api/v1/terminal/medical/pre-settlements", headers=_auth(clerk),
                      json={"card_number": card.card_number, "ident_code": "x", "lines": h.lines(1_000)})
    assert out.status_code == 403 and out.json()["code"] == "forbidden"
    bad = client.post("/api/v1/terminal/medical/pre-settlements", headers=_auth(h.token(med, "HOSP-H3-1")),
                      json={"card_number": card.card_number, "ident_code": "x",
                            "lines": [{"category": "drug", "amount_fen": 1.5, "covered": True}]})
    assert bad.status_code == 422


def test_operator_sets_up_institutions_and_credits_contributions_over_the_api(city, app, client):
    operator = city.token("operator")
    made = client.post("/api/v1/medical/institutions", headers=_auth(operator, "i-1"),
                       json={"code": "H2", "name": "杭州市第一人民医院", "kind": "hospital", "level": 2})
    assert made.status_code == 201 and made.json()["designated"] is True
    bad = client.post("/api/v1/medical/institutions", headers=_auth(operator, "i-2"),
                      json={"code": "P9", "name": "药店", "kind": "pharmacy", "level": 2})
    assert bad.status_code == 422
    term = client.post("/api/v1/medical/institutions/H2/terminals", headers=_auth(operator, "i-3"), json={"code": "H2-T1"})
    assert term.status_code == 201 and term.json()["kind"] == "hospital"
    card = city.issued_card()
    credit = client.post("/api/v1/medical/contributions", headers=_auth(operator, "c-1"),
                         json={"month": "2026-01", "credits": [{"citizen_id": card.citizen_id, "amount_fen": 20_000}]})
    assert credit.status_code == 200 and credit.json()["credited"] == 1
    clerk = city.token("clerk")
    assert client.post("/api/v1/medical/contributions", headers=_auth(clerk),
                       json={"month": "2026-01", "credits": [{"person_id": 1, "amount_fen": 1}]}).status_code == 403
    off = client.post("/api/v1/medical/institutions/H2/designation", headers=_auth(operator, "i-4"),
                      json={"designated": False})
    assert off.json()["designated"] is False
    quote = client.post("/api/v1/terminal/medical/pre-settlements", headers=_auth(h.token(city, "H2-T1")),
                        json={"card_number": card.card_number, "ident_code": h.ident_code(app, card.card_number),
                              "lines": h.lines(1_000)})
    assert quote.status_code == 403 and quote.json()["code"] == "institution_not_designated"
    listed = client.get("/api/v1/medical/institutions", headers=_auth(clerk)).json()["institutions"]
    assert [i["code"] for i in listed] == ["H2"]


def test_a_refund_over_the_api_after_the_paying_account_was_closed_pays_the_self_pay_back_in_cash(med, app, client):
    """R9.8 (session 30): the hospital's refund is answered 201 with the self-pay to be handed back in cash, and
    its slip prints; the account closed at the bank's counter took nothing."""
    from sscard.services import banking

    card = med.issued_card()
    h.activate(med, card, opening_fen=80_000)
    h.insure(app, card.person_id, 0)
    hospital = h.token(med, "HOSP-H3-1")
    paid = h.pay(app, h.terminal(med, "HOSP-H3-1"), card.card_number, h.lines(uncovered=30_000), key="b-1",
                 pay_with="bank", pin=h.PIN)
    assert paid["self_pay_method"] == "bank"
    banking.close(app, med.actor("teller"), card.pan, card.citizen_id)
    refund = client.post(f"/api/v1/terminal/medical/settlements/{paid['code']}/refund",
                         headers=_auth(hospital, "b-1-r"), json={"reason": "退药"})
    assert refund.status_code == 201, refund.text
    assert refund.json()["self_pay_method"] == "cash" and refund.json()["split"]["self_pay_fen"] == -30_000
    again = client.post(f"/api/v1/terminal/medical/settlements/{paid['code']}/refund",
                        headers=_auth(hospital, "b-1-r"), json={"reason": "退药"})
    assert again.status_code == 201 and again.json() == refund.json()
    slip = client.get(f"/api/v1/medical/settlements/{refund.json()['code']}/slip.pdf", headers=_auth(med.token("clerk")))
    assert slip.status_code == 200 and slip.content.startswith(b"%PDF")
