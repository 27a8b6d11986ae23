"""The bank-outlet console's pages as a teller uses them (no browser), on both databases."""

from __future__ import annotations

import logging
import re

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.core.identifiers import mask_pan
from sscard.core.roles import Channel
from sscard.models.foundation import Card
from sscard.services import audit, banking, cards, loss, production, replacement
from sscard.web.bank_console import LOGIN_COOKIE, Desk, open_pan, seal_pan
from tests.bank_console.conftest import GOOD_PIN, OP_KEY_RE, text_of

OTHER_PIN = "846093"


def activated(city, app, counter_, name="张三"):
    card = city.issued_card(name)
    answer = counter_.post("/bank/activate", {"pan": card.pan, "citizen_id": card.citizen_id, "pin": GOOD_PIN,
                                              "pin_again": GOOD_PIN, "in_person": "yes"})
    assert answer.status_code == 200, text_of(answer.text)
    return card


def balance_fen(app, city, card) -> int:
    return banking.statement(app, city.actor("teller"), card.pan, limit=1)["balance_fen"]


def keeps_what_was_typed_but_no_pin(html: str, card, *pins: str) -> None:
    """A refused form shows the card number and ID as typed (the teller corrects, not retypes); never a PIN."""
    assert f'value="{card.pan}"' in html
    for pin in pins:
        assert pin not in html


def never_shows_secrets(html: str, card, *pins: str) -> None:
    assert card.pan not in html
    assert card.citizen_id not in html
    for pin in pins:
        assert pin not in html


# ---------------------------------------------------------------- sign-in


def test_login_as_teller_opens_the_counter_and_logout_ends_the_session(counter):
    teller = counter("teller")
    home = teller.get("/bank")
    assert home.status_code == 200
    assert "工商银行西湖支行" in home.text and "GSB-001" not in home.text and "退出登录" in home.text
    out = teller.post("/bank/logout")
    assert out.status_code == 303 and out.headers["location"] == "/bank/login"
    again = teller.get("/bank")
    assert again.status_code == 303 and again.headers["location"] == "/bank/login"


def test_wrong_password_and_window_staff_cannot_sign_in_at_the_counter(counter):
    nobody = counter(None)
    wrong = nobody.login("teller", "not-the-password")
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.text
    clerk = nobody.login("clerk")
    assert clerk.status_code == 403 and "仅限银行柜员和银行主管" in clerk.text
    assert "sscard_staff" not in nobody.client.cookies


def test_login_form_needs_its_own_token(counter):
    nobody = counter(None)
    nobody.client.get("/bank/login")
    forged = nobody.client.post("/bank/login", data={"login_token": "made-up", "username": "teller",
                                                     "password": "Staff-pass-2026"}, follow_redirects=False)
    assert forged.status_code == 403
    nobody.client.cookies.delete(LOGIN_COOKIE, path="/bank")
    no_cookie = nobody.client.post("/bank/login", data={"login_token": "x", "username": "teller",
                                                        "password": "Staff-pass-2026"}, follow_redirects=False)
    assert no_cookie.status_code == 403


def test_post_without_the_session_csrf_token_is_refused(bank_city, counter, app):
    card = bank_city.issued_card()
    teller = counter("teller")
    answer = teller.post("/bank/loss", {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id}, csrf=False)
    assert answer.status_code == 403
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "not_activated"


