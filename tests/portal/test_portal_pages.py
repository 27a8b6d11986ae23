"""The portal's pages through the ASGI app (fast): login, forced change, CSRF, loss, records, isolation."""

import re

import pytest

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.services import cards, insurance, passwords
from sscard.services import staff as staff_svc
from tests.portal.helpers import NEW_QUERY_PASSWORD, csrf, initial_password, login, login_changed


def test_pages_need_a_login_and_the_login_page_renders(client):
    response = client.get("/portal/card", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/portal/login"
    page = client.get("/portal/login")
    assert "持卡人登录" in page.text and 'name="pre_token"' in page.text
    assert "Cardholder sign-in" in client.get("/portal/login?lang=en").text


def test_the_initial_password_forces_a_change_before_anything_else(client, city):
    card = city.issued_card()
    response = login(client, card.card_number, initial_password(card.card_number))
    assert response.status_code == 303 and response.headers["location"] == "/portal/password"
    for path in ("/portal/insurance", "/portal/insurance.csv", "/portal/medical", "/portal/access",
                 "/portal/certificate", "/portal/"):
        blocked = client.get(path, follow_redirects=False)
        assert blocked.headers["location"] == "/portal/password", path
    page = client.get("/portal/password")
    assert "请先修改密码" in page.text and "社保应用密码" not in page.text.split("</h1>", 1)[1].split("修改信息查询密码")[1]
    weak = client.post("/portal/password/query", data={
        "csrf_token": csrf(page.text), "old": initial_password(card.card_number), "new": "abc", "new_again": "abc"})
    assert weak.status_code == 422 and "msg error" in weak.text
    done = client.post("/portal/password/query", data={
        "csrf_token": csrf(page.text), "old": initial_password(card.card_number),
        "new": NEW_QUERY_PASSWORD, "new_again": NEW_QUERY_PASSWORD}, follow_redirects=False)
    assert done.headers["location"] == "/portal/card?changed=1"
    card_page = client.get(done.headers["location"])
    assert "信息查询密码已修改" in card_page.text and "正常使用" in card_page.text
    client.cookies.clear()
    assert login(client, card.citizen_id, NEW_QUERY_PASSWORD).headers["location"] == "/portal/card"


def test_the_initial_password_opens_the_cards_state_and_its_temporary_loss_but_not_lifting_it(client, city, app):
    """RULES gap 16 on the portal: whoever signs in with the initial password (the number on the card's
    face, a finder included) may hear the card's state and stop the card, as on 12333 and the API, but lift
    no loss and change no other password until the initial one is changed; the menu shows only that."""
    card = city.issued_card()
    assert login(client, card.card_number, initial_password(card.card_number)).headers["location"] == "/portal/password"
    page = client.get("/portal/password")
    nav = page.text.split("<nav", 1)[1].split("</nav>", 1)[0]
    assert [h for h in re.findall(r'href="(/portal/[a-z]+)"', nav)] == ["/portal/card", "/portal/loss",
                                                                        "/portal/progress", "/portal/password"]
    assert "正常使用" in client.get("/portal/card", follow_redirects=False).text
    loss_page = client.get("/portal/loss", follow_redirects=False)
    assert loss_page.status_code == 200 and "临时挂失" in loss_page.text
    confirm = client.post("/portal/loss/report", data={"csrf_token": csrf(loss_page.text)})
    key = re.search(r'name="idempotency_key" value="([^"]+)"', confirm.text).group(1)
    done = client.post("/portal/loss/report", data={"csrf_token": csrf(loss_page.text), "confirm": "yes",
                                                    "idempotency_key": key})
    assert done.status_code == 200 and "已办理临时挂失" in done.text
    assert cards_state(app, card) == "temporary_loss"
    # lifting it is not open: the page says why, and a forged POST goes to the change, nothing undone
    assert "/portal/loss/cancel" not in done.text and "须先修改初始信息查询密码" in done.text
    forged = client.post("/portal/loss/cancel", data={"csrf_token": csrf(loss_page.text), "confirm": "yes",
                                                      "idempotency_key": "lift-1"}, follow_redirects=False)
    assert forged.status_code == 303 and forged.headers["location"] == "/portal/password"
    ss = client.post("/portal/password/ss", data={"csrf_token": csrf(loss_page.text), "old": "123456",
                                                  "new": "370915", "new_again": "370915"}, follow_redirects=False)
    assert ss.headers["location"] == "/portal/password"
    assert cards_state(app, card) == "temporary_loss"
    english = client.get("/portal/loss?lang=en")
    assert "first change the initial query password" in english.text


def cards_state(app, card) -> str:
    return cards.card_status(app, SYSTEM_ACTOR, card.card_number)["ss_status"]


def test_posts_without_the_csrf_token_are_refused(client, city):
    card = city.issued_card()
    login_changed(client, card)
    assert client.post("/portal/loss/report", data={}).status_code == 403
    assert client.post("/portal/loss/report", data={"csrf_token": "forged"}).status_code == 403
    assert client.post("/portal/login", data={"login": card.citizen_id, "password": "x"}).status_code == 403
    assert "正常使用" in client.get("/portal/loss").text


def test_five_wrong_passwords_lock_and_the_page_shows_until_when(client, city, clock):
    card = city.issued_card()
    for _ in range(4):
        wrong = login(client, card.citizen_id, "not-it-1")
        assert wrong.status_code == 401 and "密码错误" in wrong.text
    locked = login(client, card.citizen_id, "not-it-1")
    assert locked.status_code == 423
    assert "密码已锁定至2026年1月5日10:30" in locked.text  # 02:00 UTC + 30 min, in Beijing time (core.clock.local_text)
    # the ID typed stays in its field only (so a hurried cardholder need not type 18 characters again),
    # on a page no cache keeps; the password never comes back
    assert locked.text.count(card.citizen_id) == 1 and f'value="{card.citizen_id}"' in locked.text
    assert locked.headers["cache-control"] == "no-store" and "not-it-1" not in locked.text
    still = login(client, card.citizen_id, initial_password(card.card_number))
    assert still.status_code == 423
    clock.advance(minutes=31)
    assert login(client, card.citizen_id, initial_password(card.card_number)).status_code == 303


def test_unknown_logins_answer_like_wrong_passwords(client, city):
    city.issued_card()
    response = login(client, "110105194912310021", "whatever1")
    assert response.status_code == 401 and "密码错误" in response.text


def test_a_login_typed_with_spaces_or_in_lower_case_is_the_same_login(client, city):
    """Session 21's browser probe: "G4752 7922" (the card number as printed in groups) was refused as a wrong
    password, and counted against the client, while "g47527922" logged in."""
    card = city.issued_card()
    number = card.card_number
    for typed in (f"{number[:5]} {number[5:]}", f" {number.lower()[:5]}\u3000{number[5:]} "):
        client.cookies.clear()
        assert login(client, typed, initial_password(number)).headers["location"] == "/portal/password", typed
    cid = card.citizen_id
    client.cookies.clear()
    assert login(client, f"{cid[:6]} {cid[6:14]} {cid[14:]}", initial_password(number)).status_code == 303


def test_a_session_ends_after_ten_idle_minutes_and_at_logout(client, city, clock):
    card = city.issued_card()
    login_changed(client, card)
    clock.advance(minutes=9)
    assert client.get("/portal/card", follow_redirects=False).status_code == 200
    clock.advance(minutes=11)
    assert client.get("/portal/card", follow_redirects=False).headers["location"] == "/portal/login"
    login(client, card.citizen_id, NEW_QUERY_PASSWORD)
    page = client.get("/portal/card")
    out = client.post("/portal/logout", data={"csrf_token": csrf(page.text)}, follow_redirects=False)
    assert out.headers["location"] == "/portal/login"
    assert client.get("/portal/card", follow_redirects=False).headers["location"] == "/portal/login"


def test_temporary_loss_online_stops_ss_use_reminds_of_the_bank_and_can_be_cancelled(client, city, app):
    card = city.issued_card()
    login_changed(client, card)
    page = client.get("/portal/loss")
    done = client.post("/portal/loss/report", data={"csrf_token": csrf(page.text), "idempotency_key": "k1", "confirm": "yes"})
    assert done.status_code == 200
    # the bank side, separate: not activated here, so said to need no report (not sent to the bank to report it)
    assert "已办理临时挂失" in done.text and "无需挂失" in done.text and "工商银行" in done.text
    assert card.card_number not in done.text  # masked
    kiosk = staff_svc.actor_for_token(app, city.token(terminal="KIOSK-1"))
    with pytest.raises(SscardError) as err:
        passwords.verify_ss_password(app, kiosk, card.card_number, "123456")
    assert err.value.code == "card_lost"
    again = client.post("/portal/loss/report", data={"csrf_token": csrf(page.text), "idempotency_key": "k2", "confirm": "yes"})
    assert again.status_code == 409 and "msg error" in again.text
    cancelled = client.post("/portal/loss/cancel", data={"csrf_token": csrf(page.text), "idempotency_key": "k3", "confirm": "yes"})
    assert "已解除临时挂失" in cancelled.text
    assert passwords.verify_ss_password(app, kiosk, card.card_number, "123456")["verified"] is True


def test_my_card_shows_both_sides_in_plain_words_with_masked_numbers(client, city):
    card = city.issued_card("赵敏")
    login_changed(client, card)
    page = client.get("/portal/card").text
    assert "金融功能未启用" in page and "还剩60天" in page and "工商银行任一网点" in page
    assert card.card_number not in page and card.citizen_id not in page and card.pan not in page
    assert card.pan[:6] + "*********" + card.pan[-4:] in page
    assert "赵*" in page and "赵敏" not in page
    english = client.get("/portal/card?lang=en").text
    assert "Not activated" in english and "60 days left" in english and "ICBC" in english


def test_insurance_records_page_chart_and_csv_show_only_my_records(client, city, app):
    mine = city.issued_card("李四")
    other = city.issued_card("王五")
    for month, base in (("2024-12", 600_000), ("2025-01", 650_000), ("2025-02", 650_000)):
        insurance.record_month(app, SYSTEM_ACTOR, mine.person_id, month, "91330106MA2H000001", "西湖科技有限公司", base)
    insurance.record_month(app, SYSTEM_ACTOR, other.person_id, "2025-01", "91330106MA2H000077", "别人的公司", 900_000)
    login_changed(client, mine)
    page = client.get("/portal/insurance").text
    assert "西湖科技有限公司" in page and "别人的公司" not in page
    assert "<title id=\"pension-chart-title\">每年养老保险缴费</title>" in page
    assert "2025年：合计3,120.00元" in page  # pension 2025: 2 months × (1040.00 employer + 520.00 personal)
    assert "共10条记录" in page  # latest year by default: 2 months × 5 types
    everything = client.get(f"/portal/insurance?year=&person_id={other.person_id}").text
    assert "共15条记录" in everything and "别人的公司" not in everything
    pension = client.get("/portal/insurance?year=2025&type=pension").text
    assert "共2条记录" in pension
    csv = client.get(f"/portal/insurance.csv?year=2025&person_id={other.person_id}")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.startswith("\ufeff月份,险种")
    assert "别人的公司" not in csv.text and csv.text.count("\r\n") == 11


def test_another_persons_cards_are_never_reachable_through_the_api(client, city):
    mine = city.issued_card("李四")
    other = city.issued_card("王五")
    token = client.post("/api/v1/cardholder/login", json={"login": mine.citizen_id,
                                                          "password": city.own_query_password(mine)}).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert client.get(f"/api/v1/persons/{mine.person_id}/cards", headers=headers).status_code == 200
    answer = client.get(f"/api/v1/persons/{other.person_id}/cards", headers=headers)
    assert answer.status_code == 404
    assert client.get(f"/api/v1/cards/{other.card_number}", headers=headers).status_code == 404


def test_ss_password_change_on_the_portal(client, city, app):
    card = city.issued_card(birth=__import__("datetime").date(1980, 5, 17))
    login_changed(client, card)
    page = client.get("/portal/password")
    weak = client.post("/portal/password/ss", data={"csrf_token": csrf(page.text), "old": "123456",
                                                   "new": "111111", "new_again": "111111"})
    assert weak.status_code == 422 and "过于简单" in weak.text
    ok = client.post("/portal/password/ss", data={"csrf_token": csrf(page.text), "old": "123456",
                                                 "new": "370915", "new_again": "370915"})
    assert ok.status_code == 200 and "社保应用密码已修改" in ok.text
    kiosk = staff_svc.actor_for_token(app, city.token(terminal="KIOSK-1"))
    assert passwords.verify_ss_password(app, kiosk, card.card_number, "370915")["verified"] is True


def test_replacement_progress_page_lists_every_card_with_its_steps(client, city):
    card = city.issued_card()
    login_changed(client, card)
    page = client.get("/portal/progress").text
    assert "目前没有在办的补换卡申请" in page
    assert page.count('class="done') == 4 and 'aria-current="step"' in page


def test_progress_follows_a_card_from_application_to_ready_at_its_center(client, city, app):
    from sscard.services import enrolment, production

    person_id, cid = city.new_person("钱七")
    clerk = city.actor("clerk")
    enrolment.apply_first_card(app, clerk, person_id, "GSB", "C01")
    batch = production.start_batch(app, clerk, "C01")
    response = login(client, cid, cid[-6:])  # no card yet: the initial password comes from the SS number
    assert response.headers["location"] == "/portal/password"
    page = client.get("/portal/password")
    client.post("/portal/password/query", data={"csrf_token": csrf(page.text), "old": cid[-6:],
                                                "new": NEW_QUERY_PASSWORD, "new_again": NEW_QUERY_PASSWORD})
    progress = client.get("/portal/progress").text
    assert progress.count('class="done') == 2 and "制卡中" in progress
    production.complete_batch(app, clerk, batch["batch"])
    progress = client.get("/portal/progress").text
    assert progress.count('class="done') == 3 and "西湖区社保卡服务中心" in progress and "请携带身份证到" in progress
    card_page = client.get("/portal/card").text
    assert "待领取" in card_page and "领卡后60天内" in card_page


def test_medical_personal_account_shows_balance_and_movements(client, city, app):
    from sscard.services import medical

    card = city.issued_card()
    medical.credit_month(app, SYSTEM_ACTOR, "2025-12", [{"person_id": card.person_id, "amount_fen": 15_000}])
    medical.credit_month(app, SYSTEM_ACTOR, "2026-01", [{"person_id": card.person_id, "amount_fen": 15_050}])
    login_changed(client, card)
    page = client.get("/portal/medical").text
    assert "300.50元" in page and "划入" in page and "2026-01" in page
    assert "正常参保（最近缴费2026-01）" in page
    english = client.get("/portal/medical?lang=en").text
    assert "300.50 yuan" in english and "Monthly credit" in english


def test_a_replacement_shows_its_progress_and_blocks_cancelling_the_loss(client, city, app):
    from sscard.services import production, replacement

    card = city.issued_card()
    login_changed(client, card)
    page = client.get("/portal/loss")
    client.post("/portal/loss/report", data={"csrf_token": csrf(page.text), "idempotency_key": "r1", "confirm": "yes"})
    clerk = city.actor("clerk")
    applied = replacement.apply(app, clerk, card.card_number, "lost", card.citizen_id, payment="cash",
                                record_formal_loss=True)
    new_number = applied.get("new_card_number") or applied.get("card_number")
    assert new_number and new_number != card.card_number
    progress = client.get("/portal/progress").text
    assert "遗失补卡" in progress and new_number[:2] + "*****" + new_number[-2:] in progress
    assert "目前没有在办的补换卡申请" not in progress
    assert "原银行账户余额全部转入新账户" in progress  # RULES §6: the bank side waits for the activation
    card_page = client.get("/portal/card").text
    assert "正式挂失" in card_page and "在办的补换卡" in card_page
    loss_page = client.get("/portal/loss").text
    assert "只能持身份证到服务网点" in loss_page and "解除临时挂失" not in loss_page
    batch = production.start_batch(app, clerk, "C01")
    production.complete_batch(app, clerk, batch["batch"])
    progress = client.get("/portal/progress").text
    assert "西湖区社保卡服务中心" in progress and progress.count('aria-current="step"') == 2


def test_switching_language_after_a_form_post_goes_back_to_the_page_not_an_error(client, city):
    card = city.issued_card()
    login_changed(client, card)
    page = client.get("/portal/loss")
    client.post("/portal/loss/report", data={"csrf_token": csrf(page.text), "idempotency_key": "l1", "confirm": "yes"})
    back = client.get("/lang/en", headers={"referer": "http://testserver/portal/loss/report"})
    assert back.status_code == 200 and "Report loss" in back.text and str(back.url).endswith("/portal/loss")
    for path, target in (("/portal/password/ss", "/portal/password"), ("/portal/logout", "/portal/card")):
        assert client.get(path, follow_redirects=False).headers["location"] == target
    assert client.get("/portal/card", follow_redirects=False).status_code == 200  # a GET never logs out


def test_settlements_show_on_the_medical_page_and_an_online_loss_refuses_the_next_one(client, city, app):
    from sqlalchemy import select

    from sscard.core.roles import CLI_OPERATOR
    from sscard.models.foundation import Card, Terminal
    from sscard.services import medical
    from sscard.services.staff import terminal_actor

    card = city.issued_card()
    medical.add_institution(app, CLI_OPERATOR, "H1", "北山街道社区卫生服务中心", "hospital", 1, True,
                            settlement_bank_code="GSB", settlement_account_no="1202H10001")
    medical.add_terminal(app, CLI_OPERATOR, "H1", "HOSP-H1-1")
    medical.credit_month(app, SYSTEM_ACTOR, "2026-01", [{"person_id": card.person_id, "amount_fen": 50_000}])
    with app.db.session() as s:
        term = terminal_actor(s, s.scalar(select(Terminal).where(Terminal.code == "HOSP-H1-1")))
        ident = s.scalar(select(Card.ident_code).where(Card.card_number == card.card_number))
    bill = [{"category": "drug", "name": "阿莫西林胶囊", "amount_fen": 12_000, "covered": True}]
    quote = medical.pre_settle(app, term, card.card_number, ident, bill, True)
    medical.settle(app, term, quote["quote"], card.card_number, ident, "123456", "cash", None, idempotency_key="s1")
    login_changed(client, card)
    page = client.get("/portal/medical").text
    assert "北山街道社区卫生服务中心" in page and "120.00" in page and "就医购药支付" in page
    loss_page = client.get("/portal/loss")
    client.post("/portal/loss/report", data={"csrf_token": csrf(loss_page.text), "idempotency_key": "m1", "confirm": "yes"})
    with pytest.raises(SscardError) as err:
        quote = medical.pre_settle(app, term, card.card_number, ident, bill, True)
        medical.settle(app, term, quote["quote"], card.card_number, ident, "123456", "cash", None,
                       idempotency_key="s2")
    assert err.value.code in ("card_lost", "card_not_usable")


def test_the_login_page_sends_a_signed_in_cardholder_on_and_refuses_forged_tokens(client, city):
    card = city.issued_card()
    login_changed(client, card)
    assert client.get("/portal/login", follow_redirects=False).headers["location"] == "/portal/card"
    client.cookies.clear()
    client.cookies.set("sscard_portal_pre", "abc", path="/portal")
    forged = client.post("/portal/login", data={"login": card.citizen_id, "password": "x", "pre_token": "äbc"})
    assert forged.status_code == 403


@pytest.mark.parametrize("which", ["query", "ss"])
def test_a_password_form_sent_twice_changes_the_password_once_and_says_done_both_times(client, city, app, which):
    """The portal's password forms were plain posts with no key: a double tap changed the password, then
    refused the second post as a wrong old password (session 23's integrator). The form now carries its
    one-time key, and the second post is answered as the first."""
    from sqlalchemy import func, select

    from sscard.models.foundation import AuditRecord

    card = city.issued_card()
    login_changed(client, card)
    page = client.get("/portal/password")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    old, new = (NEW_QUERY_PASSWORD, "13572468") if which == "query" else ("123456", "864213")
    form = {"csrf_token": csrf(page.text), "idempotency_key": key, "old": old, "new": new, "new_again": new}
    first, second = (client.post(f"/portal/password/{which}", data=form) for _ in range(2))
    assert first.status_code == second.status_code == 200, second.text
    assert "wrong_password" not in second.text and "原密码不正确" not in second.text
    name = "query_password.change" if which == "query" else "ss_password.change"
    with app.db.session() as s:
        done = s.scalar(select(func.count()).select_from(AuditRecord)
                        .where(AuditRecord.operation == name, AuditRecord.result == "ok"))
    assert done == (2 if which == "query" else 1)  # (the query password: the forced change of login_changed too)


def test_a_loss_reported_after_the_session_ended_lands_on_a_login_page_that_says_it_was_not_done(client, city, app,
                                                                                                 clock):
    """The brief's probe: the cardholder confirmed a temporary loss 11 minutes after the page was shown; the
    session had ended, nothing was done, and the portal's login page said nothing of it, so they could
    believe the card was reported lost. The portal's sign-in redirect now says so as the consoles' does."""
    card = city.issued_card()
    login_changed(client, card)
    page = client.get("/portal/loss")
    form = {"csrf_token": csrf(page.text), "confirm": "yes", "idempotency_key": "loss-after-expiry"}
    clock.advance(minutes=11)
    plain = client.post("/portal/loss/report", data=form, follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == "/portal/login?unsent=1"
    htmx = client.post("/portal/loss/report", data=form, headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.headers["HX-Redirect"] == "/portal/login?unsent=1"
    told = client.get("/portal/login?unsent=1")
    assert "刚才提交的操作没有办理" in told.text
    assert "刚才提交的操作没有办理" not in client.get("/portal/login").text
    assert client.get("/portal/card", follow_redirects=False).headers["location"] == "/portal/login"  # a GET: no note
    kiosk = staff_svc.actor_for_token(app, city.token(terminal="KIOSK-1"))
    assert passwords.verify_ss_password(app, kiosk, card.card_number, "123456")["verified"] is True  # not lost


def test_every_operation_a_portal_page_names_is_a_declared_one():
    """A page opens to an initial-password session by the operations it names; a misspelt one would
    silently close it (never open it), so each name must be one the frame declares."""
    from sscard.services.access import DECLARATIONS
    from sscard.web.portal import PAGES
    assert all(op in DECLARATIONS for _key, _href, _label, runs in PAGES for op in runs)
