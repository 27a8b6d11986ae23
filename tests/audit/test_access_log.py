"""The cardholder's right to know (PIPL): staff reads of a person's data are recorded, and the portal
lists who looked at or changed my record by role and place, never by the staff member's name."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sscard.core.errors import SscardError
from sscard.core.roles import CLI_OPERATOR, Channel
from sscard.models.foundation import AuditRecord
from sscard.services import audit, banking, cards, loss, staff, window
from tests.portal.helpers import login_changed
from tests.support import STAFF_PASSWORD

CLERK_NAME = "王晓明"


def _named_clerk(app):
    """A clerk at C01 with a name and login that must never reach a cardholder's page."""
    staff.add_user(app, CLI_OPERATOR, "wangxm", STAFF_PASSWORD, "clerk", CLERK_NAME, center_code="C01")
    return staff.authenticate_staff(app, "wangxm", STAFF_PASSWORD, Channel.WINDOW)


def _records(app, person_id: int, result: str | None = None) -> list[AuditRecord]:
    with app.db.session() as s:
        q = select(AuditRecord).where(AuditRecord.person_id == person_id)
        if result:
            q = q.where(AuditRecord.result == result)
        return list(s.scalars(q.order_by(AuditRecord.id)))


def test_a_staff_read_of_a_person_leaves_one_viewed_record_and_a_cardholders_own_read_none(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    window.person_overview(app, clerk, card.person_id)
    viewed = _records(app, card.person_id, "viewed")
    assert [(r.operation, r.actor_role, r.place, r.object_type) for r in viewed] == [
        ("window.person", "clerk", "C01", "person")]
    cards.person_cards(app, city.cardholder(card), card.person_id)
    cards.card_status(app, city.cardholder(card), card.card_number)
    assert len(_records(app, card.person_id, "viewed")) == 1
    with pytest.raises(SscardError):  # a refused read is not a view
        cards.card_status(app, city.actor("teller_jsb"), "A0000000X")
    assert len(_records(app, card.person_id, "viewed")) == 1


def test_a_staff_read_refused_on_another_banks_customer_leaves_one_record_naming_the_person(city, app):
    """A teller of the other bank reaching for a GSB customer's statement or card is refused (403) and the
    attempt is recorded, naming whose it was: the auditors and the cardholder's access log see it."""
    from tests.ledger.helpers import activated

    card = activated(city)
    jsb = city.actor("teller_jsb")
    for read, name in ((lambda: banking.statement(app, jsb, card.pan), "bank.statement"),
                       (lambda: cards.card_status(app, jsb, card.card_number), "card.status")):
        with pytest.raises(SscardError) as refused:
            read()
        assert refused.value.status == 403
        last = _records(app, card.person_id)[-1]
        assert (last.operation, last.result, last.actor_role, last.place) == (name, refused.value.code, "teller",
                                                                             jsb.place)
    assert _records(app, card.person_id, "viewed") == []
    mine = audit.about_me(app, city.cardholder(card))["records"]
    assert [(r["operation"], r["kind"]) for r in mine[:2]] == [("card.status", "refused"), ("bank.statement", "refused")]


def test_a_refused_attempt_on_a_banks_account_or_card_is_seen_by_that_banks_supervisor(city, app):
    """The refusal record names the object reached for (`SscardError.about`), so the log's trigger gives it
    the object's bank: GSB's supervisor, whose view is its own bank's records and those about its accounts
    and cards, sees the JSB teller's attempts on a GSB customer; JSB's sees its teller's as its own bank's."""
    from tests.ledger.helpers import activated

    card = activated(city)
    jsb = city.actor("teller_jsb")
    attempts = [(lambda: banking.statement(app, jsb, card.pan), "bank.statement", "bank_account", card.pan),
                (lambda: cards.card_status(app, jsb, card.card_number), "card.status", "card", card.card_number),
                (lambda: loss.report_written_loss(app, jsb, card.pan, card.citizen_id, idempotency_key="jsb-loss"),
                 "bank_loss.report_written", "bank_account", card.pan)]
    for attempt, _name, _type, _id in attempts:
        with pytest.raises(SscardError, match="wrong_bank|其他银行|another bank"):
            attempt()
    refused = [(r.operation, r.object_type, r.object_id, r.result) for r in _records(app, card.person_id, "wrong_bank")]
    assert refused == [(name, kind, number, "wrong_bank") for _a, name, kind, number in attempts]

    staff.add_user(app, CLI_OPERATOR, "bsup_jsb", STAFF_PASSWORD, "bank_supervisor", outlet_code="JSB-001")
    jsb_supervisor = staff.authenticate_staff(app, "bsup_jsb", STAFF_PASSWORD, Channel.BANK_OUTLET)

    def seen_by(supervisor) -> set[tuple[str, str]]:
        found = audit.read_audit(app, supervisor, result="wrong_bank")["records"]
        return {(r["operation"], r["actor"]["role"]) for r in found}

    expected = {(name, "teller") for _a, name, _t, _i in attempts}
    assert seen_by(city.actor("bsup")) == expected  # GSB's: about its account and card
    assert seen_by(jsb_supervisor) == expected  # JSB's: its own teller's


def test_every_refusal_on_another_centers_or_banks_object_names_whose_it_was(city, app):
    """`require_center` and `require_bank` take whose object it is from every caller (a required keyword):
    a clerk of another center reaching for a card, a read or a write, and a teller of another bank reporting
    a loss of our customer's account are each recorded naming the person, as the refused lookups are."""
    from sscard.services import loss
    from tests.ledger.helpers import activated

    card = activated(city)
    clerk2 = city.actor("clerk2")
    attempts = [
        (lambda: cards.collection_receipt(app, clerk2, card.card_number), "card.collection_receipt", "wrong_center"),
        (lambda: cards.unseal_card(app, clerk2, card.card_number, card.citizen_id), "card.unseal", "wrong_center"),
        (lambda: loss.report_written_loss(app, city.actor("teller_jsb"), card.pan, card.citizen_id,
                                          idempotency_key="other-bank-loss"), "bank_loss.report_written", "wrong_bank"),
    ]
    for attempt, name, code in attempts:
        with pytest.raises(SscardError) as refused:
            attempt()
        assert (refused.value.status, refused.value.code) == (403, code)
        last = _records(app, card.person_id)[-1]
        assert (last.operation, last.result) == (name, code)
    assert {r["operation"] for r in audit.about_me(app, city.cardholder(card))["records"] if r["kind"] == "refused"} == {
        name for _a, name, _c in attempts}


def test_a_read_refused_for_its_role_is_recorded_and_a_read_of_nothing_is_not(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    with app.db.session() as s:
        last = s.scalar(select(AuditRecord.id).order_by(AuditRecord.id.desc()).limit(1)) or 0
    with pytest.raises(SscardError, match="forbidden|not allowed|无权"):
        audit.read_audit(app, clerk, person_id=card.person_id)  # a clerk may not read the audit log
    with pytest.raises(SscardError):
        cards.card_status(app, clerk, "A0000000X")  # no such card: 404, nothing recorded
    with pytest.raises(SscardError):  # another person's card, to a cardholder: as if it did not exist
        cards.card_status(app, city.cardholder(card), city.issued_card("李四").card_number)
    with app.db.session() as s:
        new = list(s.scalars(select(AuditRecord).where(AuditRecord.id > last, AuditRecord.result != "ok")))
    assert [(r.operation, r.result, r.actor_role) for r in new] == [("audit.read", "forbidden", "clerk")]


def test_every_staff_read_of_a_persons_data_is_recorded(city, app):
    from tests.ledger.helpers import activated

    card = activated(city)
    reads = [
        (city.actor("clerk"), lambda a: cards.person_cards(app, a, card.person_id), "person.cards"),
        (city.actor("clerk"), lambda a: cards.find_person(app, a, citizen_id=card.citizen_id), "person.find"),
        (city.actor("teller"), lambda a: cards.card_status(app, a, card.card_number), "card.status"),
        (city.actor("teller"), lambda a: banking.statement(app, a, card.pan), "bank.statement"),
        (city.actor("csup"), lambda a: audit.read_audit(app, a, person_id=card.person_id), "audit.read"),
    ]
    for actor, read, name in reads:
        read(actor)
        last = _records(app, card.person_id, "viewed")[-1]
        assert (last.operation, last.actor_role) == (name, str(actor.role))


def test_the_cardholder_page_lists_a_clerks_look_and_formal_loss_by_role_and_center_not_by_name(client, city, app):
    card = city.issued_card()
    other = city.issued_card("李四")
    clerk = _named_clerk(app)
    for _ in range(3):  # a console page shown three times in a minute: one line, three times
        window.person_overview(app, clerk, card.person_id)
    loss.report_formal_loss(app, clerk, card.card_number, presented_citizen_id=card.citizen_id)
    login_changed(client, card)
    page = client.get("/portal/access")
    assert page.status_code == 200
    assert "谁查看或变更了我的信息" in page.text
    rows = page.text.split("<tbody>", 1)[1]
    assert "查看个人信息 （3次）" in rows and rows.count("查看个人信息") == 1 and "正式挂失" in rows
    assert "社保卡服务网点工作人员" in rows and "西湖区社保卡服务中心" in rows
    assert rows.index("正式挂失") < rows.index("查看个人信息")  # newest first
    assert CLERK_NAME not in page.text and "wangxm" not in page.text
    assert 'href="/portal/access"' in client.get("/portal/card").text  # in the portal's navigation
    assert "信息查询密码修改" not in rows  # the cardholder's own actions are not listed

    client.cookies.clear()
    login_changed(client, other)
    theirs = client.get("/portal/access").text
    assert "正式挂失" not in theirs and "查看个人信息" not in theirs


def test_the_access_page_in_english_is_in_english(client, city, app):
    from tests.ledger.helpers import activated

    card = activated(city)
    window.person_overview(app, _named_clerk(app), card.person_id)
    banking.statement(app, city.actor("teller"), card.pan)
    login_changed(client, card)
    page = client.get("/portal/access?lang=en").text
    assert "Who looked at or changed my record" in page and "Access log" in page
    assert "Viewed your record" in page and "Service center clerk" in page and "西湖区社保卡服务中心" in page
    assert "Viewed your account statement" in page and "Bank teller" in page and "ICBC" in page
    assert "Viewed" in page and "Changed" in page
    assert "谁查看" not in page and CLERK_NAME not in page


def test_viewed_records_of_concurrent_reads_are_group_committed_each_once(city, app):
    """The `viewed` records go through the group-commit writer: reads at the same moment share commits,
    and each read leaves exactly one record."""
    from concurrent.futures import ThreadPoolExecutor

    from sscard.services import batching

    card = city.issued_card()
    clerk = city.actor("clerk")
    before = batching.batcher(app).requests
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _i: cards.card_status(app, clerk, card.card_number)["ss_status"], range(24)))
    assert len(answers) == 24
    assert len(_records(app, card.person_id, "viewed")) == 24
    assert batching.batcher(app).requests - before == 24


