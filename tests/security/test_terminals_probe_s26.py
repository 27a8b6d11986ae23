"""Session 26's outside probe of the terminals (ISO 8583, the terminal REST API), the documents, the logs and the
operator's tools: each finding as the request that exposed it, sent again. Each test failed on the code the
probe ran against."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from sscard.models.foundation import AuditRecord, Card
from tests.ledger.helpers import activated, terminal_token
from tests.support import bearer

pytestmark = pytest.mark.keys_required


def test_a_kiosk_shows_a_card_only_with_its_ss_password_and_wrong_ones_count_toward_the_lock(city, app, api):
    """The kiosk's GET /terminal/cards/{number} answered any typed card number's masked holder, both states and
    masked PAN with no evidence of the card: a card number is printed on the card and copied on every form.
    A bank's self-service terminal shows nothing of a card before its PIN; the kiosk now wants the SS password
    (POST .../status), whose misses count toward its lock like any other; the old route refuses."""
    card = activated(city, opening_fen=10_000)
    kiosk = terminal_token(city, "KIOSK-1")
    old = api.get(f"/api/v1/terminal/cards/{card.card_number}", headers=bearer(kiosk))
    assert (old.status_code, old.json()["code"]) == (403, "forbidden"), old.text
    assert card.citizen_id[-4:] not in old.text and "normal" not in old.text
    path = f"/api/v1/terminal/cards/{card.card_number}/status"
    wrong = api.post(path, json={"password": "654321"}, headers=bearer(kiosk))
    assert (wrong.status_code, wrong.json()["code"]) == (401, "wrong_password"), wrong.text
    assert "ss_status" not in wrong.text and card.citizen_id[-4:] not in wrong.text
    with app.db.session() as s:
        assert s.scalar(select(Card.ss_pw_failures).where(Card.card_number == card.card_number)) == 1
    shown = api.post(path, json={"password": "123456"}, headers=bearer(kiosk))
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert (body["ss_status"], body["bank"]["status"], body["person"]["name"]) == ("normal", "active", "张*")
    assert card.card_number not in shown.text and card.citizen_id not in shown.text and card.pan not in shown.text
    assert "123456" not in shown.text
    with app.db.session() as s:
        assert s.scalar(select(Card.ss_pw_failures).where(Card.card_number == card.card_number)) == 0
        record = s.scalars(select(AuditRecord).where(AuditRecord.operation == "ss_password.card_status")
                           .order_by(AuditRecord.id.desc())).first()
    assert (record.actor_id, record.person_id, record.result) == ("KIOSK-1", card.person_id, "ok")
    assert "123456" not in str(record.detail)
    # a card reported lost: nothing of its state without the password, its loss shown with it
    from sscard.services import loss

    loss.report_temporary_loss(app, city.cardholder(card), card.card_number)
    wrong = api.post(path, json={"password": "654321"}, headers=bearer(kiosk))
    assert (wrong.status_code, wrong.json()["code"]) == (401, "wrong_password"), wrong.text
    shown = api.post(path, json={"password": "123456"}, headers=bearer(kiosk))
    assert (shown.status_code, shown.json()["ss_status"]) == (200, "temporary_loss"), shown.text
    # only a kiosk: an ATM has the PIN for its own questions, a card's SS side is not its business
    atm = api.post(path, json={"password": "123456"}, headers=bearer(terminal_token(city, "ATM-GSB-1")))
    assert (atm.status_code, atm.json()["code"]) == (403, "wrong_terminal_kind"), atm.text


def test_a_token_for_a_user_and_a_terminal_at_once_is_refused_and_issues_nothing(city, app):
    """`sscard user token --username clerk --terminal KIOSK-1` issued the clerk's token (a staff credential, to
    be loaded into a kiosk) and recorded it as issued for both; neither answered a bare `invalid_request`."""
    from sscard.core.errors import SscardError
    from sscard.core.roles import CLI_OPERATOR
    from sscard.models.foundation import ApiToken
    from sscard.services import staff
    from tests.console.helpers import audits

    with app.db.session() as s:
        before = s.scalar(select(func.count()).select_from(ApiToken))
    for who in ({"username": "clerk", "terminal_code": "KIOSK-1"}, {}):
        with pytest.raises(SscardError) as refused:
            staff.issue_token(app, CLI_OPERATOR, **who)
        assert refused.value.code == "token_owner" and refused.value.status == 422
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(ApiToken)) == before
    assert not [a for a in audits(app, "staff.issue_token") if a.result == "ok" and a.detail.get("for_user") == "clerk"
                and a.detail.get("for_terminal")]
    assert staff.issue_token(app, CLI_OPERATOR, terminal_code="KIOSK-1")["token"]


@pytest.mark.parametrize("text", ["\u202e三张", "张\u200b三", "\ufeff张三", "甲\x00乙"])
def test_text_no_channel_accepts_is_refused_by_the_frame_on_every_channel_not_only_the_api(city, app, text):
    """Session 25 refused control, bidirectional and invisible characters in the API's bodies only: the window
    console's power of attorney took `\\u202e三张` as an agent's name (shown 张三 on its pages and receipts, masked
    as `\\u202e**`) and the bank console's freeze took `\\u202e…\\x00` as its reason (a NUL: a 500 on PostgreSQL).
    The frame now refuses such text in any operation's arguments, whatever the channel, before anything runs."""
    from datetime import date

    from sscard.core.errors import SscardError
    from sscard.core.identifiers import make_citizen_id
    from sscard.core.roles import Channel
    from sscard.models.counter import PowerOfAttorney
    from sscard.models.foundation import BankAccount
    from sscard.services import attorney, banking

    card = activated(city, name="李四")
    agent = make_citizen_id("330106", date(1990, 1, 1), 77)
    window, outlet = city.actor("clerk", Channel.WINDOW), city.actor("bsup", Channel.BANK_OUTLET)
    calls = [
        lambda: attorney.record(app, window, card.person_id, text, agent, ["card.collect"], date(2026, 1, 1),
                                date(2026, 12, 31), "REF-1"),
        lambda: attorney.record(app, window, card.person_id, "王五", agent, ["card.collect"], date(2026, 1, 1),
                                date(2026, 12, 31), f"REF-{text}"),
        lambda: banking.freeze(app, outlet, card.pan, f"可疑交易{text}"),
    ]
    for call in calls:
        with pytest.raises(SscardError) as refused:
            call()
        assert (refused.value.code, refused.value.status) == ("invalid_text", 422)
    with app.db.session() as s:
        assert s.scalar(select(func.count()).select_from(PowerOfAttorney)) == 0
        assert s.scalar(select(BankAccount.status).where(BankAccount.pan == card.pan)) == "active"
    # the same words without the characters pass (a line break in a typed reason too)
    assert banking.freeze(app, outlet, card.pan, "可疑交易\r\n第二行")["status"] == "frozen"


