"""Settlement at designated institutions through the services, on both databases."""

from __future__ import annotations

import pytest

from sscard.core.errors import SscardError
from sscard.core.roles import CLI_OPERATOR, SYSTEM_ACTOR, Channel
from sscard.services import loss, medical
from sscard.services.passwords import reset_ss_password
from tests.medical import helpers as h


@pytest.fixture
def med(city):
    h.set_up(city)
    return city


def _code(err) -> str:
    return err.value.code


def test_level3_visit_crosses_the_deductible_and_the_next_visit_starts_above_it(med, app):
    card = med.issued_card()
    h.insure(app, card.person_id, 150_000)
    term = h.terminal(med, "HOSP-H3-1")
    first = h.pay(app, term, card.card_number, h.lines(covered=200_000, uncovered=10_000), key="v1")
    assert first["split"] == {"total_fen": 210_000, "covered_fen": 200_000, "uncovered_fen": 10_000,
                              "deductible_fen": 80_000, "copay_fen": 24_000, "fund_fen": 96_000,
                              "personal_fen": 104_000, "self_pay_fen": 10_000}
    assert first["personal_balance_after_fen"] == 46_000 and first["self_pay_method"] == "cash"
    second = h.pay(app, term, card.card_number, h.lines(covered=100_000), key="v2")
    assert second["split"]["deductible_fen"] == 0 and second["split"]["fund_fen"] == 80_000
    assert second["split"]["personal_fen"] == 20_000 and second["split"]["self_pay_fen"] == 0
    account = medical.personal_account(app, SYSTEM_ACTOR, card.person_id)
    assert account["balance_fen"] == 26_000
    assert account["deductible_used_fen"] == 80_000 and account["fund_used_fen"] == 176_000
    assert [m["kind"] for m in account["movements"]] == ["settlement", "settlement", "credit"]


def test_pharmacy_uses_no_pooled_fund(med, app):
    card = med.issued_card()
    h.insure(app, card.person_id, 10_000)
    out = h.pay(app, h.terminal(med, "PHAR-P1-1"), card.card_number, h.lines(covered=12_000, uncovered=3_000),
                key="p1")
    assert out["split"]["fund_fen"] == 0 and out["split"]["deductible_fen"] == 0
    assert (out["split"]["personal_fen"], out["split"]["self_pay_fen"]) == (10_000, 5_000)


def test_pre_settlement_changes_nothing(med, app):
    card = med.issued_card()
    h.insure(app, card.person_id, 50_000)
    term = h.terminal(med, "HOSP-H3-1")
    before = medical.personal_account(app, SYSTEM_ACTOR, card.person_id)
    quote = medical.pre_settle(app, term, card.card_number, h.ident_code(app, card.card_number), h.lines(90_000))
    assert quote["split"]["fund_fen"] == 8_000
    assert medical.personal_account(app, SYSTEM_ACTOR, card.person_id) == before
    assert medical.person_settlements(app, SYSTEM_ACTOR, card.person_id)["total"] == 0


def test_refund_restores_fund_usage_deductible_and_personal_account(med, app):
    card = med.issued_card()
    h.insure(app, card.person_id, 150_000)
    term = h.terminal(med, "HOSP-H3-1")
    paid = h.pay(app, term, card.card_number, h.lines(covered=200_000), key="r1")
    refund = medical.refund(app, term, paid["code"], "患者退药", idempotency_key="r1-refund")
    assert refund["kind"] == "refund" and refund["reverses"] == paid["code"]
    assert refund["split"]["fund_fen"] == -96_000 and refund["split"]["personal_fen"] == -104_000
    account = medical.personal_account(app, SYSTEM_ACTOR, card.person_id)
    assert account["balance_fen"] == 150_000
    assert account["deductible_used_fen"] == 0 and account["fund_used_fen"] == 0
    # the same bill again splits exactly as the first time
    again = h.pay(app, term, card.card_number, h.lines(covered=200_000), key="r2")
    assert again["split"] == paid["split"]
    with pytest.raises(SscardError) as e:
        medical.refund(app, term, paid["code"], idempotency_key="r1-refund-again")
    assert _code(e) == "already_refunded"
    listed = medical.person_settlements(app, SYSTEM_ACTOR, card.person_id)
    assert listed["total"] == 3
    assert [s["kind"] for s in listed["settlements"]].count("refund") == 1