def test_a_read_whose_viewed_record_cannot_be_committed_is_not_answered(city, app, monkeypatch):
    from sscard.services import batching

    card = city.issued_card()
    clerk = city.actor("clerk")
    cards.card_status(app, clerk, card.card_number)  # the writer is up

    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(batching, "execute_many", broken)  # the batch cannot commit: written alone instead
    assert cards.card_status(app, clerk, card.card_number)["ss_status"]
    assert len(_records(app, card.person_id, "viewed")) == 2
    monkeypatch.setattr(batching.Viewed, "write_alone", broken)  # nor alone: no answer
    with pytest.raises(RuntimeError, match="disk full"):
        cards.card_status(app, clerk, card.card_number)
    assert len(_records(app, card.person_id, "viewed")) == 2


def test_a_counter_visit_reads_are_one_line_each_in_the_access_log_and_its_deposit_its_own(city, app):
    """Session 21's browser probe: one short counter visit listed "viewed your statement" 23 times, the
    teller's page reading the last transactions each time it was drawn, between the customer's lookups and
    the deposit. The same read by the same role at the same place within a visit is one line with its count;
    the deposit stays a line of its own, in its place."""
    from sscard.services import bank_counter
    from tests.ledger.helpers import activated

    card = activated(city)
    teller = city.actor("teller").via(Channel.BANK_OUTLET)
    for round_ in range(3):
        bank_counter.customer(app, teller, card.pan)
        bank_counter.statement(app, teller, card.pan, limit=5)
        if round_ == 1:
            banking.deposit(app, teller, card.pan, 100)
    mine = audit.about_me(app, city.cardholder(card))["records"]
    lines = [(r["operation"], r["kind"], r["count"]) for r in mine if r["operation"].startswith(("bank_counter", "bank.deposit"))]
    assert lines == [("bank_counter.statement", "viewed", 3), ("bank_counter.customer", "viewed", 3),
                     ("bank.deposit", "changed", 1)]