@pytest.mark.parametrize("transfer_id", ["a/b", "..", "a%2Fb", " x ", "ＡＢ", "a?b"])
def test_a_hold_whose_id_no_url_can_name_is_refused_before_any_money_is_held(city, app, api, transfer_id):
    """A POS may choose its payment's transfer id: `a/b`, `..` or `a%2Fb` were taken, the amount held, and no
    capture or void could ever reach the hold (404 on every route), so the cardholder's money stayed held until
    it expired. A transfer id is now one URL path segment's worth of letters, digits, - and _ (the core refuses
    any other on every channel; the contract declares it)."""
    from sscard.core.errors import SscardError
    from sscard.services import banking
    from tests.ledger.helpers import PIN, balance_of, invariants, terminal

    card = activated(city, opening_fen=10_000)
    pos = terminal_token(city, "POS-1")
    held = api.post("/api/v1/terminal/payments/authorize", headers=bearer(pos, key="h-1"),
                    json={"pan": card.pan, "amount_fen": 5_000, "pin": PIN, "transfer_id": transfer_id})
    assert (held.status_code, held.json()["code"]) == (422, "invalid_request"), held.text
    with pytest.raises(SscardError) as refused:
        banking.authorize_payment(app, terminal(city, "POS-1"), card.pan, 5_000, PIN, transfer_id=transfer_id,
                                  idempotency_key="h-2")
    assert refused.value.code == "invalid_transfer_id"
    statement = banking.statement(app, city.actor("teller"), card.pan)
    assert (statement["available_fen"], balance_of(app, card.pan)) == (10_000, 10_000) and invariants(app)["ok"]
    ok = api.post("/api/v1/terminal/payments/authorize", headers=bearer(pos, key="h-3"),
                  json={"pan": card.pan, "amount_fen": 5_000, "pin": PIN, "transfer_id": "POS-1_0042"})
    assert ok.status_code == 200, ok.text
    voided = api.post("/api/v1/terminal/payments/POS-1_0042/void", headers=bearer(pos, key="h-4"))
    assert voided.status_code == 200, voided.text


def test_the_frames_refusal_of_unreadable_text_is_declared_on_every_operations_route(city, app, api):
    """The frame's `invalid_text` reaches an API client through a path parameter (the bodies' schemas refuse
    such text first, 422 invalid_request): each operation's route declares it among its error codes."""
    from urllib.parse import quote

    card = city.issued_card()
    answer = api.get(f"/api/v1/cards/{quote(chr(0x202E) + card.card_number)}", headers=bearer(city.token("clerk")))
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_text"), answer.text
    spec = api.get("/openapi.json").json()
    assert "invalid_text" in spec["paths"]["/api/v1/cards/{card_number}"]["get"]["description"]
    assert "invalid_text" in spec["paths"]["/api/v1/terminal/withdrawal"]["post"]["description"]
