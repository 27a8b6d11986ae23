"""A terminal's reversal of its own withdrawal or payment (RULES R10.13): ISO 8583 0400/0420 -> 0410/0430
over a real TCP socket, and the REST terminal API's /terminal/reversals, on both databases."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import select

from sscard.core import terminal_keys
from sscard.core.roles import Channel
from sscard.models.foundation import AuditRecord
from sscard.models.ledger import LedgerTransfer
from sscard.services import banking, batching, loss
from tests.iso8583.conftest import terminal_of
from tests.ledger.helpers import (
    PIN,
    activated,
    add_terminal,
    balance_of,
    invariants,
    terminal,
    terminal_token,
)
from tests.support import bearer

pytestmark = pytest.mark.keys_required


def _usage(app, pan: str) -> int:
    """The card's ATM withdrawals counted against today's limit."""
    from sscard.core.clock import shanghai_day
    from sscard.models.foundation import BankAccount
    from sscard.models.ledger import LimitUsage

    with app.db.session() as s:
        ledger_id = s.scalar(select(BankAccount.ledger_account_id).where(BankAccount.pan == pan))
        used = s.scalar(select(LimitUsage.used_fen).where(LimitUsage.ledger_account_id == ledger_id,
                                                          LimitUsage.day == shanghai_day(app.clock.now()),
                                                          LimitUsage.kind == "atm_withdrawal"))
    return used or 0


def _reversals(app) -> list[LedgerTransfer]:
    with app.db.session() as s:
        return list(s.scalars(select(LedgerTransfer).where(LedgerTransfer.code == "reversal")))


def test_an_atm_whose_cash_did_not_come_out_reverses_it_and_balance_and_daily_limit_come_back(city, app, atm):
    card = activated(city, opening_fen=300_000)
    withdrawal = atm.message("withdraw", card.pan, 200_000, PIN)
    assert atm.send(withdrawal)["39"] == "00"
    assert balance_of(app, card.pan) == 100_000 and _usage(app, card.pan) == 200_000
    answer = atm.send(atm.reversal(withdrawal))  # the dispenser jammed: nothing came out
    assert (answer["t"], answer["39"]) == ("0410", "00") and answer["11"] == f"{atm.stan:06d}"
    assert balance_of(app, card.pan) == 300_000 and _usage(app, card.pan) == 0
    (back,) = _reversals(app)
    with app.db.session() as s:
        original = s.scalar(select(LedgerTransfer).where(LedgerTransfer.code == "withdrawal"))
        records = s.scalars(select(AuditRecord).where(AuditRecord.operation == "bank.reverse_terminal")).all()
    assert (back.amount, back.ref, back.debit_account_id, back.credit_account_id) == (
        200_000, original.transfer_id, original.credit_account_id, original.debit_account_id)
    (record,) = records  # one record, naming the original
    assert (record.actor_id, record.result, record.object_id) == ("ATM00001", "ok", card.pan)
    assert record.detail["original_transfer_id"] == original.transfer_id and record.detail["amount_fen"] == 200_000
    assert invariants(app)["ok"]


def test_a_partial_dispense_in_field_95_gives_back_only_what_did_not_come_out(city, app, atm):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 50_000, PIN)
    assert atm.send(withdrawal)["39"] == "00"
    answer = atm.send(atm.reversal(withdrawal, dispensed_fen=30_000))
    assert answer["39"] == "00"
    assert balance_of(app, card.pan) == 70_000 and _usage(app, card.pan) == 30_000
    assert [t.amount for t in _reversals(app)] == [20_000]
    assert invariants(app)["ok"]


@pytest.mark.parametrize("dispensed", [50_000, 60_000])
def test_a_dispensed_amount_not_below_the_original_is_refused_13_and_moves_nothing(city, app, atm, dispensed):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 50_000, PIN)
    assert atm.send(withdrawal)["39"] == "00"
    assert atm.send(atm.reversal(withdrawal, dispensed_fen=dispensed))["39"] == "13"
    assert atm.send(atm.reversal(withdrawal | {"4": f"{40_000:012d}"}))["39"] == "13"  # not the original's amount
    assert atm.send(atm.reversal(withdrawal) | {"49": "840"})["39"] == "13"  # another currency
    assert balance_of(app, card.pan) == 50_000 and _reversals(app) == []


def test_a_repeated_advice_is_acknowledged_each_time_and_moves_the_money_once(city, app, atm):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 40_000, PIN)
    assert atm.send(withdrawal)["39"] == "00"
    advice = atm.reversal(withdrawal, advice=True)
    answers = [atm.send(advice), atm.send(advice | {"t": "0421"}), atm.send(advice | {"t": "0421"})]
    assert [(a["t"], a["39"]) for a in answers] == [("0430", "00")] * 3
    # a second reversal of the same original under another STAN: already reversed, nothing more
    assert atm.send(atm.reversal(withdrawal))["39"] == "00"
    assert balance_of(app, card.pan) == 100_000 and len(_reversals(app)) == 1
    with app.db.session() as s:
        records = s.scalars(select(AuditRecord).where(AuditRecord.operation == "bank.reverse_terminal")).all()
    assert [bool(r.detail.get("already_reversed")) for r in records] == [False, True]
    assert invariants(app)["ok"]


def test_another_terminal_cannot_reverse_and_is_told_nothing_of_the_original(city, app, atm, gateway):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 40_000, PIN)
    assert atm.send(withdrawal)["39"] == "00"
    add_terminal(city, "ATM00002", "atm", outlet_code="GSB-001")  # the same bank's
    add_terminal(city, "JSBATM01", "atm", outlet_code="JSB-001")  # another bank's
    for code in ("ATM00002", "JSBATM01"):
        other = terminal_of(city, gateway, code)
        other.stan = 500  # (its own trace numbers)
        try:
            found = other.send(other.reversal(withdrawal))
            missing = other.send(other.reversal(withdrawal | {"11": "999999"}))  # an original that never was
            assert found["39"] == missing["39"] == "25", code
        finally:
            other.close()
    assert balance_of(app, card.pan) == 60_000 and _reversals(app) == []
    # nor the staff: a reversal is a terminal's
    from sscard.core.errors import SscardError

    with pytest.raises(SscardError) as refused:
        banking.reverse_terminal(app, city.actor("teller"), f"iso8583:{withdrawal['7']}:{withdrawal['11']}",
                                 idempotency_key="t-1")
    assert refused.value.code == "forbidden"
    # and the ATM that made it still can
    assert atm.send(atm.reversal(withdrawal))["39"] == "00" and balance_of(app, card.pan) == 100_000


def test_a_reversal_that_overtakes_its_original_makes_the_original_refused_when_it_comes(city, app, atm):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 40_000, PIN)
    assert atm.send(atm.reversal(withdrawal))["39"] == "25"  # a request: unable to locate it
    late = atm.send(withdrawal)
    assert late["39"] not in ("00", "94") and "38" not in late
    assert atm.send(withdrawal | {"t": "0201"})["39"] == late["39"]  # and its repeats
    assert balance_of(app, card.pan) == 100_000
    advice_first = atm.message("withdraw", card.pan, 10_000, PIN)
    assert atm.send(atm.reversal(advice_first, advice=True))[("39")] == "00"  # an advice: acknowledged
    assert atm.send(advice_first)["39"] == late["39"]
    assert balance_of(app, card.pan) == 100_000 and _reversals(app) == []
    with app.db.session() as s:
        records = s.scalars(select(AuditRecord).where(AuditRecord.operation == "bank.reverse_terminal")
                            .order_by(AuditRecord.id)).all()
    assert [(r.result, r.object_id, r.after) for r in records] == [
        ("reversal_original_not_found", f"iso8583:{m['7']}:{m['11']}", "reversed_before_original")
        for m in (withdrawal, advice_first)]  # each names the original it stopped
    assert invariants(app)["ok"]


def test_a_reversal_of_a_refused_original_moves_nothing(city, app, atm):
    card = activated(city, opening_fen=1_000)
    overdraft = atm.message("withdraw", card.pan, 5_000, PIN)
    assert atm.send(overdraft)["39"] == "51"
    assert atm.send(atm.reversal(overdraft))["39"] == "25"
    assert atm.send(atm.reversal(overdraft, advice=True))["39"] == "00"
    deposit = atm.message("deposit", card.pan, 5_000)  # nor is a deposit a withdrawal to reverse
    assert atm.send(deposit)["39"] == "00"
    assert atm.send(atm.reversal(deposit | {"3": "011000"}))["39"] == "25"
    assert balance_of(app, card.pan) == 6_000 and _reversals(app) == []


@pytest.mark.parametrize("hours", [24, 6])
def test_a_reversal_older_than_the_bound_is_refused_and_left_to_the_bank(make_app, hours):
    from tests.support import City

    app = make_app(bank={"terminal_reversal_hours": hours})
    city = City(app)
    add_terminal(city, "ATM00001", "atm", outlet_code="GSB-001")
    atm_actor = terminal(city, "ATM00001")
    card = activated(city, opening_fen=100_000)
    banking.withdraw(app, atm_actor, card.pan, 10_000, PIN, idempotency_key="w-1")
    banking.withdraw(app, atm_actor, card.pan, 10_000, PIN, idempotency_key="w-2")
    app.clock.advance(hours=hours, minutes=-1)
    within = banking.reverse_terminal(app, atm_actor, "w-1", idempotency_key="r-1")
    assert within["amount_fen"] == 10_000 and within["already_reversed"] is False
    app.clock.advance(minutes=2)
    from sscard.core.errors import SscardError

    with pytest.raises(SscardError) as late:
        banking.reverse_terminal(app, atm_actor, "w-2", idempotency_key="r-2")
    assert late.value.code == "reversal_too_late"
    assert balance_of(app, card.pan) == 90_000
    with app.db.session() as s:
        results = [r.result for r in s.scalars(select(AuditRecord).where(
            AuditRecord.operation == "bank.reverse_terminal").order_by(AuditRecord.id))]
    assert results == ["ok", "reversal_too_late"]


def test_over_iso_8583_a_reversal_past_the_bound_is_answered_12_and_moves_nothing(city, app, atm, clock):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 10_000, PIN)
    assert atm.send(withdrawal)["39"] == "00"
    never_sent = atm.message("withdraw", card.pan, 10_000, PIN)  # and one whose 0200 never arrived
    clock.advance(hours=24, minutes=1)
    assert atm.send(atm.reversal(withdrawal))["39"] == "12"
    assert atm.send(atm.reversal(withdrawal, advice=True))["39"] == "12"  # answered: taken, and refused
    assert atm.send(atm.reversal(never_sent))["39"] == "12"  # field 90's time says how old it is
    assert balance_of(app, card.pan) == 90_000 and _reversals(app) == []


def test_a_lost_or_frozen_card_still_gets_its_reversal_and_the_statement_shows_it_as_its_own_line(city, app, atm):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 30_000, PIN)
    assert atm.send(withdrawal)["39"] == "00"
    loss.report_oral_loss(app, city.cardholder(card, Channel.HOTLINE_BANK), card.pan)
    assert atm.send(atm.reversal(withdrawal))["39"] == "00"
    assert balance_of(app, card.pan) == 100_000
    frozen = activated(city, name="李四", opening_fen=50_000)
    taken = atm.message("withdraw", frozen.pan, 20_000, PIN)
    assert atm.send(taken)["39"] == "00"
    banking.freeze(app, city.actor("bsup"), frozen.pan, reason="法院冻结", idempotency_key="fz-1")
    assert atm.send(atm.message("withdraw", frozen.pan, 100, PIN))["39"] == "62"  # no debit while frozen
    assert atm.send(atm.reversal(taken, advice=True))["39"] == "00"  # but the credit back
    assert balance_of(app, frozen.pan) == 50_000
    statement = banking.statement(app, city.actor("teller"), card.pan)
    codes = [(e["code"], e["direction"], e["amount_fen"]) for e in statement["entries"][:2]]
    assert codes == [("reversal", "credit", 30_000), ("withdrawal", "debit", 30_000)]
    from sscard.web.bank_console import describe

    assert describe(statement["entries"][0], "en").startswith("Reversal")
    assert describe(statement["entries"][0], "zh").startswith("冲正")


def test_a_pos_reverses_its_one_step_payment_and_the_payment_limit_comes_back(city, app, pos):
    card = activated(city, opening_fen=100_000)
    sale = pos.message("purchase", card.pan, 25_000, PIN)
    assert pos.send(sale)["39"] == "00"
    assert pos.send(pos.reversal(sale))["39"] == "00"
    assert balance_of(app, card.pan) == 100_000
    (back,) = _reversals(app)
    assert back.amount == 25_000
    assert invariants(app)["ok"]


def test_the_log_of_a_reversal_holds_no_pan_nor_pin(city, app, atm, caplog):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 10_000, PIN)
    with caplog.at_level(logging.DEBUG):
        atm.send(withdrawal)
        atm.send(atm.reversal(withdrawal))
        atm.send(atm.reversal(withdrawal, advice=True))
    text = caplog.text
    assert "mti=0400" in text and "mti=0420" in text
    for secret in (card.pan, withdrawal["52"], PIN, terminal_keys.pin_block(atm.tpk, PIN, card.pan)):
        assert secret not in text


def test_a_reversal_whose_mac_fails_does_nothing(city, app, atm):
    card = activated(city, opening_fen=100_000)
    withdrawal = atm.message("withdraw", card.pan, 10_000, PIN)
    assert atm.send(withdrawal)["39"] == "00"
    assert atm.send(atm.reversal(withdrawal), mac=False)["39"] == "A0"
    assert balance_of(app, card.pan) == 90_000 and _reversals(app) == []


def _at_once(*calls):
    """Run the calls in threads released together; their answers (or exceptions), in order."""
    go = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(i: int) -> None:
        go.wait()
        try:
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001  handed to the test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_the_originals_repeat_and_its_advice_sent_at_once_move_the_money_consistently(city, app, atm, gateway):
    """The 0201 repeat of an answered 0200 and its 0420, sent at the same moment on two connections, many
    times: each original is reversed exactly once, and repeats never take the money again. Then originals
    never answered before, each raced against its own advice: taken and given back, or never taken."""
    card = activated(city, opening_fen=1_000_000)
    second = terminal_of(city, gateway, "ATM00001")  # the same ATM, a second connection
    try:
        for i in range(6):
            withdrawal = atm.message("withdraw", card.pan, 10_000, PIN)
            assert atm.send(withdrawal)["39"] == "00"
            advice = atm.reversal(withdrawal, advice=True)
            repeat, acked = _at_once(lambda w=withdrawal: second.send(w | {"t": "0201"}),
                                     lambda a=advice: atm.send(a))
            assert repeat["39"] == "00" and acked["39"] == "00", (i, repeat, acked)
        for i in range(6):
            withdrawal = atm.message("withdraw", card.pan, 10_000, PIN)
            advice = atm.reversal(withdrawal, advice=True)
            original, acked = _at_once(lambda w=withdrawal: second.send(w), lambda a=advice: atm.send(a))
            assert acked["39"] == "00" and original["39"] in ("00", "05"), (i, original, acked)
    finally:
        second.close()
    assert balance_of(app, card.pan) == 1_000_000  # every withdrawal given back or never taken
    with app.db.session() as s:
        withdrawals = s.scalars(select(LedgerTransfer).where(LedgerTransfer.code == "withdrawal")).all()
    reversed_ids = {t.ref for t in _reversals(app)}
    assert {t.transfer_id for t in withdrawals} == reversed_ids and len(reversed_ids) == len(_reversals(app))
    assert invariants(app)["ok"]


# ---------------------------------------------------------------- the REST terminal API


def auth(token: str, key: str | None = None) -> dict:
    return bearer(token, key, **{"Accept-Language": "en"})


def test_the_rest_terminal_api_reverses_by_the_originals_idempotency_key(city, app, client):
    card = activated(city, opening_fen=100_000)
    atm_token, other_token = terminal_token(city, "ATM-GSB-1"), None
    add_terminal(city, "ATM00002", "atm", outlet_code="GSB-001")
    other_token = terminal_token(city, "ATM00002")
    r = client.post("/api/v1/terminal/withdrawal", json={"pan": card.pan, "amount_fen": 20_000, "pin": PIN},
                    headers=auth(atm_token, "wd-1"))
    assert r.status_code == 200
    reverse = {"original_idempotency_key": "wd-1", "dispensed_fen": 5_000}
    stranger = client.post("/api/v1/terminal/reversals", json=reverse, headers=auth(other_token, "rv-x"))
    assert stranger.status_code == 404 and stranger.json()["code"] == "reversal_original_not_found"
    first = client.post("/api/v1/terminal/reversals", json=reverse, headers=auth(atm_token, "rv-1"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["amount_fen"], body["already_reversed"], body["balance_fen"]) == (15_000, False, 95_000)
    assert body["original_transfer_id"] == r.json()["transfer_id"]
    assert client.post("/api/v1/terminal/reversals", json=reverse, headers=auth(atm_token, "rv-1")).json() == body
    reused = client.post("/api/v1/terminal/reversals", json={**reverse, "dispensed_fen": 0},
                         headers=auth(atm_token, "rv-1"))
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    again = client.post("/api/v1/terminal/reversals", json={**reverse, "dispensed_fen": 0},
                        headers=auth(atm_token, "rv-2"))
    assert again.status_code == 200 and again.json()["already_reversed"] is True
    assert again.json()["amount_fen"] == 15_000 and balance_of(app, card.pan) == 95_000
    missing = client.post("/api/v1/terminal/reversals", json={"original_idempotency_key": "wd-9"},
                          headers=auth(atm_token, "rv-3"))
    assert missing.status_code == 404
    late = client.post("/api/v1/terminal/withdrawal", json={"pan": card.pan, "amount_fen": 100, "pin": PIN},
                       headers=auth(atm_token, "wd-9"))
    assert late.status_code == 409 and late.json()["code"] == "reversed_before_original"
    no_key = client.post("/api/v1/terminal/reversals", json=reverse, headers=auth(atm_token))
    assert no_key.status_code == 400 and no_key.json()["code"] == "idempotency_key_required"
    assert balance_of(app, card.pan) == 95_000 and invariants(app)["ok"]


def test_a_reversal_and_its_original_in_flight_together_through_the_writer_move_money_once(city, app):
    """In-process, the group-commit writer: an original withdrawal and its reversal queued at once, many
    times, in both orders: the money is either never taken or taken and given back, never taken twice."""
    card = activated(city, opening_fen=500_000)
    atm_actor = terminal(city, "ATM-GSB-1")
    for i in range(10):
        original = lambda i=i: batching.call(app, banking.withdraw, atm_actor, card.pan, 1_000, PIN,  # noqa: E731
                                             idempotency_key=f"w{i}")
        reversal = lambda i=i: batching.call(app, banking.reverse_terminal, atm_actor, f"w{i}",  # noqa: E731
                                             idempotency_key=f"r{i}")
        results = _at_once(original, reversal) if i % 2 else _at_once(reversal, original)
        assert balance_of(app, card.pan) == 500_000, (i, results)
    assert invariants(app)["ok"]