def test_idle_session_sends_the_teller_back_to_login(counter, clock):
    teller = counter("teller")
    clock.advance(minutes=14)
    assert teller.get("/bank").status_code == 200
    clock.advance(minutes=16)
    gone = teller.get("/bank")
    assert gone.status_code == 303 and gone.headers["location"] == "/bank/login"
    htmx = teller.client.post("/bank/account", data={"csrf_token": teller.csrf, "pan": "1"},
                              headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/bank/login?unsent=1"
    # session 22's browser probe: a confirm sent after the session ended landed on the plain login page; it
    # now says that what was sent was not done
    page = teller.client.get(htmx.headers["HX-Redirect"])
    assert "刚才提交的操作没有办理" in page.text
    assert "刚才提交的操作没有办理" not in teller.client.get("/bank/login").text


# ---------------------------------------------------------------- activation


def test_activation_sets_the_pin_without_ever_echoing_it(bank_city, counter, app, caplog):
    card = bank_city.issued_card()
    teller = counter("teller")
    caplog.set_level(logging.DEBUG)
    answer = teller.post("/bank/activate", {"pan": card.pan, "citizen_id": card.citizen_id, "pin": GOOD_PIN,
                                            "pin_again": GOOD_PIN, "in_person": "yes"})
    assert answer.status_code == 200
    assert 'data-result="activated"' in answer.text
    assert mask_pan(card.pan) in answer.text
    never_shows_secrets(answer.text, card, GOOD_PIN)
    assert GOOD_PIN not in caplog.text
    records = audit.read_audit(app, bank_city.actor("operator"), operation="bank.activate")["records"]
    assert records and records[0]["result"] == "ok"
    assert GOOD_PIN not in repr(records)
    # the PIN works: a withdrawal with it is accepted once there is money
    banking.deposit(app, bank_city.actor("teller"), card.pan, 5000)
    assert teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "20", "pin": GOOD_PIN}).status_code == 200
    assert balance_fen(app, bank_city, card) == 3000


def test_activation_form_is_a_pin_pad(counter):
    page = counter("teller").get("/bank/activate").text
    for name in ("pin", "pin_again"):
        field = re.search(rf'<input name="{name}"[^>]*>', page).group(0)
        assert 'type="password"' in field
        assert 'inputmode="numeric"' in field
        assert 'autocomplete="off"' in field
        assert 'maxlength="6"' in field
        assert "value=" not in field


def test_activation_refusals_are_shown_in_words_and_the_pin_is_not_kept(bank_city, counter, app):
    card = bank_city.issued_card()
    teller = counter("teller")
    base = {"pan": card.pan, "citizen_id": card.citizen_id, "in_person": "yes"}
    weak = teller.post("/bank/activate", {**base, "pin": "123456", "pin_again": "123456"})
    assert weak.status_code == 422 and "密码过于简单" in weak.text
    keeps_what_was_typed_but_no_pin(weak.text, card, "123456")
    assert f'value="{card.citizen_id}"' in weak.text and 'name="in_person" value="yes" required checked' in weak.text
    differ = teller.post("/bank/activate", {**base, "pin": GOOD_PIN, "pin_again": OTHER_PIN})
    assert differ.status_code == 422 and "两次输入的新密码不一致" in differ.text
    keeps_what_was_typed_but_no_pin(differ.text, card, GOOD_PIN, OTHER_PIN)
    other_id = bank_city.new_person("李四")[1]
    wrong_person = teller.post("/bank/activate", {**base, "citizen_id": other_id, "pin": GOOD_PIN,
                                                  "pin_again": GOOD_PIN})
    assert wrong_person.status_code == 403 and "身份证件与持卡人不符" in wrong_person.text
    agent = teller.post("/bank/activate", {"pan": card.pan, "citizen_id": card.citizen_id, "pin": GOOD_PIN,
                                           "pin_again": GOOD_PIN})
    assert agent.status_code == 403 and "仅限持卡人本人" in agent.text
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "not_activated"