def test_a_found_cards_refused_debits_are_recorded_against_the_account_and_its_holder(city, app):
    """Session 21's cardholder probe: after an oral loss, an ATM withdrawal and a till payment with the lost
    card were refused `account_lost`, and their records named no account and no person, so the holder's
    access log never showed them, nor did the bank's supervisor's view; the ATM still showed the balance
    (R3.4: a balance inquiry with the PIN needs an active account)."""
    from tests.ledger.helpers import PIN, activated, terminal

    card = activated(city, opening_fen=10_000)
    loss.report_oral_loss(app, city.actor("teller"), card.pan, idempotency_key="oral")
    atm, pos = terminal(city, "ATM-GSB-1"), terminal(city, "POS-1")
    attempts = [lambda: banking.withdraw(app, atm, card.pan, 100, PIN, idempotency_key="w"),
                lambda: banking.purchase(app, pos, card.pan, 100, PIN, idempotency_key="p"),
                lambda: banking.balance_inquiry(app, atm, card.pan, PIN)]
    for attempt in attempts:
        with pytest.raises(SscardError) as refused:
            attempt()
        assert refused.value.code == "account_lost"
    named = [(r.operation, r.object_type, r.object_id) for r in _records(app, card.person_id, "account_lost")]
    assert named == [("bank.withdraw", "bank_account", card.pan), ("bank.purchase", "bank_account", card.pan),
                     ("bank.balance", "bank_account", card.pan)]
    mine = {(r["operation"], r["kind"]) for r in audit.about_me(app, city.cardholder(card))["records"]}
    assert {("bank.withdraw", "refused"), ("bank.purchase", "refused"), ("bank.balance", "refused")} <= mine
    seen = {r["operation"] for r in audit.read_audit(app, city.actor("bsup"), result="account_lost")["records"]}
    assert seen == {"bank.withdraw", "bank.purchase", "bank.balance"}