def test_annual_cap_stops_the_fund(make_app, clock):
    app = make_app(medical={"annual_cap_fen": 100_000})
    from tests.support import City

    city = City(app)
    h.set_up(city)
    card = city.issued_card()
    h.insure(app, card.person_id, 0)
    term = h.terminal(city, "HOSP-H1-1")  # deductible 300.00, 90 %
    first = h.pay(app, term, card.card_number, h.lines(covered=130_000), key="c1")
    assert first["split"]["fund_fen"] == 90_000
    second = h.pay(app, term, card.card_number, h.lines(covered=50_000), key="c2")
    assert second["split"]["fund_fen"] == 10_000  # only what is left of the cap
    third = h.pay(app, term, card.card_number, h.lines(covered=50_000), key="c3")
    assert third["split"]["fund_fen"] == 0 and third["split"]["self_pay_fen"] == 50_000


def test_settle_is_idempotent_and_a_quote_settles_once(med, app):
    card = med.issued_card()
    h.insure(app, card.person_id, 50_000)
    term = h.terminal(med, "HOSP-H3-1")
    code = h.ident_code(app, card.card_number)
    quote = medical.pre_settle(app, term, card.card_number, code, h.lines(30_000))
    first = medical.settle(app, term, quote["quote"], card.card_number, code, "123456", idempotency_key="k1")
    again = medical.settle(app, term, quote["quote"], card.card_number, code, "123456", idempotency_key="k1")
    assert again == first
    with pytest.raises(SscardError) as e:
        medical.settle(app, term, quote["quote"], card.card_number, code, "123456", idempotency_key="k2")
    assert _code(e) == "quote_already_settled"
    with pytest.raises(SscardError) as e:
        medical.settle(app, term, quote["quote"], card.card_number, code, "123456")
    assert _code(e) == "idempotency_key_required"
    assert medical.personal_account(app, SYSTEM_ACTOR, card.person_id)["balance_fen"] == 20_000


def test_quotes_expire_go_stale_and_cannot_be_forged(med, app, clock):
    card = med.issued_card()
    h.insure(app, card.person_id, 100_000)
    term = h.terminal(med, "HOSP-H3-1")
    code = h.ident_code(app, card.card_number)
    q1 = medical.pre_settle(app, term, card.card_number, code, h.lines(30_000))
    q2 = medical.pre_settle(app, term, card.card_number, code, h.lines(80_000))
    medical.settle(app, term, q1["quote"], card.card_number, code, "123456", idempotency_key="a")
    with pytest.raises(SscardError) as e:  # the balance moved: q2's split is no longer true
        medical.settle(app, term, q2["quote"], card.card_number, code, "123456", idempotency_key="b")
    assert _code(e) == "quote_outdated"
    with pytest.raises(SscardError) as e:
        medical.settle(app, term, q2["quote"][:-3] + "abc", card.card_number, code, "123456", idempotency_key="c")
    assert _code(e) == "quote_invalid"
    with pytest.raises(SscardError) as e:  # another terminal cannot use this terminal's quote
        medical.settle(app, h.terminal(med, "HOSP-H1-1"), q2["quote"], card.card_number, code, "123456",
                       idempotency_key="d")
    assert _code(e) == "quote_invalid"
    q3 = medical.pre_settle(app, term, card.card_number, code, h.lines(1_000))
    clock.advance(minutes=31)
    with pytest.raises(SscardError) as e:
        medical.settle(app, term, q3["quote"], card.card_number, code, "123456", idempotency_key="e")
    assert _code(e) == "quote_expired"


def test_refusals_not_insured_not_designated_ident_mismatch_and_cancelled(med, app, clock):
    card = med.issued_card()
    term = h.terminal(med, "HOSP-H3-1")
    code = h.ident_code(app, card.card_number)
    with pytest.raises(SscardError) as e:
        medical.pre_settle(app, term, card.card_number, code, h.lines(1_000))
    assert _code(e) == "not_insured"
    h.insure(app, card.person_id, 10_000, month="2025-12")  # last month still counts (grace 1)
    medical.pre_settle(app, term, card.card_number, code, h.lines(1_000))
    clock.advance(days=31)  # February: December is two months back
    with pytest.raises(SscardError) as e:
        medical.pre_settle(app, term, card.card_number, code, h.lines(1_000))
    assert _code(e) == "not_insured"
    h.insure(app, card.person_id, 10_000, month="2026-02")
    with pytest.raises(SscardError) as e:
        medical.pre_settle(app, h.terminal(med, "HOSP-HX-1"), card.card_number, code, h.lines(1_000))
    assert _code(e) == "institution_not_designated"
    with pytest.raises(SscardError) as e:
        medical.pre_settle(app, term, card.card_number, "330106D156000005" + "0" * 16, h.lines(1_000))
    assert _code(e) == "ident_code_mismatch"
    medical.set_designated(app, CLI_OPERATOR, "HX", True)
    medical.pre_settle(app, h.terminal(med, "HOSP-HX-1"), card.card_number, code, h.lines(1_000))
    new_number = h.replace_lost_card(med, card)
    with pytest.raises(SscardError) as e:
        medical.pre_settle(app, term, card.card_number, code, h.lines(1_000))
    assert _code(e) == "card_cancelled"
    assert new_number != card.card_number