def test_window_expired_then_supervisor_extends_once_then_activation_works(bank_city, counter, app, clock):
    card = bank_city.issued_card()
    clock.advance(days=61)
    teller = counter("teller")
    form = {"pan": card.pan, "citizen_id": card.citizen_id, "pin": GOOD_PIN, "pin_again": GOOD_PIN,
            "in_person": "yes"}
    late = teller.post("/bank/activate", form)
    assert late.status_code == 409 and "已超过金融功能启用期限" in late.text
    assert "请本网点银行主管办理延期" in late.text
    assert teller.get("/bank/supervisor").status_code == 403
    assert teller.post("/bank/supervisor", {"pan": card.pan, "task": "extend", "reason": "x"}).status_code == 403
    sup = counter("bsup")
    late_for_sup = sup.post("/bank/activate", form)
    assert 'href="/bank/supervisor"' in late_for_sup.text
    extended = sup.post("/bank/supervisor", {"pan": card.pan, "task": "extend", "days": "30",
                                             "reason": "住院未能按期办理"})
    assert extended.status_code == 200 and "启用期限已延长30天" in extended.text
    again = sup.post("/bank/supervisor", {"pan": card.pan, "task": "extend", "days": "30", "reason": "再次"})
    assert again.status_code == 409 and "已延长过一次" in again.text
    assert teller.post("/bank/activate", form).status_code == 200
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"


# ---------------------------------------------------------------- bank-side loss


def test_written_loss_reminds_about_the_ss_side_and_cancel_restores(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    lost = teller.post("/bank/loss", {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id, "action": "written"})
    assert lost.status_code == 200
    assert "书面挂失" in text_of(lost.text)
    assert "12333" in lost.text and "社会保障" in lost.text  # the other side is separate
    never_shows_secrets(lost.text, card)
    refused = teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "1", "pin": GOOD_PIN})
    assert refused.status_code == 409 and "账户已挂失" in refused.text
    deposit = teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "50"})
    assert deposit.status_code == 200  # credits still arrive while lost
    cancelled = teller.post("/bank/loss", {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id, "action": "cancel"})
    assert cancelled.status_code == 200 and "已解除银行账户挂失" in cancelled.text
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "active"


def test_oral_loss_by_hotline_is_made_written_at_the_counter(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    loss.report_oral_loss(app, bank_city.cardholder(card, Channel.HOTLINE_BANK), card.pan)
    written = teller.post("/bank/loss", {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id, "action": "written"},
                          htmx=True)
    assert written.status_code == 200 and 'data-state="written_loss"' in written.text
    assert '<html' not in written.text  # htmx gets only the working area


def test_state_refusals_name_states_in_words(bank_city, counter):
    card = bank_city.issued_card()
    answer = counter("teller").post("/bank/loss", {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id,
                                                   "action": "written"})
    assert answer.status_code == 409
    assert "当前状态（金融功能未启用）不能办理此业务（书面挂失）" in answer.text
    assert "report_written_loss" not in answer.text


# ---------------------------------------------------------------- cash


def test_deposit_and_withdrawal_take_yuan_and_move_fen(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    deposit = teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "1,000.50"})
    assert deposit.status_code == 200 and "已存入 1,000.50 元" in deposit.text
    assert balance_fen(app, bank_city, card) == 100050
    withdrawal = teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "0.55", "pin": GOOD_PIN})
    assert withdrawal.status_code == 200 and "已支取 0.55 元" in withdrawal.text
    never_shows_secrets(withdrawal.text, card, GOOD_PIN)
    assert balance_fen(app, bank_city, card) == 99995
    for bad in ("1.234", "-5", "abc", "0", "0.00"):
        refused = teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": bad})
        assert refused.status_code == 422 and "金额无效" in refused.text, bad
        for page in ("/bank/deposit", "/bank/withdraw"):  # refused at the first step, never read out to confirm
            first = teller.post(page, {"pan": card.pan, "amount": bad, "pin": GOOD_PIN})
            assert first.status_code == 422 and "金额无效" in first.text and "零元整" not in first.text, (page, bad)
    too_much = teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "2000", "pin": GOOD_PIN})
    assert too_much.status_code == 409 and "余额不足" in too_much.text
    assert balance_fen(app, bank_city, card) == 99995


