"""Session 25's authorization probe (who may do what, on whose behalf, on which channel): each finding as the
request that exposed it, sent again. Each test failed on the code the probe ran against."""

from __future__ import annotations

import pytest

from sscard.api.sessions import issue_cardholder_token
from sscard.core.errors import SscardError
from sscard.core.roles import Channel
from sscard.services import loss, window
from tests.console.helpers import AGENT_ID, audits, poa
from tests.ledger.helpers import activated
from tests.support import bearer

pytestmark = pytest.mark.keys_required


def _status(app, pan: str) -> str:
    from sqlalchemy import select

    from sscard.models.foundation import BankAccount

    with app.db.session() as s:
        return s.scalar(select(BankAccount.status).where(BankAccount.pan == pan))


def test_only_the_banks_hotline_lets_a_cardholder_lift_an_oral_bank_loss_never_the_api_or_the_portal(
        city, app, api):
    """A cardholder's API token (the query password: the social security side's secret, initially the last six
    characters of the card number printed on the card) lifted the bank's oral loss through
    `POST /bank-accounts/{pan}/loss/cancel`: whoever found the card undid the loss its holder had just
    reported to the bank. RULES §5: an oral loss is cancelled at an outlet with ID or by the bank's hotline,
    which identifies the caller by the bank's own means. (Found by the session's rules probe too: this test
    is the one kept for both.)"""
    card = activated(city, name="王丽", bank="GSB")
    on_the_line = city.cardholder(card, Channel.HOTLINE_BANK)
    loss.report_oral_loss(app, on_the_line, card.pan)
    city.own_query_password(card)  # (the initial one opens nothing but its change: test_rules_probe_s25)
    token = issue_cardholder_token(app, card.person_id)
    r = api.post(f"/api/v1/bank-accounts/{card.pan}/loss/cancel", json={}, headers=bearer(token, "s25-lift-1"))
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    assert _status(app, card.pan) == "oral_loss"
    for channel in (Channel.PORTAL, Channel.HOTLINE_12333, Channel.API):
        with pytest.raises(SscardError) as refused:
            loss.cancel_bank_loss(app, city.cardholder(card, channel), card.pan, idempotency_key=f"s25-{channel}")
        assert refused.value.code == "forbidden"
    assert _status(app, card.pan) == "oral_loss"
    refusals = [a for a in audits(app, "bank_loss.cancel") if a.result == "forbidden"]
    assert {a.channel for a in refusals} == {"api", "portal", "hotline_12333"}
    assert {a.person_id for a in refusals} == {card.person_id}  # the holder's access log lists each attempt
    loss.cancel_bank_loss(app, on_the_line, card.pan)  # the bank's own line still lifts it
    assert _status(app, card.pan) == "active"


def test_a_fee_receipt_of_an_agents_application_shows_the_holder_masked_and_names_the_power_of_attorney(
        app, city):
    """The fee receipt printed at the window for a replacement an agent applied and paid for under a power of
    attorney showed the holder's full name and the new card's full number, and its record said it was handed
    to the cardholder; the collection receipt of a card an agent collected was masked and named the power of
    attorney (session 22). R2.8's exception is what the cardholder is handed."""
    from sscard.documents.receipts import fee_receipt_lines
    from sscard.services import replacement

    card = city.issued_card("蒋文")
    p = poa(city, card, scope=["replacement.apply", "replacement.pay_fee"])
    clerk = city.actor("clerk")
    applied = replacement.apply(app, clerk, card.card_number, "damaged", card.citizen_id, payment="cash",
                                attorney_id=p["id"], agent_citizen_id=AGENT_ID)
    got = window.holder_fee_receipt(app, clerk, applied["receipt_no"])
    lines = {zh: value for zh, _, value in fee_receipt_lines(got)}
    assert lines["持卡人"].startswith("蒋*") and "蒋文" not in str(got)
    assert applied["card_number"] not in str(got) and "*" in lines["新卡号"]
    record = audits(app, "window.holder_fee_receipt")[-1]
    assert (record.detail["handed_to"], record.attorney_id, record.on_behalf_of) == ("agent", p["id"], card.person_id)
    # the cardholder in person is still handed their own name and number
    other = city.issued_card("蒋武")
    own = replacement.apply(app, clerk, other.card_number, "damaged", other.citizen_id, payment="cash")
    lines = {zh: value for zh, _, value in fee_receipt_lines(window.holder_fee_receipt(app, clerk, own["receipt_no"]))}
    assert lines["持卡人"].startswith("蒋武") and lines["新卡号"] == own["card_number"]
    assert audits(app, "window.holder_fee_receipt")[-1].detail["handed_to"] == "cardholder"