def test_a_balance_inquiry_is_listed_as_a_look_not_a_change(city, app):
    """Session 21's cardholder probe: "Balance inquiry – Changed". An operation declared keyed=False changes
    nothing a retry could apply twice: done, the access log lists it as viewed; a withdrawal stays a change."""
    from tests.ledger.helpers import PIN, activated, terminal

    card = activated(city, opening_fen=10_000)
    atm = terminal(city, "ATM-GSB-1")
    banking.balance_inquiry(app, atm, card.pan, PIN)
    banking.withdraw(app, atm, card.pan, 100, PIN, idempotency_key="w")
    kinds = {r["operation"]: r["kind"] for r in audit.about_me(app, city.cardholder(card))["records"]}
    assert (kinds["bank.balance"], kinds["bank.withdraw"]) == ("viewed", "changed")


def test_a_loss_answers_the_numbers_masked_as_every_other_answer_does(city, app):
    """Session 21's integrator: the six loss operations answered the full PAN or card number, where a deposit,
    a statement and the card's status mask them (R2.8: the API's copies stay masked)."""
    from sscard.core.identifiers import mask_card_number, mask_pan
    from tests.ledger.helpers import activated

    card = activated(city)
    teller, clerk = city.actor("teller"), city.actor("clerk")
    answers = [loss.report_oral_loss(app, teller, card.pan, idempotency_key="o"),
               loss.cancel_bank_loss(app, teller, card.pan, card.citizen_id, idempotency_key="c"),
               loss.report_written_loss(app, teller, card.pan, card.citizen_id, idempotency_key="w")]
    assert [a["pan"] for a in answers] == [mask_pan(card.pan)] * 3
    ss = [loss.report_temporary_loss(app, city.cardholder(card), card.card_number, idempotency_key="t"),
          loss.cancel_ss_loss(app, clerk, card.card_number, card.citizen_id, idempotency_key="x"),
          loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id, idempotency_key="f")]
    assert [a["card_number"] for a in ss] == [mask_card_number(card.card_number)] * 3


def test_a_terminals_read_of_a_card_is_recorded_and_listed_to_its_holder(city, app):
    """Session 22's authorization probe: a kiosk read any card's state by its number and left no trace,
    while the access page promises every look by "staff, terminals or the system". (Session 26: a kiosk reads
    a card only with its SS password, `ss_password.card_status`.)"""
    from sscard.services import passwords
    from tests.ledger.helpers import terminal

    card = city.issued_card()
    kiosk = terminal(city, "KIOSK-1")
    passwords.card_status_with_password(app, kiosk, card.card_number, "123456")
    read = _records(app, card.person_id, "ok")  # (an unkeyed operation: the access log calls it viewed)
    assert [(r.operation, r.actor_role, r.object_type) for r in read if r.actor_role == "terminal"] == [
        ("ss_password.card_status", "terminal", "card")]
    listed = [r for r in audit.about_me(app, city.cardholder(card))["records"]
              if r["operation"] == "ss_password.card_status"]
    assert [r["kind"] for r in listed] == ["viewed"]