def test_double_submitted_deposit_form_deposits_once(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    key = OP_KEY_RE.search(teller.get("/bank/deposit").text).group(1)
    first = teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "10", "op_key": key})
    second = teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "10", "op_key": key})
    assert first.status_code == second.status_code == 200
    assert balance_fen(app, bank_city, card) == 1000
    fresh_key = OP_KEY_RE.search(first.text).group(1)
    assert fresh_key != key  # the next deposit on the page is a new one
    teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "10", "op_key": fresh_key})
    assert balance_fen(app, bank_city, card) == 2000


def test_three_wrong_pins_lock_then_reset_by_the_cardholder_unlocks(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "100"})
    for _ in range(3):
        wrong = teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "1", "pin": OTHER_PIN})
        assert wrong.status_code in (401, 423)
    locked = teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "1", "pin": GOOD_PIN})
    assert locked.status_code == 423 and "银行密码已锁定" in locked.text
    reset_form = {"pan": card.pan, "citizen_id": card.citizen_id, "new": OTHER_PIN, "new_again": OTHER_PIN}
    not_confirmed = teller.post("/bank/pin-reset", reset_form)
    assert not_confirmed.status_code == 403 and "不接受代理人" in not_confirmed.text
    reset = teller.post("/bank/pin-reset", {**reset_form, "in_person": "yes"})
    assert reset.status_code == 200 and "原密码锁定已解除" in reset.text
    never_shows_secrets(reset.text, card, OTHER_PIN)
    assert teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "1", "pin": OTHER_PIN}).status_code == 200


def test_close_pays_the_whole_balance_out_and_refuses_deposits_after(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "88.80"})
    unconfirmed = teller.post("/bank/close", {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id})
    assert unconfirmed.status_code == 422
    closed = teller.post("/bank/close", {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id, "confirm": "yes"})
    assert closed.status_code == 200 and "应付持卡人现金 88.80 元" in closed.text
    assert balance_fen(app, bank_city, card) == 0
    after = teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "1"})
    assert after.status_code == 409 and "账户已销户" in after.text


# ---------------------------------------------------------------- statement


def test_statement_shows_running_balance_and_the_pdf_downloads(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "500"})
    teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "120.30", "pin": GOOD_PIN})
    page = teller.post("/bank/statement", {"pan": card.pan})
    assert page.status_code == 200
    text = text_of(page.text)
    assert "现金取款 · 工商银行西湖支行 120.30 379.70" in text
    assert "现金存款 · 工商银行西湖支行 500.00 500.00" in text
    never_shows_secrets(page.text, card)
    ref = re.search(r'name="pan_ref" value="([^"]+)"', page.text).group(1)
    pdf = teller.post("/bank/statement.pdf", {"pan_ref": ref})
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in pdf.headers["content-disposition"]
    assert pdf.content.startswith(b"%PDF")
    # set in a CJK font: an embedded TrueType subset (AAAAAA+Name) or the built-in STSong-Light
    assert re.search(rb"/BaseFont\s*/(STSong-Light|[A-Z]{6}\+)", pdf.content)
    assert card.pan.encode() not in pdf.content
    forged = teller.post("/bank/statement.pdf", {"pan_ref": ref[:-3] + "AAA"})
    assert forged.status_code == 422


def test_pan_reference_is_bound_to_the_session(bank_city, counter, app):
    card = bank_city.issued_card()

    class Row:
        csrf = "one-session"

    class Other:
        csrf = "another-session"

    desk = Desk(bank_city.actor("teller"), Row())
    ref = seal_pan(app, desk, card.pan)
    assert card.pan not in ref
    assert open_pan(app, desk, ref) == card.pan
    with pytest.raises(SscardError):
        open_pan(app, Desk(bank_city.actor("teller"), Other()), ref)


# ---------------------------------------------------------------- another bank's card


