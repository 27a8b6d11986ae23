"""The bank counter's customer session, confirm steps, slips and references (issue 17), without a browser."""

from __future__ import annotations

import re

from sscard.core.txn_ref import normalize
from sscard.services import audit, bank_counter, banking
from sscard.web.bank_console import CUSTOMER_COOKIE
from tests.bank_console.conftest import GOOD_PIN, OP_KEY_RE, text_of

WRONG_PIN = "846093"


def served(city, app, teller, name="张三", yuan="0"):
    """A customer whose account is active, looked up once at the desk (the visit starts)."""
    card = city.issued_card(name)
    banking.activate(app, city.actor("teller"), card.pan, card.citizen_id, GOOD_PIN, GOOD_PIN,
                     cardholder_in_person=True)
    if yuan != "0":
        banking.deposit(app, city.actor("teller"), card.pan, int(yuan) * 100)
    looked_up = teller.post("/bank/account", {"pan": card.pan})
    assert looked_up.status_code == 303 and looked_up.headers["location"] == "/bank"
    return card


def confirmed(teller, path, page_answer, **extra):
    """Press the confirm step's button: post back exactly what the confirm step carries."""
    form = re.search(r'<section class="panel confirm".*?</section>', page_answer.text, re.S).group(0)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    return teller.post(path, {**fields, **extra})


def test_the_card_is_typed_once_and_every_page_then_names_the_holder_and_both_states(bank_city, counter, app):
    teller = counter("teller")
    card = served(bank_city, app, teller, "欧阳明月")
    for path in ("/bank", "/bank/activate", "/bank/loss", "/bank/deposit", "/bank/withdraw", "/bank/pin-reset",
                 "/bank/close", "/bank/statement"):
        page = teller.get(path)
        bar = text_of(re.search(r'<section id="customer".*?</section>', page.text, re.S).group(0))
        assert "户名 欧阳明月" in bar and "账户状态 正常" in bar and "社保卡状态 正常使用" in bar, path
        assert 'name="pan"' not in page.text, path  # no card number field while the customer is at the desk
        assert card.pan not in page.text, path
    deposit = confirmed(teller, "/bank/deposit", teller.post("/bank/deposit", {"amount": "20"}))
    assert 'data-result="deposit"' in deposit.text
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 2000
    views = audit.read_audit(app, bank_city.actor("operator"), operation="bank_counter.customer")["records"]
    assert views and all(r["result"] == "viewed" and r["person_id"] == card.person_id for r in views)


def test_ending_the_visit_or_signing_out_forgets_the_customer(bank_city, counter, app):
    teller = counter("teller")
    served(bank_city, app, teller)
    assert "欧阳" not in teller.get("/bank").text and "张三" in teller.get("/bank").text
    ended = teller.post("/bank/customer/end")
    assert ended.status_code == 303
    home = teller.get("/bank")
    assert 'name="pan"' in home.text and "张三" not in home.text
    served(bank_city, app, teller, "李四")
    teller.post("/bank/logout")
    teller.login("teller")
    assert "李四" not in teller.get("/bank").text


def test_another_tellers_session_cannot_use_this_desks_customer(bank_city, counter, app):
    """The customer cookie is sealed to the session: copied into another teller's browser it is nothing."""
    teller = counter("teller")
    served(bank_city, app, teller, yuan="100")
    stolen = teller.client.cookies.get(CUSTOMER_COOKIE, path="/bank")
    assert stolen
    thief = counter("bsup")  # same bank, another session
    thief.client.cookies.set(CUSTOMER_COOKIE, stolen, path="/bank")
    page = thief.get("/bank/withdraw")
    assert "张三" not in page.text and 'name="pan"' in page.text
    other_bank = counter("teller_jsb")
    other_bank.client.cookies.set(CUSTOMER_COOKIE, stolen, path="/bank")
    assert "张三" not in other_bank.get("/bank/statement").text


def test_another_banks_teller_never_sees_the_holders_name(bank_city, counter, app):
    card = bank_city.issued_card("王五")
    other = counter("teller_jsb")
    refused = other.post("/bank/account", {"pan": card.pan})
    assert refused.status_code == 403 and "王五" not in refused.text
    assert "王五" not in other.get("/bank").text  # and no visit was started
    assert other.post("/bank/deposit", {"pan": card.pan, "amount": "1"}).status_code == 403


