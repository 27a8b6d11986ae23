"""Session 26's outside probe of the terminals (ISO 8583, the terminal REST API), the documents, the logs and the
operator's tools: each finding as the request that exposed it, sent again. Each test failed on the code the
probe ran against."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.models.foundation import AuditRecord, Card
from tests.ledger.helpers import PIN, activated, terminal_token
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
    _ = PIN