def test_teller_of_another_bank_gets_wrong_bank_on_every_card_operation(bank_city, counter, app):
    own = counter("teller")
    card = activated(bank_city, app, own)
    other = counter("teller_jsb")
    forms = {
        "/bank/account": {"pan": card.pan},
        "/bank/activate": {"pan": card.pan, "citizen_id": card.citizen_id, "pin": GOOD_PIN, "pin_again": GOOD_PIN,
                           "in_person": "yes"},
        "/bank/loss": {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id, "action": "written"},
        "/bank/deposit": {"step": "confirmed", "pan": card.pan, "amount": "1"},
        "/bank/withdraw": {"step": "confirmed", "pan": card.pan, "amount": "1", "pin": GOOD_PIN},
        "/bank/pin-reset": {"pan": card.pan, "citizen_id": card.citizen_id, "new": OTHER_PIN,
                            "new_again": OTHER_PIN, "in_person": "yes"},
        "/bank/close": {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id, "confirm": "yes"},
        "/bank/statement": {"pan": card.pan},
    }
    for path, form in forms.items():
        answer = other.post(path, form)
        assert answer.status_code == 403, path
        assert "此卡不属于本行，请到卡面所示银行的网点办理" in answer.text, path
        assert "此卡的发卡银行：工商银行" in answer.text, path
        keeps_what_was_typed_but_no_pin(answer.text, card, GOOD_PIN, OTHER_PIN)
        assert "张三" not in answer.text, path  # another bank's teller never sees the holder
    english = counter("teller_jsb", lang="en").post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "1"})
    assert "This card belongs to another bank" in english.text
    assert balance_fen(app, bank_city, card) == 0
    refusals = audit.read_audit(app, bank_city.actor("operator"), result="wrong_bank")["records"]
    assert len(refusals) >= 5  # refused attempts that matter leave a trace


# ---------------------------------------------------------------- English


def test_pages_in_english(bank_city, counter, app):
    teller = counter("teller", lang="en")
    card = activated(bank_city, app, teller)
    lost = teller.post("/bank/loss", {"step": "confirmed", "pan": card.pan, "citizen_id": card.citizen_id, "action": "written"})
    assert "reported lost in writing" in lost.text
    assert "Call 12333" in lost.text
    for path in ("/bank", "/bank/activate", "/bank/loss", "/bank/deposit", "/bank/withdraw", "/bank/pin-reset",
                 "/bank/close", "/bank/statement"):
        page = teller.get(path)
        assert page.status_code == 200
        # only the holder's own name (a Chinese name is a name in any language) stays in Chinese
        assert not re.search(r"[\u4e00-\u9fff]", text_of(page.text).replace("中文", "").replace("张三", "")), path
        assert not re.search(r"[（）：，。]", text_of(page.text)), path  # no full-width punctuation in English
        assert "GSB-001" not in text_of(page.text) and "ICBC Xihu Sub-branch" in page.text, path  # names, not codes


def test_every_bank_template_string_has_an_english_translation():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "src" / "sscard"
    with open(root / "locale" / "en" / "LC_MESSAGES" / "bank.po", "rb") as f:
        catalog = read_po(f)
    missing = []
    for template in sorted((root / "web" / "templates" / "bank").glob("*.html")):
        for msgid in re.findall(r'_\(\s*"((?:[^"\\]|\\.)*)"', template.read_text()):
            message = catalog.get(msgid)
            if message is None or not message.string:
                missing.append((template.name, msgid))
    assert missing == []