def test_a_deposit_is_confirmed_with_last_digits_holder_and_capitals_before_money_moves(bank_city, counter, app):
    teller = counter("teller")
    card = served(bank_city, app, teller)
    step = teller.post("/bank/deposit", {"amount": "1,200.50"})
    facts = text_of(re.search(r'<section class="panel confirm".*?</section>', step.text, re.S).group(0))
    assert f"卡号尾号 {card.pan[-4:]}" in facts and "户名 张三" in facts
    assert "¥1,200.50" in facts and "壹仟贰佰元伍角" in facts
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 0  # nothing yet
    back = confirmed(teller, "/bank/deposit", step, step="edit")
    assert 'value="1,200.50"' in back.text and 'data-step="confirm"' not in back.text
    done = confirmed(teller, "/bank/deposit", step)
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 120050
    assert 'data-slip="' in done.text


def test_a_double_clicked_or_replayed_confirm_applies_once(bank_city, counter, app):
    teller = counter("teller")
    card = served(bank_city, app, teller, yuan="100")
    step = teller.post("/bank/deposit", {"amount": "10"})
    first, second = confirmed(teller, "/bank/deposit", step), confirmed(teller, "/bank/deposit", step)
    assert first.status_code == second.status_code == 200
    withdraw = teller.post("/bank/withdraw", {"amount": "30"})
    confirmed(teller, "/bank/withdraw", withdraw, pin=GOOD_PIN)
    replay = confirmed(teller, "/bank/withdraw", withdraw, pin=GOOD_PIN)  # the back button, sent again
    assert replay.status_code == 200
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 10000 + 1000 - 3000


def test_a_wrong_pin_says_the_tries_left_and_keeps_the_amount_at_the_pin_pad(bank_city, counter, app):
    teller = counter("teller")
    card = served(bank_city, app, teller, yuan="100")
    step = teller.post("/bank/withdraw", {"amount": "66.60"})
    assert 'name="pin"' in step.text and "陆拾陆元陆角" in step.text
    wrong = confirmed(teller, "/bank/withdraw", step, pin=WRONG_PIN)
    assert wrong.status_code == 401
    assert "还可尝试2次" in text_of(wrong.text)
    assert 'data-step="confirm"' in wrong.text and 'name="amount" value="66.60"' in wrong.text
    assert WRONG_PIN not in wrong.text and GOOD_PIN not in wrong.text
    assert OP_KEY_RE.search(wrong.text).group(1) != OP_KEY_RE.search(step.text).group(1)  # a fresh key
    ok = confirmed(teller, "/bank/withdraw", wrong, pin=GOOD_PIN)
    assert 'data-result="withdrawal"' in ok.text
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 10000 - 6660
    english = counter("teller", lang="en")
    english.post("/bank/account", {"pan": card.pan})
    step_en = english.post("/bank/withdraw", {"amount": "1"})
    assert "2 tries left" in text_of(confirmed(english, "/bank/withdraw", step_en, pin=WRONG_PIN).text)  # reset by the good one


def test_formal_loss_and_closing_are_confirmed_first(bank_city, counter, app):
    teller = counter("teller")
    card = served(bank_city, app, teller, yuan="88")
    loss_step = teller.post("/bank/loss", {"citizen_id": card.citizen_id, "action": "written"})
    assert 'data-step="confirm"' in loss_step.text and card.pan[-4:] in loss_step.text
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"
    assert 'data-state="written_loss"' in confirmed(teller, "/bank/loss", loss_step).text
    teller.post("/bank/loss", {"citizen_id": card.citizen_id, "action": "cancel"})  # lifting it needs no step
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"
    close_step = teller.post("/bank/close", {"citizen_id": card.citizen_id, "confirm": "yes"})
    assert "捌拾捌元整" in close_step.text and "¥88.00" in close_step.text
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"
    closed = confirmed(teller, "/bank/close", close_step)
    assert "应付持卡人现金 88.00 元" in closed.text


def test_a_refused_form_keeps_what_was_typed_but_never_the_pin(bank_city, counter, app):
    teller = counter("teller")
    card = bank_city.issued_card()
    refused = teller.post("/bank/activate", {"pan": card.pan, "citizen_id": card.citizen_id, "in_person": "yes",
                                             "pin": "123456", "pin_again": "123456"})
    assert refused.status_code == 422
    assert f'value="{card.pan}"' in refused.text and f'value="{card.citizen_id}"' in refused.text
    assert "123456" not in refused.text