def test_the_collection_queues_full_names_are_a_viewed_record_for_each_listed_holder(city, app):
    """Session 22's two probes: the collection queue shows the clerk every holder's full name (issue 17:
    the clerk calls it out) and left no trace; each listed holder now gets a `viewed` record, listed in
    their access log, while a holder not in the queue gets none."""
    from datetime import date

    from tests.console.helpers import ready_replacement

    ready = [city.issued_card("蒋文"), city.issued_card("李雷", birth=date(1985, 3, 2))]
    for card in ready:
        ready_replacement(city, card)
    elsewhere = city.issued_card("韩梅", birth=date(1990, 7, 8))
    queue = window.queue(app, city.actor("clerk"))
    assert sorted(r["name"] for r in queue["ready"]) == ["李雷", "蒋文"]
    for card in ready:
        viewed = _records(app, card.person_id, "viewed")
        assert [(r.operation, r.actor_role, r.object_type) for r in viewed] == [("window.queue", "clerk", "card")]
        words = [r for r in audit.about_me(app, city.cardholder(card))["records"] if r["operation"] == "window.queue"]
        assert [r["kind"] for r in words] == ["viewed"]
    assert _records(app, elsewhere.person_id, "viewed") == []


def test_a_refusal_after_a_card_was_found_names_the_card_and_its_holder_whatever_the_service(city, app):
    """Session 22's auditor: a kiosk's password change on a lost card (card_lost), an agent's reset under a
    power of attorney that does not cover it (attorney_not_valid) and a formal loss by the wrong agent
    (identity_mismatch) were recorded naming no card and no person: nobody could ask who tried what on the
    card. Every lookup of a card or an account by its number now names it in the operation's record
    (access.REACHED), so each such refusal is in the holder's trail."""
    from datetime import timedelta

    from sscard.services import attorney, passwords
    from tests.console.helpers import AGENT_ID, OTHER_ID
    from tests.ledger.helpers import terminal

    card = city.issued_card()
    clerk = city.actor("clerk")
    today = app.clock.today()
    narrow = attorney.record(app, clerk, card.person_id, "李代理", AGENT_ID, ["card.collect"], today,
                             today + timedelta(days=30), "D1")
    formal = attorney.record(app, clerk, card.person_id, "李代理", AGENT_ID, ["ss_loss.report_formal"], today,
                             today + timedelta(days=30), "D2")
    loss.report_temporary_loss(app, city.cardholder(card), card.card_number)
    attempts = [
        (lambda: passwords.change_ss_password(app, terminal(city, "KIOSK-1"), card.card_number, "123456",
                                              "135790", "135790"), "ss_password.change", "card_lost"),
        (lambda: passwords.reset_ss_password_by_agent(app, clerk, card.card_number, card.citizen_id, narrow["id"],
                                                      AGENT_ID), "ss_password.reset_by_agent", "attorney_not_valid"),
        (lambda: loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id, formal["id"], OTHER_ID),
         "ss_loss.report_formal", "identity_mismatch"),
    ]
    for attempt, operation, code in attempts:
        with pytest.raises(SscardError) as refused:
            attempt()
        assert refused.value.code == code
        with app.db.session() as s:
            record = s.scalars(select(AuditRecord).where(AuditRecord.operation == operation)
                               .order_by(AuditRecord.id.desc())).first()
        assert (record.result, record.object_type, record.object_id, record.person_id) == (
            code, "card", card.card_number, card.person_id), operation


def test_a_pos_holds_capture_and_void_are_in_the_holders_record(city, app):
    """Session 22's auditor: the capture of a hold (the money taken) and its void named no person, so the
    cardholder's access log showed the authorization only."""
    from sscard.services import banking
    from tests.ledger.helpers import PIN, activated, terminal

    card = activated(city, opening_fen=50_000)
    pos = terminal(city, "POS-1")
    held = banking.authorize_payment(app, pos, card.pan, 12_000, PIN, idempotency_key="h1")
    banking.capture_payment(app, pos, held["transfer_id"], 10_000, idempotency_key="c1")
    other = banking.authorize_payment(app, pos, card.pan, 4_000, PIN, idempotency_key="h2")
    banking.void_payment(app, pos, other["transfer_id"], idempotency_key="v1")
    mine = {r["operation"] for r in audit.about_me(app, city.cardholder(card))["records"]}
    assert {"bank.capture_payment", "bank.void_payment"} <= mine


