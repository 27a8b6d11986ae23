"""The bank side's rules through the services: activation, PIN, cash, transfers, payments, limits, states."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.core.identifiers import mask_pan
from sscard.core.roles import CLI_OPERATOR, SYSTEM_ACTOR, Channel
from sscard.models.foundation import AuditRecord, BankAccount, Card, Person, ServiceCenter
from sscard.models.ledger import LedgerTransfer
from sscard.services import banking, cards, enrolment, ledger, loss, production
from sscard.services.operation import Op

from .helpers import PIN, activated, balance_of, invariants, terminal


def code_of(excinfo) -> str:
    return excinfo.value.code


# ---------------------------------------------------------------- activation


def test_activation_sets_the_pin_and_opens_a_ledger_account(city, app):
    card = city.issued_card()
    out = banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    assert out["status"] == "active" and out["balance_fen"] == 0
    with app.db.session() as s:
        account = s.scalar(select(BankAccount).where(BankAccount.pan == card.pan))
        assert account.ledger_account_id is not None
        assert PIN not in account.pin_digest
    with app.db.session() as s:
        details = " ".join(str(r.detail) for r in s.scalars(select(AuditRecord)))
    assert PIN not in details


def test_activation_at_another_banks_outlet_is_refused(city, app):
    card = city.issued_card()
    with pytest.raises(SscardError) as e:
        banking.activate(app, city.actor("teller_jsb"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    assert code_of(e) == "wrong_bank"


@pytest.mark.parametrize("pin,again,code", [
    ("111111", "111111", "weak_password"),
    ("123456", "123456", "weak_password"),
    ("800517", "800517", "weak_password"),  # the birth date YYMMDD (1980-05-17)
    ("147258", "147259", "password_mismatch"),
])
def test_activation_refuses_weak_or_mistyped_pins(city, app, pin, again, code):
    card = city.issued_card()
    with pytest.raises(SscardError) as e:
        banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, pin, again, cardholder_in_person=True)
    assert code_of(e) == code


def test_activation_needs_the_cardholders_id(city, app):
    card = city.issued_card()
    other = city.issued_card(name="李四")
    with pytest.raises(SscardError) as e:
        banking.activate(app, city.actor("teller"), card.pan, other.citizen_id, PIN, PIN, cardholder_in_person=True)
    assert code_of(e) == "identity_mismatch"


def test_activation_window_expires_and_a_supervisor_extends_it_once(city, app, clock):
    card = city.issued_card()
    clock.advance(days=61)
    with pytest.raises(SscardError) as e:
        banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    assert code_of(e) == "activation_window_expired"
    with pytest.raises(SscardError) as e:
        banking.extend_activation(app, city.actor("teller"), card.pan, 30)
    assert code_of(e) == "forbidden"
    with pytest.raises(SscardError) as e:
        banking.extend_activation(app, city.actor("bsup"), card.pan, 61, "hospitalised")
    assert code_of(e) == "extension_too_long"
    out = banking.extend_activation(app, city.actor("bsup"), card.pan, 30, "hospitalised")
    assert out["days"] == 30
    with pytest.raises(SscardError) as e:
        banking.extend_activation(app, city.actor("bsup"), card.pan, 10, "hospitalised")
    assert code_of(e) == "activation_already_extended"
    assert banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)["status"] == "active"


def test_activation_window_follows_policy(make_app, clock):
    from tests.support import City

    app = make_app(activation={"window_days": 10, "max_extension_days": 5})
    city = City(app)
    card = city.issued_card()
    clock.advance(days=11)
    with pytest.raises(SscardError) as e:
        banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    assert code_of(e) == "activation_window_expired"
    with pytest.raises(SscardError):
        banking.extend_activation(app, city.actor("bsup"), card.pan, 6, "abroad")
    banking.extend_activation(app, city.actor("bsup"), card.pan, reason="abroad")
    banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)


def test_a_cancelled_cards_activation_window_is_not_extended(city, app, clock):
    """Session 25's rules probe: a supervisor extended the activation window of a card already cancelled
    (replaced before it was ever activated), which activation then refuses: nothing to extend."""
    card = city.issued_card()
    _number, new_pan = _replacement_for(city, app, card)  # collecting the new card cancels the old one
    clock.advance(days=61)
    with pytest.raises(SscardError) as e:
        banking.extend_activation(app, city.actor("bsup"), card.pan, 30, "hospitalised")
    assert code_of(e) == "card_cancelled"
    with app.db.session() as s:
        assert s.scalar(select(BankAccount.window_extended).where(BankAccount.pan == card.pan)) in (False, None)


def test_a_supervisors_override_says_why_on_every_channel(city, app):
    """A freeze, its lifting and a longer activation window are a supervisor's overrides: the console's form
    always asked why, the API took an empty reason (s25-authz probe). Refused reason_required, nothing done."""
    a, fresh = activated(city, opening_fen=1_000), city.issued_card()
    bsup = city.actor("bsup")
    for call in (lambda: banking.freeze(app, bsup, a.pan, "  "), lambda: banking.unfreeze(app, bsup, a.pan),
                 lambda: banking.extend_activation(app, bsup, fresh.pan, 10, "")):
        with pytest.raises(SscardError) as e:
            call()
        assert code_of(e) == "reason_required"
    assert banking.statement(app, bsup, a.pan)["status"] == "active"
    banking.freeze(app, bsup, a.pan, "court order")
    assert banking.statement(app, bsup, a.pan)["status"] == "frozen"


def _replacement_for(city, app, old):
    """A replacement card for `old`, produced and collected through the services."""
    with app.db.session() as s:
        op = Op(app, s, CLI_OPERATOR, "test.replace", None)
        old_card = s.scalar(select(Card).where(Card.card_number == old.card_number))
        person = s.get(Person, old_card.person_id)
        from sscard.models.foundation import Bank

        center = s.scalar(select(ServiceCenter).where(ServiceCenter.code == "C01"))
        new, _account = enrolment.create_card(op, person, s.get(Bank, old_card.bank_id), center.id, "lost",
                                              replaces=old_card)
        number = new.card_number
    clerk = city.actor("clerk")
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    cards.collect_card(app, clerk, number, old.citizen_id)
    return number, city.pan_of(number)


def test_activating_a_replacement_moves_the_old_balance_and_closes_the_old_account(city, app):
    old = activated(city, opening_fen=123_456)
    pos = terminal(city, "POS-1")
    banking.authorize_payment(app, pos, old.pan, 456, PIN)  # a hold: voided before the move
    loss.report_oral_loss(app, city.cardholder(old, Channel.HOTLINE_BANK), old.pan)
    _number, new_pan = _replacement_for(city, app, old)
    out = banking.activate(app, city.actor("teller"), new_pan, old.citizen_id, "258147", "258147", cardholder_in_person=True)
    assert out["balance_fen"] == 123_456
    assert out["moved_from_old_account"]["amount_fen"] == 123_456
    assert balance_of(app, old.pan) == 0
    with app.db.session() as s:
        assert s.scalar(select(BankAccount.status).where(BankAccount.pan == old.pan)) == "closed"
    with pytest.raises(SscardError) as e:
        banking.deposit(app, city.actor("teller"), old.pan, 100)
    assert code_of(e) == "account_closed"
    assert invariants(app)["ok"]


# ---------------------------------------------------------------- PIN


def test_three_wrong_pins_lock_until_next_shanghai_midnight(city, app, clock):
    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    for expected in ("wrong_pin", "wrong_pin", "pin_locked"):
        with pytest.raises(SscardError) as e:
            banking.withdraw(app, atm, card.pan, 100, "999999")
        assert code_of(e) == expected
    with pytest.raises(SscardError) as e:  # the right PIN does not help while locked
        banking.withdraw(app, atm, card.pan, 100, PIN)
    assert code_of(e) == "pin_locked"
    with app.db.session() as s:
        refusals = s.scalars(select(AuditRecord.result).where(AuditRecord.operation == "bank.withdraw")).all()
    assert refusals.count("wrong_pin") == 2
    clock.advance(hours=22)  # 10:00 Shanghai + 22 h = 08:00 next day: past midnight
    assert banking.withdraw(app, atm, card.pan, 100, PIN)["balance_fen"] == 9_900


def test_pin_lock_until_reset_policy(make_app, clock):
    from tests.support import City

    app = make_app(bank_pin={"lock": "until_reset"})
    city = City(app)
    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    for _ in range(3):
        with pytest.raises(SscardError):
            banking.withdraw(app, atm, card.pan, 100, "999999")
    clock.advance(days=3)
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, card.pan, 100, PIN)
    assert code_of(e) == "pin_locked"
    assert e.value.to_dict()["reset_required"] is True and "locked_until" not in e.value.to_dict()
    banking.reset_pin(app, city.actor("teller"), card.pan, card.citizen_id, "369258", "369258", cardholder_in_person=True)
    assert banking.withdraw(app, atm, card.pan, 100, "369258")["balance_fen"] == 9_900


def test_a_right_pin_clears_earlier_misses(city, app):
    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    for _ in range(2):
        with pytest.raises(SscardError):
            banking.withdraw(app, atm, card.pan, 100, "999999")
    banking.withdraw(app, atm, card.pan, 100, PIN)
    for _ in range(2):
        with pytest.raises(SscardError) as e:
            banking.withdraw(app, atm, card.pan, 100, "999999")
        assert code_of(e) == "wrong_pin"


def test_pin_change_needs_the_old_pin_and_refuses_weak_ones(city, app):
    card = activated(city, opening_fen=1_000)
    atm = terminal(city, "ATM-GSB-1")
    with pytest.raises(SscardError) as e:
        banking.change_pin(app, atm, card.pan, "000001", "369258", "369258")
    assert code_of(e) == "wrong_pin"
    with pytest.raises(SscardError) as e:
        banking.change_pin(app, atm, card.pan, PIN, "654321", "654321")
    assert code_of(e) == "weak_password"
    banking.change_pin(app, atm, card.pan, PIN, "369258", "369258")
    with pytest.raises(SscardError):
        banking.withdraw(app, atm, card.pan, 100, PIN)
    assert banking.withdraw(app, atm, card.pan, 100, "369258")["balance_fen"] == 900


# ---------------------------------------------------------------- money


def test_cash_deposit_and_withdrawal_at_a_counter_and_an_atm(city, app):
    card = activated(city)
    teller, atm = city.actor("teller"), terminal(city, "ATM-GSB-1")
    banking.deposit(app, teller, card.pan, 50_000)
    banking.deposit(app, atm, card.pan, 10_000)
    banking.withdraw(app, teller, card.pan, 20_000, PIN)
    out = banking.withdraw(app, atm, card.pan, 5_000, PIN)
    assert out["balance_fen"] == 35_000
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, card.pan, 35_001, PIN)
    assert code_of(e) == "insufficient_funds"
    report = invariants(app)
    assert report["ok"] and report["sum_posted_fen"] == 0


def test_atm_limits_per_transaction_and_per_day(city, app, clock):
    card = activated(city, opening_fen=5_000_000)
    atm = terminal(city, "ATM-GSB-1")
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, card.pan, 250_001, PIN)
    assert code_of(e) == "limit_exceeded"
    for _ in range(8):
        banking.withdraw(app, atm, card.pan, 250_000, PIN)
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, card.pan, 100, PIN)
    assert code_of(e) == "limit_exceeded"
    banking.withdraw(app, city.actor("teller"), card.pan, 100_000, PIN)  # the counter has no such limit
    clock.advance(days=1)
    banking.withdraw(app, atm, card.pan, 250_000, PIN)


def test_limits_follow_policy(make_app):
    from tests.support import City

    app = make_app(limits={"payment_per_day_fen": 1_000, "transfer_per_day_fen": 500})
    city = City(app)
    a = activated(city, opening_fen=100_000)
    b = activated(city, name="李四")
    pos = terminal(city, "POS-1")
    banking.purchase(app, pos, a.pan, 1_000, PIN)
    with pytest.raises(SscardError) as e:
        banking.purchase(app, pos, a.pan, 1, PIN)
    assert code_of(e) == "limit_exceeded"
    with pytest.raises(SscardError) as e:
        banking.transfer(app, city.actor("teller"), a.pan, b.pan, 501, PIN)
    assert code_of(e) == "limit_exceeded"


def test_transfer_to_another_bank_goes_through_both_clearing_accounts(city, app):
    a = activated(city, opening_fen=100_000)
    b = activated(city, name="李四", bank="JSB")
    c = activated(city, name="王五")
    atm = terminal(city, "ATM-GSB-1")
    banking.transfer(app, atm, a.pan, b.pan, 30_000, PIN)
    banking.transfer(app, atm, a.pan, c.pan, 20_000, PIN)
    assert (balance_of(app, a.pan), balance_of(app, b.pan), balance_of(app, c.pan)) == (50_000, 30_000, 20_000)
    with app.db.session() as s:
        gsb = ledger.balance(s, ledger.system_account(s, "clearing:GSB", now=app.clock.now())).posted
        jsb = ledger.balance(s, ledger.system_account(s, "clearing:JSB", now=app.clock.now())).posted
        chains = s.scalars(select(LedgerTransfer.chain).where(LedgerTransfer.code == "transfer")).all()
    assert (gsb, jsb) == (30_000, -30_000)
    assert len([c for c in chains if c]) == 2 and len(set(c for c in chains if c)) == 1
    assert invariants(app)["ok"]


def test_lost_or_frozen_accounts_refuse_debits_and_accept_credits(city, app, clock):
    a = activated(city, opening_fen=10_000)
    b = activated(city, name="李四", opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    loss.report_oral_loss(app, city.cardholder(a, Channel.HOTLINE_BANK), a.pan)
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, a.pan, 100, PIN)
    assert code_of(e) == "account_lost"
    banking.transfer(app, atm, b.pan, a.pan, 1_000, PIN)  # transfers in are accepted
    banking.credit_pension(app, SYSTEM_ACTOR, a.pan, 2_000, "2026-01")
    assert balance_of(app, a.pan) == 13_000
    clock.advance(days=6)  # the oral loss lapses: debits work again
    banking.withdraw(app, atm, a.pan, 100, PIN)
    banking.freeze(app, city.actor("bsup"), a.pan, "court order")
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, a.pan, 100, PIN)
    assert code_of(e) == "account_frozen"
    banking.deposit(app, city.actor("teller"), a.pan, 100)
    with pytest.raises(SscardError) as e:
        banking.unfreeze(app, city.actor("teller"), a.pan)
    assert code_of(e) == "forbidden"
    banking.unfreeze(app, city.actor("bsup"), a.pan, "order lifted")
    banking.withdraw(app, atm, a.pan, 100, PIN)


def test_not_activated_accounts_take_pensions_but_refuse_debits(city, app):
    card = city.issued_card()
    banking.credit_pension(app, SYSTEM_ACTOR, card.pan, 5_000, "2026-01")
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, terminal(city, "ATM-GSB-1"), card.pan, 100, PIN)
    assert code_of(e) == "not_activated"
    banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, PIN, PIN, cardholder_in_person=True)
    assert balance_of(app, card.pan) == 5_000


def test_two_phase_payment_capture_void_and_expiry(city, app, clock):
    card = activated(city, opening_fen=10_000)
    pos = terminal(city, "POS-1")
    held = banking.authorize_payment(app, pos, card.pan, 6_000, PIN, timeout_seconds=3600)
    assert held["available_fen"] == 4_000 and held["balance_fen"] == 10_000
    with pytest.raises(SscardError) as e:
        banking.purchase(app, pos, card.pan, 4_001, PIN)
    assert code_of(e) == "insufficient_funds"
    posted = banking.capture_payment(app, pos, held["transfer_id"], 5_000)
    assert posted["amount_fen"] == 5_000 and balance_of(app, card.pan) == 5_000
    with pytest.raises(SscardError) as e:
        banking.void_payment(app, pos, held["transfer_id"])
    assert code_of(e) == "pending_already_resolved"
    second = banking.authorize_payment(app, pos, card.pan, 1_000, PIN)
    banking.void_payment(app, pos, second["transfer_id"])
    third = banking.authorize_payment(app, pos, card.pan, 5_000, PIN, timeout_seconds=60)
    clock.advance(seconds=61)
    with pytest.raises(SscardError) as e:
        banking.capture_payment(app, pos, third["transfer_id"])
    assert code_of(e) == "pending_expired"
    assert banking.purchase(app, pos, card.pan, 5_000, PIN)["balance_fen"] == 0
    assert invariants(app)["ok"]


def test_expired_holds_are_swept_by_the_clock_and_release_the_daily_limit(make_app, clock):
    from tests.support import City

    app = make_app(limits={"payment_per_day_fen": 5_000})
    city = City(app)
    card = activated(city, opening_fen=10_000)
    pos = terminal(city, "POS-1")
    banking.authorize_payment(app, pos, card.pan, 5_000, PIN, timeout_seconds=600)
    clock.advance(minutes=11)
    assert banking.expire_pending(app, SYSTEM_ACTOR)["expired"] == 1
    assert banking.purchase(app, pos, card.pan, 5_000, PIN)["balance_fen"] == 5_000


def test_a_hold_taken_before_a_loss_or_a_freeze_is_not_posted_after_it_and_can_still_be_voided(city, app, clock):
    """RULES §3: no debit while an account is lost or frozen. The capture is when the money leaves the card, so
    a hold authorized before an oral loss (or a freeze) is refused at capture, and nothing moves: the hold stays
    held, the POS can void it, and once the loss lapses the next hold is captured as usual."""
    card = activated(city, opening_fen=10_000)
    pos = terminal(city, "POS-1")
    held = banking.authorize_payment(app, pos, card.pan, 6_000, PIN, timeout_seconds=3600)
    loss.report_oral_loss(app, city.cardholder(card, Channel.HOTLINE_BANK), card.pan)
    with pytest.raises(SscardError) as e:
        banking.capture_payment(app, pos, held["transfer_id"])
    assert code_of(e) == "account_lost"
    assert balance_of(app, card.pan) == 10_000  # nothing posted: the 60.00 is still only held
    with app.db.session() as s:
        assert s.scalar(select(LedgerTransfer.id).where(LedgerTransfer.pending_id.is_not(None))) is None
    assert banking.void_payment(app, pos, held["transfer_id"])["amount_fen"] == 6_000
    clock.advance(days=6)  # the oral loss lapses
    again = banking.authorize_payment(app, pos, card.pan, 1_000, PIN)
    banking.freeze(app, city.actor("bsup"), card.pan, "court order")
    with pytest.raises(SscardError) as e:
        banking.capture_payment(app, pos, again["transfer_id"], 500)
    assert code_of(e) == "account_frozen"
    banking.unfreeze(app, city.actor("bsup"), card.pan, "order lifted")
    assert banking.capture_payment(app, pos, again["transfer_id"], 500)["amount_fen"] == 500
    assert balance_of(app, card.pan) == 9_500
    assert invariants(app)["ok"]


def test_another_terminal_cannot_capture_a_hold(city, app):
    from .helpers import add_terminal

    card = activated(city, opening_fen=10_000)
    pos = terminal(city, "POS-1")
    other = add_terminal(city, "POS-2", "pos", bank_code="GSB", merchant_name="another shop")
    held = banking.authorize_payment(app, pos, card.pan, 1_000, PIN)
    with pytest.raises(SscardError) as e:
        banking.capture_payment(app, other, held["transfer_id"])
    assert code_of(e) == "pending_not_found"


def test_atm_cannot_take_payments_and_pos_cannot_dispense_cash(city, app):
    card = activated(city, opening_fen=10_000)
    with pytest.raises(SscardError) as e:
        banking.purchase(app, terminal(city, "ATM-GSB-1"), card.pan, 100, PIN)
    assert code_of(e) == "wrong_terminal_kind"
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, terminal(city, "POS-1"), card.pan, 100, PIN)
    assert code_of(e) == "wrong_terminal_kind"


def test_close_voids_holds_pays_out_cash_and_refuses_later_credits(city, app):
    card = activated(city, opening_fen=10_000)
    banking.authorize_payment(app, terminal(city, "POS-1"), card.pan, 3_000, PIN)
    out = banking.close(app, city.actor("teller"), card.pan, card.citizen_id)
    assert out["paid_out_fen"] == 10_000 and out["status"] == "closed"
    with pytest.raises(SscardError) as e:
        banking.credit_pension(app, SYSTEM_ACTOR, card.pan, 100)
    assert code_of(e) == "account_closed"
    assert invariants(app)["ok"]


def test_retry_with_the_same_key_answers_the_first_answer_once(city, app):
    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    first = banking.withdraw(app, atm, card.pan, 1_000, PIN, idempotency_key="w-1")
    again = banking.withdraw(app, atm, card.pan, 1_000, PIN, idempotency_key="w-1")
    assert first == again and balance_of(app, card.pan) == 9_000
    with pytest.raises(SscardError) as e:
        banking.withdraw(app, atm, card.pan, 2_000, PIN, idempotency_key="w-1")
    assert code_of(e) == "idempotency_key_reused"


def test_statement_pages_history_newest_first(city, app):
    card = activated(city, opening_fen=10_000)
    teller = city.actor("teller")
    for i in range(5):
        banking.deposit(app, teller, card.pan, 100 + i)
    page1 = banking.statement(app, teller, card.pan, limit=4)
    assert [e["amount_fen"] for e in page1["entries"]] == [104, 103, 102, 101]
    page2 = banking.statement(app, teller, card.pan, limit=4, before_id=page1["next_before_id"])
    assert [e["amount_fen"] for e in page2["entries"]] == [100, 10_000]
    assert page2["next_before_id"] is None and page1["balance_fen"] == 10_510
    holder = banking.statement(app, city.cardholder(card), card.pan)
    assert holder["balance_fen"] == 10_510
    other = city.issued_card(name="李四")
    with pytest.raises(SscardError):
        banking.statement(app, city.cardholder(other), card.pan)


def test_statement_names_each_entrys_other_side_masked_for_customers(city, app):
    """Each entry's counterparty, joined to the page of transfers: a customer's masked PAN on both sides
    of a transfer within the bank, the clearing account of a transfer to another bank, the cash point of a
    deposit; newest first, across pages."""
    a = activated(city, opening_fen=100_000)
    b = activated(city, name="李四", bank="JSB")
    c = activated(city, name="王五")
    atm = terminal(city, "ATM-GSB-1")
    teller = city.actor("teller")
    banking.transfer(app, atm, a.pan, c.pan, 2_000, PIN)
    banking.transfer(app, atm, a.pan, b.pan, 3_000, PIN)
    banking.transfer(app, atm, c.pan, a.pan, 500, PIN)
    banking.deposit(app, teller, a.pan, 700)
    first = banking.statement(app, teller, a.pan, limit=3)
    rest = banking.statement(app, teller, a.pan, limit=3, before_id=first["next_before_id"])
    seen = [(e["direction"], e["amount_fen"], e["counterparty"]) for e in first["entries"] + rest["entries"]]
    assert seen[:4] == [("credit", 700, seen[0][2]), ("credit", 500, mask_pan(c.pan)),
                        ("debit", 3_000, seen[2][2]), ("debit", 2_000, mask_pan(c.pan))]
    assert seen[0][2].startswith("cash:") and seen[2][2] == "clearing:GSB"
    assert seen[4][:2] == ("credit", 100_000)  # the opening deposit
    assert all(c.pan not in str(e) and a.pan not in str(e) for e in first["entries"] + rest["entries"])
    theirs = banking.statement(app, teller, c.pan, limit=5)["entries"]
    assert [(e["direction"], e["amount_fen"], e["counterparty"]) for e in theirs][:2] == [
        ("debit", 500, mask_pan(a.pan)), ("credit", 2_000, mask_pan(a.pan))]


def test_ledger_transfers_are_immutable(city, app):
    activated(city, opening_fen=10_000)
    with pytest.raises(Exception, match="immutable"):
        with app.db.session() as s:
            s.execute(LedgerTransfer.__table__.update().values(amount=1))
    with pytest.raises(Exception, match="immutable"):
        with app.db.session() as s:
            s.execute(LedgerTransfer.__table__.delete())


def test_system_account_is_get_or_create_for_other_areas(city, app):
    with app.db.session() as s:
        op = Op(app, s, SYSTEM_ACTOR, "test", None)
        first = ledger.system_account(op, "agency_fee_income")
        assert ledger.system_account(op, "agency_fee_income") == first
    card = activated(city, opening_fen=5_000)
    with app.db.session() as s:
        op = Op(app, s, SYSTEM_ACTOR, "test", None)
        lid = s.scalar(select(BankAccount.ledger_account_id).where(BankAccount.pan == card.pan))
        ledger.transfer(op, lid, ledger.system_account(op, "agency_fee_income"), 2_000, "fee")
    assert balance_of(app, card.pan) == 3_000
    assert invariants(app)["ok"]


def test_linked_transfers_are_all_or_nothing(city, app):
    card = activated(city, opening_fen=1_000)
    with app.db.session() as s:
        op = Op(app, s, SYSTEM_ACTOR, "test", None)
        lid = s.scalar(select(BankAccount.ledger_account_id).where(BankAccount.pan == card.pan))
        fee = ledger.system_account(op, "agency_fee_income")
        with pytest.raises(SscardError) as e:
            ledger.linked(op, [ledger.Spec(lid, fee, 600, "fee"), ledger.Spec(lid, fee, 600, "fee")])
        assert code_of(e) == "insufficient_funds"
    assert balance_of(app, card.pan) == 1_000
    with app.db.session() as s:
        assert s.scalar(select(LedgerTransfer.id).where(LedgerTransfer.code == "fee")) is None


def test_customer_balance_can_never_go_negative_even_bypassing_checks(city, app):
    card = activated(city, opening_fen=1_000)
    from sscard.models.ledger import LedgerAccount

    with pytest.raises(Exception):  # noqa: B017  the database's CHECK constraint
        with app.db.session() as s:
            lid = s.scalar(select(BankAccount.ledger_account_id).where(BankAccount.pan == card.pan))
            s.execute(LedgerAccount.__table__.update().where(LedgerAccount.id == lid)
                      .values(debits_posted=LedgerAccount.debits_posted + 1_001))


def test_timeout_is_bounded(city, app):
    card = activated(city, opening_fen=1_000)
    with pytest.raises(SscardError):
        banking.authorize_payment(app, terminal(city, "POS-1"), card.pan, 100, PIN,
                                  timeout_seconds=int(timedelta(days=31).total_seconds()))


def test_a_rolled_back_system_account_is_not_remembered(app):
    from sscard.models.ledger import LedgerAccount

    with pytest.raises(RuntimeError):
        with app.db.session() as s:
            op = Op(app, s, SYSTEM_ACTOR, "test", None)
            ledger.system_account(op, "merchant:ghost")
            ledger.system_account(op, "merchant:ghost")  # found again, in the same (doomed) transaction
            raise RuntimeError("roll back")
    with app.db.session() as s:
        op = Op(app, s, SYSTEM_ACTOR, "test", None)
        assert s.get(LedgerAccount, ledger.system_account(op, "merchant:ghost")) is not None


def test_a_social_security_kiosk_cannot_move_bank_money(city, app):
    a = activated(city, opening_fen=1_000)
    b = activated(city, name="李四")
    kiosk = terminal(city, "KIOSK-1")
    with pytest.raises(SscardError) as e:
        banking.transfer(app, kiosk, a.pan, b.pan, 100, PIN)
    assert code_of(e) == "wrong_terminal_kind"
    with pytest.raises(SscardError) as e:
        banking.change_pin(app, kiosk, a.pan, PIN, "369258", "369258")
    assert code_of(e) == "wrong_terminal_kind"