def test_three_wrong_ss_passwords_lock_medical_use_until_a_window_reset(med, app):
    card = med.issued_card()
    h.insure(app, card.person_id, 10_000)
    term = h.terminal(med, "PHAR-P1-1")
    answers = []
    for i in range(3):
        with pytest.raises(SscardError) as e:
            h.pay(app, term, card.card_number, h.lines(1_000), key=f"w{i}", password="654321")
        answers.append(_code(e))
    assert answers == ["wrong_password", "wrong_password", "password_locked"]
    with pytest.raises(SscardError) as e:  # even the right password, until a window resets it
        h.pay(app, term, card.card_number, h.lines(1_000), key="w4")
    assert _code(e) == "password_locked"
    assert "重置" in e.value.message("zh")
    reset_ss_password(app, med.actor("clerk"), card.card_number, card.citizen_id)
    assert h.pay(app, term, card.card_number, h.lines(1_000), key="w5")["split"]["personal_fen"] == 1_000


def test_initial_password_refused_when_the_policy_requires_a_change(make_app):
    app = make_app(ss_password={"require_change_before_use": True})
    from tests.support import City

    city = City(app)
    h.set_up(city)
    card = city.issued_card()
    h.insure(app, card.person_id, 10_000)
    with pytest.raises(SscardError) as e:
        h.pay(app, h.terminal(city, "PHAR-P1-1"), card.card_number, h.lines(1_000), key="x")
    assert _code(e) == "password_change_required"


def test_temporary_loss_refuses_at_once_and_lapses_after_seven_days(med, app, clock):
    card = med.issued_card()
    h.insure(app, card.person_id, 10_000)
    term = h.terminal(med, "PHAR-P1-1")
    loss.report_temporary_loss(app, med.cardholder(card, Channel.HOTLINE_12333), card.card_number)
    with pytest.raises(SscardError) as e:
        h.pay(app, term, card.card_number, h.lines(1_000), key="t1")
    assert _code(e) == "card_lost"
    clock.advance(days=8)  # lapsed, in effect normal again (no sweep needed)
    assert h.pay(app, term, card.card_number, h.lines(1_000), key="t2")["split"]["personal_fen"] == 1_000


def test_remainder_from_the_bank_account_through_the_ledger(med, app):
    card = med.issued_card()
    h.activate(med, card, opening_fen=100_000)
    h.insure(app, card.person_id, 0)
    term = h.terminal(med, "HOSP-H3-1")
    with pytest.raises(SscardError) as e:
        h.pay(app, term, card.card_number, h.lines(covered=50_000, uncovered=20_000), key="b0",
              pay_with="bank", pin="000000")
    assert _code(e) == "wrong_pin"
    assert medical.person_settlements(app, SYSTEM_ACTOR, card.person_id)["total"] == 0
    paid = h.pay(app, term, card.card_number, h.lines(covered=50_000, uncovered=20_000), key="b1",
                 pay_with="bank", pin=h.PIN)
    assert paid["self_pay_method"] == "bank" and paid["split"]["self_pay_fen"] == 70_000
    from tests.ledger.helpers import balance_of, invariants

    assert balance_of(app, card.pan) == 30_000
    with pytest.raises(SscardError) as e:  # no overdraft: nothing of the settlement is kept
        h.pay(app, term, card.card_number, h.lines(covered=50_000), key="b2", pay_with="bank", pin=h.PIN)
    assert _code(e) == "insufficient_funds"
    assert medical.person_settlements(app, SYSTEM_ACTOR, card.person_id)["total"] == 1
    medical.refund(app, term, paid["code"], idempotency_key="b1-refund")
    assert balance_of(app, card.pan) == 100_000
    assert invariants(app)["ok"]


