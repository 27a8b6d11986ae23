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
        record = s.scalars(select(AuditRecord).where(AuditRecord.operation == "card.status_with_password")
                           .order_by(AuditRecord.id.desc())).first()
    assert (record.actor_id, record.person_id, record.result) == ("KIOSK-1", card.person_id, "ok")
    assert "123456" not in str(record.detail)
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