def test_activating_a_replacement_shows_the_old_balance_carried_over(bank_city, counter, app):
    teller, clerk = counter("teller"), bank_city.actor("clerk")
    card = activated(bank_city, app, teller)
    teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "321.09"})
    applied = replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, "cash",
                                record_formal_loss=True)
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    cards.collect_card(app, clerk, applied["card_number"], card.citizen_id)
    new_pan = bank_city.pan_of(applied["card_number"])
    answer = teller.post("/bank/activate", {"pan": new_pan, "citizen_id": card.citizen_id, "pin": OTHER_PIN,
                                            "pin_again": OTHER_PIN, "in_person": "yes"})
    assert answer.status_code == 200
    carried = text_of(re.search(r'<div class="msg note carry-over".*?</div>', answer.text, re.S).group(0))
    assert f"原卡账户 {mask_pan(card.pan)} 的余额 321.09 元已全部转入新卡账户，原账户已销户" in carried
    assert banking.statement(app, bank_city.actor("teller"), card.pan)["status"] == "closed"
    with app.db.session() as s:
        assert s.scalar(select(Card.ss_status).where(Card.card_number == card.card_number)) == "cancelled"
    old = teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "1", "pin": GOOD_PIN})
    assert old.status_code == 409 and "账户已销户" in old.text


def test_supervisor_freezes_and_lifts_the_freeze(bank_city, counter, app):
    teller, sup = counter("teller"), counter("bsup")
    card = activated(bank_city, app, teller)
    teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "10"})
    frozen = sup.post("/bank/supervisor", {"pan": card.pan, "task": "freeze", "reason": "司法冻结"})
    assert frozen.status_code == 200 and "账户已冻结：支出暂停" in frozen.text
    assert teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "1"}).status_code == 200  # credits arrive
    refused = teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "1", "pin": GOOD_PIN})
    assert refused.status_code == 409 and "账户已冻结" in refused.text
    assert teller.post("/bank/supervisor", {"pan": card.pan, "task": "unfreeze", "reason": "x"}).status_code == 403
    lifted = sup.post("/bank/supervisor", {"pan": card.pan, "task": "unfreeze", "reason": "解除司法冻结"})
    assert lifted.status_code == 200 and "已解除冻结" in lifted.text
    assert teller.post("/bank/withdraw", {"step": "confirmed", "pan": card.pan, "amount": "1", "pin": GOOD_PIN}).status_code == 200
    assert balance_fen(app, bank_city, card) == 1000


def test_statement_pages_back_to_older_entries_without_the_card_number_in_the_page(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    for i in range(1, 56):
        banking.deposit(app, bank_city.actor("teller"), card.pan, i)
    first = teller.post("/bank/statement", {"pan": card.pan})
    assert first.text.count("现金存款") == 50
    never_shows_secrets(first.text, card)
    more = re.search(r'<form method="post" action="/bank/statement" hx-post="/bank/statement" hx-target="#desk" '
                     r'class="inline">.*?</form>', first.text, re.S).group(0)
    fields = dict(re.findall(r'name="(pan_ref|before_id)" value="([^"]+)"', more))
    older = teller.post("/bank/statement", fields)
    assert older.status_code == 200
    assert older.text.count("现金存款") == 5
    assert "更早的交易" not in older.text


def test_statement_shows_a_pos_hold_without_moving_the_balance(bank_city, counter, app):
    teller = counter("teller")
    card = activated(bank_city, app, teller)
    teller.post("/bank/deposit", {"step": "confirmed", "pan": card.pan, "amount": "100"})
    pos = {"Authorization": f"Bearer {bank_city.token(terminal='POS-1')}", "Idempotency-Key": "hold-1"}
    hold = teller.client.post("/api/v1/terminal/payments/authorize", headers=pos,
                              json={"pan": card.pan, "amount_fen": 2500, "pin": GOOD_PIN})
    assert hold.status_code == 200, hold.text
    page = teller.post("/bank/statement", {"pan": card.pan})
    assert page.status_code == 200
    text = text_of(page.text)
    assert "消费（预授权） · 商户 POS-1 25.00" in text
    assert "可用余额（元） 75.00" in text and "余额（元） 100.00" in text
    ref = re.search(r'name="pan_ref" value="([^"]+)"', page.text).group(1)
    assert teller.post("/bank/statement.pdf", {"pan_ref": ref}).status_code == 200