def test_a_refund_of_bank_self_pay_to_an_account_closed_at_the_counter_pays_the_self_pay_in_cash(med, app):
    """R9.8: the patient closed the account that paid (no replacement took it over): the refund is not held up;
    the fund, the personal account and the year's usage are restored, and the self-pay is the institution's
    till's to pay back (it holds that money in its settlement account); nothing moves in the ledger."""
    from sscard.services import banking
    from tests.ledger.helpers import balance_of, invariants

    card = med.issued_card()
    h.activate(med, card, opening_fen=100_000)
    h.insure(app, card.person_id, 10_000)
    term = h.terminal(med, "HOSP-H3-1")
    paid = h.pay(app, term, card.card_number, h.lines(covered=20_000, uncovered=30_000), key="c1",
                 pay_with="bank", pin=h.PIN)
    self_pay = paid["split"]["self_pay_fen"]
    assert paid["self_pay_method"] == "bank" and self_pay > 0
    closed = banking.close(app, med.actor("teller"), card.pan, card.citizen_id)
    assert closed["status"] == "closed" and closed["paid_out_fen"] == 100_000 - self_pay
    refund = medical.refund(app, term, paid["code"], "患者退药", idempotency_key="c1-refund")
    assert refund["self_pay_method"] == "cash" and refund["split"]["self_pay_fen"] == -self_pay
    account = medical.personal_account(app, SYSTEM_ACTOR, card.person_id)
    assert account["balance_fen"] == 10_000 and account["fund_used_fen"] == 0 and account["deductible_used_fen"] == 0
    assert balance_of(app, card.pan) == 0  # the closed account took nothing
    assert invariants(app)["ok"]
    again = medical.refund(app, term, paid["code"], "患者退药", idempotency_key="c1-refund")
    assert again == refund
    from sqlalchemy import select

    from sscard.models.foundation import AuditRecord

    with app.db.session() as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.operation == "medical.refund")).one()
    assert record.detail["self_pay_refunded"] == "cash"


def test_a_refund_of_bank_self_pay_goes_back_to_the_account_while_it_is_open(med, app):
    card = med.issued_card()
    h.activate(med, card, opening_fen=50_000)
    h.insure(app, card.person_id, 0)
    term = h.terminal(med, "HOSP-H3-1")
    paid = h.pay(app, term, card.card_number, h.lines(uncovered=20_000), key="o1", pay_with="bank", pin=h.PIN)
    refund = medical.refund(app, term, paid["code"], idempotency_key="o1-refund")
    assert refund["self_pay_method"] == "bank"
    from tests.ledger.helpers import balance_of

    assert balance_of(app, card.pan) == 50_000


def test_cardholder_sees_only_their_own_settlements(med, app):
    card = med.issued_card()
    other = med.issued_card(name="李四")
    h.insure(app, card.person_id, 10_000)
    paid = h.pay(app, h.terminal(med, "PHAR-P1-1"), card.card_number, h.lines(1_000), key="o1")
    mine = medical.person_settlements(app, med.cardholder(card), card.person_id)
    assert [s["code"] for s in mine["settlements"]] == [paid["code"]]
    assert mine["settlements"][0]["person"]["name"] == "张*"
    with pytest.raises(SscardError):
        medical.person_settlements(app, med.cardholder(other), card.person_id)
    with pytest.raises(SscardError) as e:
        medical.get_settlement(app, med.cardholder(other), paid["code"])
    assert _code(e) == "settlement_not_found"
    with pytest.raises(SscardError) as e:  # another institution's terminal
        medical.get_settlement(app, h.terminal(med, "HOSP-H3-1"), paid["code"])
    assert _code(e) == "settlement_not_found"
    assert medical.person_settlements(app, med.actor("clerk"), card.person_id)["total"] == 1


def test_monthly_credit_is_once_per_person_and_month(med, app):
    card = med.issued_card()
    out = medical.credit_month(app, SYSTEM_ACTOR, "2026-01", [{"citizen_id": card.citizen_id, "amount_fen": 20_000}])
    assert out == {"month": "2026-01", "credited": 1, "skipped": 0, "total_fen": 20_000}
    out = medical.credit_month(app, SYSTEM_ACTOR, "2026-01", [{"person_id": card.person_id, "amount_fen": 20_000}])
    assert out["credited"] == 0 and out["skipped"] == 1
    medical.credit_month(app, CLI_OPERATOR, "2026-02", [{"person_id": card.person_id, "amount_fen": 20_000}])
    account = medical.personal_account(app, SYSTEM_ACTOR, card.person_id)
    assert account["balance_fen"] == 40_000 and account["insured_months"] == ["2026-01"]
    with pytest.raises(SscardError) as e:
        medical.credit_month(app, med.actor("clerk"), "2026-03", [])
    assert _code(e) == "forbidden"