def test_the_slip_names_everything_a_teller_hands_over_and_prints(bank_city, counter, app):
    teller = counter("teller")
    card = served(bank_city, app, teller, yuan="100")
    done = confirmed(teller, "/bank/deposit", teller.post("/bank/deposit", {"amount": "10.05"}))
    slip = text_of(re.search(r'<article class="panel slip".*?</article>', done.text, re.S).group(0))
    ref = re.search(r"交易参考号 (\S+)", slip).group(1)
    assert normalize(ref) == ref
    for fact in ("户名 张三", "¥10.05", "壹拾元零伍分", "交易后余额（元） 110.05", "网点 工商银行西湖支行",
                 "柜员 teller", mask_pan_of(card)):
        assert fact in slip, fact
    again = teller.get(f"/bank/slip?ref={ref.lower()}")
    assert again.status_code == 200 and "壹拾元零伍分" in again.text
    printed = re.search(r'<form method="post" action="/bank/slip.pdf".*?</form>', again.text, re.S).group(0)
    pdf = teller.post("/bank/slip.pdf", dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',
                                                        printed)))  # the slip's print button, as pressed
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert card.pan.encode() not in pdf.content
    assert teller.get("/bank/slip?ref=20261202-0000000").status_code == 404


def mask_pan_of(card) -> str:
    return card.pan[:6] + "*" * 9 + card.pan[-4:]


def test_a_transaction_is_found_in_the_statement_by_its_reference(bank_city, counter, app):
    teller = counter("teller")
    card = served(bank_city, app, teller)
    refs = []
    for yuan in ("5", "6", "7"):
        done = confirmed(teller, "/bank/deposit", teller.post("/bank/deposit", {"amount": yuan}))
        refs.append(re.search(r'data-slip="([^"]+)"', done.text).group(1))
    page = teller.get("/bank/statement")
    assert all(r in page.text for r in refs)
    found = teller.post("/bank/statement", {"ref": refs[1].lower().replace("-", " ")})
    rows = re.findall(r'<tr data-ref="([^"]+)"', found.text)
    assert rows == [refs[1]]
    assert "1,800.00" not in found.text and "11.00" in text_of(found.text)  # the balance after that one
    typo = refs[1][:-1] + ("0" if refs[1][-1] != "0" else "1")
    assert teller.post("/bank/statement", {"ref": typo}).status_code == 404
    assert card.pan not in found.text


def test_the_statement_service_names_the_bank_and_outlet_in_both_languages(bank_city, app):
    teller = bank_city.actor("teller")
    card = bank_city.issued_card()
    banking.activate(app, teller, card.pan, card.citizen_id, GOOD_PIN, GOOD_PIN, cardholder_in_person=True)
    banking.deposit(app, teller, card.pan, 5000)
    banking.withdraw(app, teller, card.pan, 1200, GOOD_PIN)
    st = bank_counter.statement(app, teller, card.pan)
    assert st["bank"] == {"code": "GSB", "name": "工商银行", "name_en": "ICBC"}
    assert st["outlet"]["name_en"] == "ICBC Xihu Sub-branch"
    assert [x["balance_after_fen"] for x in st["lines"]] == [3800, 5000]
    assert st["opening_fen"] == 0 and st["closing_fen"] == 3800 and st["holder_name"] == "张三"


def test_an_english_statement_pdf_names_the_bank_in_english(bank_city, counter, app, monkeypatch):
    from sscard.documents import statements

    seen = {}
    real = statements.render_statement
    monkeypatch.setattr(statements, "render_statement", lambda s, lang: seen.update(s=s, lang=lang) or real(s, lang))
    teller = counter("teller", lang="en")
    served(bank_city, app, teller, yuan="10")
    page = teller.get("/bank/statement")
    assert "ICBC" in text_of(page.text) and "工商银行" not in page.text
    ref = re.search(r'name="pan_ref" value="([^"]+)"', page.text).group(1)
    pdf = teller.post("/bank/statement.pdf", {"pan_ref": ref})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert seen["lang"] == "en" and seen["s"].bank_name == "ICBC" and seen["s"].outlet == "ICBC Xihu Sub-branch"
    assert seen["s"].name_masked == "张三"  # the holder's own statement names the holder


def test_a_confirmed_withdrawal_goes_to_the_card_it_named_or_nowhere_when_another_window_changed_the_customer(
        bank_city, counter, app):
    """Session 22's browser probe (critical): tab 1 confirmed a withdrawal naming 杨兰英's card; tab 2 ended the
    visit and looked up 傅莹秀; tab 1's confirm then debited 傅莹秀. The confirm step now carries the card it
    names, sealed, and a desk whose customer changed since refuses it, doing nothing."""
    teller = counter("teller")
    first = served(bank_city, app, teller, "杨兰英", yuan="100")
    step = teller.post("/bank/withdraw", {"amount": "12.34"})
    assert first.pan[-4:] in step.text
    teller.post("/bank/customer/end", {})
    second = served(bank_city, app, teller, "傅莹秀", yuan="100")  # the other tab's customer
    refused = confirmed(teller, "/bank/withdraw", step, pin=GOOD_PIN)
    assert "desk_customer_changed" in refused.text or "已在其他窗口变更" in refused.text
    assert first.pan[-4:] in text_of(refused.text)
    for card in (first, second):
        assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 10000
    teller.post("/bank/account", {"pan": first.pan})
    step = teller.post("/bank/deposit", {"amount": "5"})
    teller.post("/bank/customer/end", {})  # the visit ended in the other tab: nobody at the desk
    again = confirmed(teller, "/bank/deposit", step)
    assert "已在其他窗口变更" in again.text
    assert banking.statement(app, bank_city.actor("teller"), first.pan)["balance_fen"] == 10000