def test_a_try_at_another_clerks_visit_is_answered_as_missing_and_recorded(city, app):
    """Session 22's auditor: clerk01 opening clerk03's visit (the way to its unmasked citizen ID) got 404 and
    left no record. It still answers as missing, and the attempt is in the holder's trail."""
    from sscard.services import attorney

    card = city.issued_card()
    visit = attorney.identity_check(app, city.actor("clerk"), card.person_id, card.citizen_id)
    with pytest.raises(SscardError) as refused:
        attorney.get_visit(app, city.actor("csup"), visit["id"])  # the same center, another member of staff
    assert refused.value.code == "not_found"
    with app.db.session() as s:
        record = s.scalars(select(AuditRecord).where(AuditRecord.operation == "attorney.visit")
                           .order_by(AuditRecord.id.desc())).first()
    assert (record.result, record.actor_role, record.object_type, record.person_id) == (
        "not_found", "center_supervisor", "visit", card.person_id)
    with pytest.raises(SscardError):
        attorney.get_visit(app, city.actor("csup"), 999_999)  # a visit of nobody: nothing to record
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditRecord).where(
            AuditRecord.operation == "attorney.visit", AuditRecord.result == "not_found")) == 1


def test_the_access_page_says_an_agent_acted_under_a_power_of_attorney_in_chinese_and_english(client, city, app):
    """Session 23's auditor: the record of an agent's action has the power of attorney (attorney_id), and the
    cardholder's page did not say an agent acted: it does, with the document's reference and the agent's
    masked name; the clerk's own look at the record stays a plain line."""
    from sscard.services import replacement
    from tests.console.helpers import AGENT_ID, poa

    card = city.issued_card()
    p = poa(city, card)
    window.person_overview(app, _named_clerk(app), card.person_id)
    replacement.apply(app, city.actor("clerk"), card.card_number, "damaged", card.citizen_id, payment="cash",
                      attorney_id=p["id"], agent_citizen_id=AGENT_ID)
    assert audit.about_me(app, city.cardholder(card))["records"][0]["agent"] is True
    login_changed(client, card)
    rows = client.get("/portal/access").text.split("<tbody>", 1)[1]
    assert rows.count("代理人李*凭您的授权委托书（WT-2026-001）办理") == 1, rows
    assert rows.index("代理人") < rows.index("查看个人信息")  # on the agent's line, not on the clerk's look
    english = client.get("/portal/access?lang=en").text
    assert "by an agent, 李*, under your power of attorney (WT-2026-001)" in english
    assert "代理人" not in english and "李四" not in english


def test_the_access_log_shows_every_login_as_me_with_time_channel_and_result_never_a_gateways_id(city, app):
    """Session 26: "who looked at my data" hid logins, someone else's successful one too (a finder who knew the
    password). Every login as the cardholder is listed now, by channel and result, with no internal id."""
    from fastapi.testclient import TestClient

    from sscard.composition import create_app
    from tests.hotline.phone import Phone, keys_for_citizen_id
    from tests.portal.helpers import NEW_QUERY_PASSWORD, login

    card = city.issued_card()
    web = create_app(app)
    with TestClient(web) as owner, TestClient(web) as stranger:
        login_changed(owner, card)  # the owner: a portal sign-in with the initial password, then the change
        assert login(stranger, card.citizen_id, "11112222").status_code in (200, 401, 422)  # a wrong password
        phone = Phone(stranger).press("1").press("1")  # someone else, who knows the password, on 12333
        phone.press(keys_for_citizen_id(card.citizen_id)).press(NEW_QUERY_PASSWORD)
        assert "身份验证成功" in phone.text
        mine = audit.about_me(app, city.cardholder(card))["records"]
        logins = [(r["role"], r["kind"]) for r in mine if r["operation"] == "query_password.login"]
        assert logins == [("login_hotline_12333", "login"), ("login_portal", "login_failed"),
                          ("login_portal", "login")]
        page = owner.get("/portal/access")
        assert page.status_code == 200
        for words in ("12333电话登录", "网上服务大厅登录", "登录成功", "登录失败"):
            assert words in page.text, words
        for internal in ("hotline_12333", "12333 IVR", "portal login", "login_portal"):
            assert internal not in page.text, internal
        english = owner.get("/portal/access?lang=en").text
        for words in ("Identification on the 12333 hotline", "Sign-in on the online portal", "Signed in",
                      "Sign-in failed"):
            assert words in english, words