def test_an_agents_attempt_at_what_only_the_cardholder_may_do_is_refused_and_recorded_naming_the_attorney(
        app, city):
    """The window console refused an agent's cancel of a loss or reset of the query password itself, before
    any operation ran: the refused agent action left no audit record (RULES §7: the power of attorney appears
    in every agent action's record; §9: refusals that matter are recorded), and the rule lived in one channel.
    The services refuse it now, recorded, whichever channel passes the agent."""
    from sscard.services import passwords

    card = city.issued_card("蒋文")
    clerk = city.actor("clerk")
    loss.report_temporary_loss(app, city.cardholder(card), card.card_number)
    p = poa(city, card)  # every scope a power of attorney can name
    with pytest.raises(SscardError) as refused:
        loss.cancel_ss_loss(app, clerk, card.card_number, card.citizen_id, p["id"], AGENT_ID)
    assert refused.value.code == "attorney_not_valid"
    with pytest.raises(SscardError) as refused:
        passwords.reset_query_password(app, clerk, card.person_id, card.citizen_id, p["id"], AGENT_ID)
    assert refused.value.code == "attorney_not_valid"
    for operation in ("ss_loss.cancel", "query_password.reset"):
        record = audits(app, operation)[-1]
        assert (record.result, record.attorney_id, record.on_behalf_of, record.person_id) == (
            "attorney_not_valid", p["id"], card.person_id, card.person_id), operation
    assert loss.cancel_ss_loss(app, clerk, card.card_number, card.citizen_id)["ss_status"] == "normal"


def test_a_rotated_token_of_a_user_or_a_terminal_stops_working_and_the_new_one_works(city, app, api, clock):
    """Tokens never expire, and nothing revoked one: `sscard user token` issued a new token for a user or a
    terminal whose token had leaked, and the old one went on working for ever. `--rotate` (issue_token's
    `rotate`) revokes every other token of that user or terminal in the same transaction, recorded."""
    from sscard.core.roles import CLI_OPERATOR
    from sscard.services import staff

    card = city.issued_card()
    path = f"/api/v1/cards/{card.card_number}"
    old, other = city.token("clerk"), city.token("clerk")
    kiosk_old = city.token(terminal="KIOSK-1")
    kiosk_path = f"/api/v1/terminal/cards/{card.card_number}/status"  # with the SS password (session 26)

    def kiosk_read(token: str):
        return api.post(kiosk_path, json={"password": "123456"}, headers=bearer(token))

    assert api.get(path, headers=bearer(old)).status_code == 200
    assert kiosk_read(kiosk_old).status_code == 200
    new = staff.issue_token(app, CLI_OPERATOR, username="clerk", rotate=True)
    assert new["revoked"] == 2
    kiosk_new = staff.issue_token(app, CLI_OPERATOR, terminal_code="KIOSK-1", rotate=True)["token"]
    clock.advance(seconds=app.policy.api.token_cache_seconds)  # a lookup already made is kept that long
    for token, route in ((old, path), (other, path), (kiosk_old, kiosk_path)):
        r = kiosk_read(token) if route == kiosk_path else api.get(route, headers=bearer(token))
        assert (r.status_code, r.json()["code"]) == (401, "unauthenticated")
    assert api.get(path, headers=bearer(new["token"])).status_code == 200
    assert kiosk_read(kiosk_new).status_code == 200
    assert api.get(path, headers=bearer(city.token("teller"))).status_code == 200  # others' tokens stay
    rotated = [(a.detail["for_user"], a.detail["for_terminal"], a.detail["revoked_others"])
               for a in audits(app, "staff.issue_token") if "revoked_others" in a.detail]
    assert rotated == [("clerk", None, 2), (None, "KIOSK-1", 1)]