def test_a_confirm_step_lists_the_cards_cash_of_the_last_half_hour_so_a_lost_answer_is_not_redone(
        bank_city, counter, app, clock):
    """Session 22's browser probe: an answer lost on the way back, then a reload and the same deposit again,
    paid twice; "Back to edit" with another amount answered with idempotency wording and then did both."""
    teller = counter("teller")
    card = served(bank_city, app, teller)
    step = teller.post("/bank/deposit", {"amount": "44.44"})
    assert 'data-field="recent"' not in step.text
    done = confirmed(teller, "/bank/deposit", step)  # (its answer "lost": the teller reloads and starts again)
    ref = re.search(r'data-slip="([^"]+)"', done.text).group(1)
    again = teller.post("/bank/deposit", {"amount": "44.44"})
    recent = re.search(r'<div class="msg note" role="alert" data-field="recent">.*?</div>', again.text, re.S).group(0)
    assert ref in recent and "¥44.44" in recent and "存款" in recent
    edited = confirmed(teller, "/bank/deposit", step, amount="1000")  # the old form, its key, another amount
    assert "此确认已经提交过" in edited.text and ref in edited.text
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["balance_fen"] == 4444
    assert [line["ref"] for line in bank_counter.confirmation(app, bank_city.actor("teller"), card.pan)["recent"]] \
        == [ref]
    clock.advance(minutes=31)
    assert bank_counter.confirmation(app, bank_city.actor("teller"), card.pan)["recent"] == []


def _desk_form(page, action):
    """The hidden fields of the page's form posting to `action`, as the browser sends them."""
    form = re.search(rf'<form[^>]*action="{re.escape(action)}".*?</form>', page.text, re.S).group(0)
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


def test_a_desk_form_shown_for_one_customer_acts_on_nobody_after_another_window_changed_the_customer(
        bank_city, counter, app):
    """The brief's probe: a supervisor's page named 杨兰英; in another window the next customer, 傅莹秀, was looked
    up; the first page's freeze (a form with no confirm step) froze 傅莹秀's account. Every desk form now
    names the customer it was shown for, and a desk whose customer changed refuses it, doing nothing."""
    bsup = counter("bsup")
    first = served(bank_city, app, bsup, "杨兰英")
    page = bsup.get("/bank/supervisor")
    assert "杨兰英" in text_of(page.text)
    second = served(bank_city, app, bsup, "傅莹秀")  # the other window
    sent = bsup.post("/bank/supervisor", {**_desk_form(page, "/bank/supervisor"), "task": "freeze",
                                          "reason": "court order"})
    assert "已在其他窗口变更" in sent.text and first.pan[-4:] in text_of(sent.text)
    for card in (first, second):
        assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"
    fresh = bsup.get("/bank/supervisor")  # the page of the customer at the desk now does it
    done = bsup.post("/bank/supervisor", {**_desk_form(fresh, "/bank/supervisor"), "task": "freeze",
                                          "reason": "court order"})
    assert 'data-result="freeze"' in done.text
    assert banking.statement(app, bank_city.actor("teller"), second.pan)["status"] == "frozen"
    assert banking.statement(app, bank_city.actor("teller"), first.pan)["status"] == "active"


def test_a_desk_form_that_names_no_customer_acts_on_nobody(bank_city, counter, app):
    """Session 24 left it lenient: a hand-made (or pre-desk_ref) form with no `desk_ref` acted on whoever was
    at the desk. Every desk form names its customer now, and one that does not is refused, doing nothing."""
    bsup = counter("bsup")
    card = served(bank_city, app, bsup, "杨兰英")
    sent = bsup.post("/bank/supervisor", {"desk_ref": "", "task": "freeze", "reason": "court order"})
    assert sent.status_code == 409 and "没有注明是为哪位客户" in sent.text
    teller = counter("teller")
    served(bank_city, app, teller, "傅莹秀")
    deposit = teller.post("/bank/deposit", {"desk_ref": "", "amount": "20"})
    assert deposit.status_code == 409 and "没有注明是为哪位客户" in deposit.text
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"
    assert 'data-result="freeze"' in bsup.post("/bank/supervisor", {"task": "freeze", "reason": "court order"}).text
