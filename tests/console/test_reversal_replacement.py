"""A center supervisor reverses a replacement application and refunds its fee (docs/RULES.md R6.15): the new
card cancelled, the fee back the way it was paid, the receipt kept, once, only before production."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from sscard.core.errors import SscardError
from sscard.models.counter import FeeReceipt, Reversal
from sscard.models.foundation import AuditRecord, BankAccount, Card
from sscard.services import banking, ledger, loss, production, replacement, reversal, staff
from tests.support import STAFF_PASSWORD


def _record_of(app, operation: str) -> int:
    with app.db.session() as s:
        return s.scalar(select(AuditRecord.id).where(AuditRecord.operation == operation, AuditRecord.result == "ok")
                        .order_by(AuditRecord.id.desc()).limit(1))


def _refusal(fn, *args, **kwargs) -> SscardError:
    with pytest.raises(SscardError) as err:
        fn(*args, **kwargs)
    return err.value


def _card(app, number: str) -> Card:
    with app.db.session() as s:
        card = s.scalar(select(Card).where(Card.card_number == number))
        s.expunge(card)
        return card


def _posted(app, name_or_id) -> int:
    """An account's posted balance (credits - debits): a system account by name, a card's by ledger id."""
    with app.db.session() as s:
        account = ledger.system_account(s, name_or_id, now=app.clock.now()) if isinstance(name_or_id, str) \
            else name_or_id
        b = ledger.balance(s, account)
        return b.credits_posted - b.debits_posted


def _invariants_ok(app) -> bool:
    with app.db.session() as s:
        return ledger.check_invariants(s)["ok"]


def _second_supervisor(city, app, username="csup_b", center="C01"):
    staff.add_user(app, city.actor("operator"), username, STAFF_PASSWORD, "center_supervisor", username,
                   center_code=center)
    return staff.authenticate_staff(app, username, STAFF_PASSWORD, city.actor("csup").channel)


def _usage(app, ledger_id: int) -> int:
    with app.db.session() as s:
        return ledger.usage(s, ledger_id, app.clock.today(), "payment")


def test_a_cash_fee_goes_back_out_of_the_center_drawer_and_the_new_card_is_cancelled(city, app):
    card = city.issued_card()
    drawer, income = "cash:center-C01", replacement.FEE_INCOME
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    assert (_posted(app, drawer), _posted(app, income)) == (-2000, 2000)
    record = _record_of(app, "replacement.apply")
    done = reversal.reverse(app, city.actor("csup"), record, "持卡人改变主意")
    assert (done["state_before"], done["state_after"]) == ("applied", "cancelled")
    assert done["refund"]["refund_receipt_no"] == out["receipt_no"] + "R"
    assert (done["refund"]["amount_fen"], done["refund"]["method"]) == (2000, "cash")
    assert out["card_number"] not in str(done)  # the new card's number masked
    assert (_posted(app, drawer), _posted(app, income)) == (0, 0)  # the drawer paid the 20.00 back out
    assert _invariants_ok(app)
    new = _card(app, out["card_number"])
    assert new.ss_status == "cancelled" and _card(app, card.card_number).ss_status == "normal"
    with app.db.session() as s:
        assert s.scalar(select(BankAccount.status).where(BankAccount.card_id == new.id)) == "closed"
        receipt = s.scalar(select(FeeReceipt).where(FeeReceipt.receipt_no == out["receipt_no"]))
        assert (receipt.amount_fen, receipt.method) == (2000, "cash")  # kept as printed
        refund = s.execute(select(ledger.TRANSFERS).where(
            ledger.TRANSFERS.c.transfer_id == done["refund"]["transfer_id"])).one()
        fee = s.execute(select(ledger.TRANSFERS).where(ledger.TRANSFERS.c.id == receipt.ledger_transfer_id)).one()
        assert (refund.code, refund.ref, refund.amount) == (reversal.REFUND_CODE, fee.transfer_id, 2000)
        audit = s.scalar(select(AuditRecord).where(AuditRecord.operation == "reversal.reverse",
                                                   AuditRecord.result == "ok"))
    assert audit.detail["refund"]["refund_receipt_no"] == out["receipt_no"] + "R"
    assert audit.detail["reversed_operation"] == "replacement.apply" and audit.person_id == card.person_id
    # nothing is under way any more: the person may apply again
    again = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id,
                              payment="cash")
    assert again["card_number"] != out["card_number"]


def test_a_card_fee_goes_back_to_the_old_cards_account_with_the_days_payment_limit(city, app):
    card = city.issued_card()
    teller, clerk = city.actor("teller"), city.actor("clerk")
    banking.activate(app, teller, card.pan, card.citizen_id, "730418", "730418", cardholder_in_person=True)
    banking.deposit(app, teller, card.pan, 5000)
    with app.db.session() as s:
        account_id = s.scalar(select(BankAccount.ledger_account_id).where(BankAccount.pan == card.pan))
    replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="card", pin="730418")
    assert (_posted(app, account_id), _posted(app, replacement.FEE_INCOME), _usage(app, account_id)) == (3000, 2000, 2000)
    done = reversal.reverse(app, city.actor("csup"), _record_of(app, "replacement.apply"), "刷错了卡")
    assert done["refund"]["method"] == "card" and done["refund"]["amount_fen"] == 2000
    assert (_posted(app, account_id), _posted(app, replacement.FEE_INCOME), _usage(app, account_id)) == (5000, 0, 0)
    assert _invariants_ok(app)
    from sscard.web.bank_console import describe

    with app.db.session() as s:  # the old card's statement names both lines in words, not ledger codes
        codes = [r.code for r in ledger.history(s, account_id)]
    assert codes[:2] == [reversal.REFUND_CODE, "replacement_fee"]
    assert [describe({"code": c}, "en") for c in codes[:2]] == [
        "Card replacement fee refunded (application withdrawn)", "Card replacement fee"]


def test_a_waived_application_moves_no_money_and_is_reversed_by_another_supervisor_only(city, app):
    card = city.issued_card()
    csup = city.actor("csup")
    out = replacement.apply_waived(app, csup, card.card_number, "damaged", card.citizen_id, "低保户")
    record = _record_of(app, "replacement.apply_waived")
    listed = {a["audit_record_id"]: a for a in reversal.candidates(app, csup)["actions"]}
    assert listed[record]["why_not"] == "own_action"
    err = _refusal(reversal.reverse, app, csup, record, "减免错了")
    assert err.code == "not_reversible" and "another supervisor" in err.message("en")
    assert _card(app, out["card_number"]).ss_status == "applied"
    with app.db.session() as s:
        transfers = s.scalar(select(func.count()).select_from(ledger.TRANSFERS))
    done = reversal.reverse(app, _second_supervisor(city, app), record, "减免错了")
    assert done["refund"] is None and done["state_after"] == "cancelled"
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ledger.TRANSFERS)) == transfers  # nothing moved
    assert _card(app, out["card_number"]).ss_status == "cancelled"


def test_a_renewal_without_a_fee_is_withdrawn_and_moves_nothing(city, app):
    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "data_change", card.citizen_id)
    done = reversal.reverse(app, city.actor("csup"), _record_of(app, "replacement.apply"), "信息无需变更")
    assert done["refund"] is None and _card(app, out["card_number"]).ss_status == "cancelled"
    assert _posted(app, replacement.FEE_INCOME) == 0


def test_a_formal_loss_recorded_in_the_same_application_stays_and_may_then_be_cancelled(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, payment="cash", record_formal_loss=True)
    reversal.reverse(app, city.actor("csup"), _record_of(app, "replacement.apply"), "卡已找到")
    assert _card(app, card.card_number).ss_status == "formal_loss"  # the cardholder's report stays
    assert _posted(app, replacement.FEE_INCOME) == 0
    loss.cancel_ss_loss(app, clerk, card.card_number, card.citizen_id)  # no replacement under way: allowed
    assert _card(app, card.card_number).ss_status == "normal"


def test_a_new_card_in_a_production_batch_is_not_withdrawn_and_its_fee_stays(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    out = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash")
    record = _record_of(app, "replacement.apply")
    production.start_batch(app, clerk, "C01")
    listed = {a["audit_record_id"]: a for a in reversal.candidates(app, city.actor("csup"))["actions"]}
    assert listed[record]["why_not"] == "in_production"
    err = _refusal(reversal.reverse, app, city.actor("csup"), record, "x")
    assert err.code == "not_reversible" and "production batch" in err.message("en")
    assert _card(app, out["card_number"]).ss_status == "in_production"
    assert _posted(app, replacement.FEE_INCOME) == 2000


def test_a_replacement_is_reversed_once_and_its_fee_refunded_once(city, app):
    card = city.issued_card()
    replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    record = _record_of(app, "replacement.apply")
    reversal.reverse(app, city.actor("csup"), record, "误操作")
    err = _refusal(reversal.reverse, app, city.actor("csup"), record, "再来一次")
    assert err.code == "not_reversible" and "reversed already" in err.message("en")
    err = _refusal(reversal.reverse, app, _second_supervisor(city, app), record, "另一位主管")
    assert err.code == "not_reversible"
    assert _posted(app, replacement.FEE_INCOME) == 0 and _posted(app, "cash:center-C01") == 0  # not -2000
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Reversal)) == 1
    assert _invariants_ok(app)


def test_a_clerk_and_another_centers_supervisor_may_not_reverse_a_replacement(city, app):
    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    record = _record_of(app, "replacement.apply")
    assert _refusal(reversal.reverse, app, city.actor("clerk"), record, "x").code == "forbidden"
    other = _second_supervisor(city, app, "csup_c02", "C02")
    err = _refusal(reversal.reverse, app, other, record, "x")
    assert err.code == "not_reversible" and "another service center" in err.message("en")
    assert _card(app, out["card_number"]).ss_status == "applied" and _posted(app, replacement.FEE_INCOME) == 2000


def test_the_console_lists_the_replacement_and_shows_the_refund_number_once_reversed(city, app, client):
    from sscard.core.roles import Channel
    from sscard.services import websession

    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    record = _record_of(app, "replacement.apply")
    client.cookies.set("sscard_staff", websession.staff_login(app, "csup", STAFF_PASSWORD, Channel.WINDOW).token)
    page = client.get("/console/reversals")
    assert page.status_code == 200 and f'id="action-{record}"' in page.text
    assert out["card_number"] not in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    key = re.search(rf'action="/console/reversals/{record}".*?name="op_key" value="([^"]+)"', page.text, re.S).group(1)
    form = {"csrf_token": csrf, "op_key": key, "reason": "持卡人改变主意"}
    step = client.post(f"/console/reversals/{record}", data=form)
    assert step.status_code == 200 and "退还工本费" in step.text
    assert _posted(app, replacement.FEE_INCOME) == 2000  # nothing before confirming
    sealed = re.search(r'name="sealed" value="([^"]+)"', step.text).group(1)
    done = client.post(f"/console/reversals/{record}", data={**form, "sealed": sealed, "confirmed": "1"})
    assert done.status_code == 200 and 'id="done"' in done.text, done.text
    assert f'id="refund-no">{out["receipt_no"]}R<' in done.text and "20.00" in done.text
    assert _posted(app, replacement.FEE_INCOME) == 0 and _card(app, out["card_number"]).ss_status == "cancelled"
    en = client.get("/console/reversals", cookies={"lang": "en"})
    assert "reversed already" in en.text


def test_today_only_a_replacement_of_yesterday_is_not_reversed(city, app, clock):
    card = city.issued_card()
    replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    record = _record_of(app, "replacement.apply")
    clock.advance(days=1)
    assert app.clock.today() != date.min
    assert "of today" in _refusal(reversal.reverse, app, city.actor("csup"), record, "x").message("en")
    assert _posted(app, replacement.FEE_INCOME) == 2000


def test_the_api_answers_the_refund_with_its_numbers_and_a_retry_refunds_nothing_more(city, app, client):
    from tests.support import bearer

    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    sup = city.token("csup")
    body = {"audit_record_id": _record_of(app, "replacement.apply"), "reason": "持卡人改变主意"}
    first = client.post("/api/v1/counter/reversals", json=body, headers=bearer(sup, "k-r1"))
    assert first.status_code == 201, first.text
    refund = first.json()["refund"]
    assert (refund["receipt_no"], refund["refund_receipt_no"]) == (out["receipt_no"], out["receipt_no"] + "R")
    assert (refund["amount_fen"], refund["method"]) == (2000, "cash") and out["card_number"] not in first.text
    retry = client.post("/api/v1/counter/reversals", json=body, headers=bearer(sup, "k-r1"))
    assert (retry.status_code, retry.json()) == (201, first.json())
    assert _posted(app, replacement.FEE_INCOME) == 0 and _posted(app, "cash:center-C01") == 0


def test_a_kept_pan_replacement_is_withdrawn_and_the_old_account_stays_the_old_cards(make_app):
    from tests.support import City

    app = make_app(bank={"keep_pan_on_replacement": True})
    city = City(app)
    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    assert out["pan_kept"]
    reversal.reverse(app, city.actor("csup"), _record_of(app, "replacement.apply"), "误操作")
    new, old = _card(app, out["card_number"]), _card(app, card.card_number)
    with app.db.session() as s:
        assert s.scalar(select(BankAccount.id).where(BankAccount.card_id == new.id)) is None  # it never had one
        account = s.scalar(select(BankAccount).where(BankAccount.pan == card.pan))
        assert (account.card_id, account.status) == (old.id, "not_activated")
    assert (new.ss_status, old.ss_status) == ("cancelled", "normal")
    assert _posted(app, replacement.FEE_INCOME) == 0 and _invariants_ok(app)


def test_a_replacement_whose_new_account_took_money_is_not_withdrawn(city, app):
    """A new card's account takes credits before activation (R3.5), as a first card's does: closing it with
    a pension in it would leave money nobody could pay out."""
    from sscard.core.roles import SYSTEM_ACTOR

    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    banking.credit_pension(app, SYSTEM_ACTOR, city.pan_of(out["card_number"]), 12_345, period="2026-12")
    record = _record_of(app, "replacement.apply")
    listed = {a["audit_record_id"]: a for a in reversal.candidates(app, city.actor("csup"))["actions"]}
    assert listed[record]["why_not"] == "money"
    assert _refusal(reversal.reverse, app, city.actor("csup"), record, "x").code == "not_reversible"
    assert _card(app, out["card_number"]).ss_status == "applied" and _posted(app, replacement.FEE_INCOME) == 2000


def test_a_card_fee_is_not_refunded_to_an_old_account_closed_since(city, app):
    card = city.issued_card()
    teller = city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, "730418", "730418", cardholder_in_person=True)
    banking.deposit(app, teller, card.pan, 5000)
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id,
                            payment="card", pin="730418")
    banking.close(app, teller, card.pan, card.citizen_id)
    record = _record_of(app, "replacement.apply")
    listed = {a["audit_record_id"]: a for a in reversal.candidates(app, city.actor("csup"))["actions"]}
    assert listed[record]["why_not"] == "fee_account"
    err = _refusal(reversal.reverse, app, city.actor("csup"), record, "x")
    assert err.code == "not_reversible" and "takes no credit" in err.message("en")
    assert _card(app, out["card_number"]).ss_status == "applied" and _posted(app, replacement.FEE_INCOME) == 2000
    assert _invariants_ok(app)


def test_the_day_report_nets_the_refunded_fees_out_of_what_the_drawer_took(city, app, client):
    import csv
    import io

    from sscard.core.roles import Channel
    from sscard.services import reports, websession

    first, second = city.issued_card(), city.issued_card("李四")
    clerk = city.actor("clerk")
    replacement.apply(app, clerk, first.card_number, "damaged", first.citizen_id, payment="cash")
    reversal.reverse(app, city.actor("csup"), _record_of(app, "replacement.apply"), "持卡人改变主意")
    replacement.apply(app, clerk, second.card_number, "damaged", second.citizen_id, payment="cash")
    fees = reports.center_day(app, city.actor("csup"))["fees"]
    assert (fees["collected_fen"], fees["refunded_fen"], fees["net_fen"], fees["refunds"]) == (4000, 2000, 2000, 1)
    assert fees["refunded_by_method"] == {"cash": {"count": 1, "amount_fen": 2000}}
    assert fees["net_fen"] == -_posted(app, "cash:center-C01")  # what the drawer holds
    rows = list(csv.reader(io.StringIO(reports.to_csv(reports.center_day(app, city.actor("csup")), "en"))))
    assert ["fees", "", "refunded (reversed)", "1", "-20.00", "refunded"] in rows
    assert ["fees", "", "net", "", "20.00", "net"] in rows
    client.cookies.set("sscard_staff", websession.staff_login(app, "csup", STAFF_PASSWORD, Channel.WINDOW).token)
    page = client.get("/console/report")
    assert 'id="fees-refunded">-20.00<' in page.text and 'id="fees-net">20.00<' in page.text


def test_a_refunded_fees_receipt_is_kept_and_its_reprint_says_refunded_with_the_refund_number(city, app):
    from sscard.documents.receipts import fee_receipt_lines

    card = city.issued_card()
    out = replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash")
    before = replacement.receipt(app, city.actor("csup"), out["receipt_no"])
    assert before["refund"] is None and not any(line[1] == "Refunded" for line in fee_receipt_lines(before))
    reversal.reverse(app, city.actor("csup"), _record_of(app, "replacement.apply"), "持卡人改变主意")
    after = replacement.receipt(app, city.actor("csup"), out["receipt_no"])
    assert (after["amount_fen"], after["method"]) == (2000, "cash")  # as issued
    assert after["refund"]["refund_receipt_no"] == out["receipt_no"] + "R"
    line = next(line for line in fee_receipt_lines(after) if line[1] == "Refunded")
    assert line[0] == "已退款" and line[2].startswith(out["receipt_no"] + "R")
