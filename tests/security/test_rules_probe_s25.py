"""Session 25's rules probe (RULES §4-§6 against every channel): each finding as the request that exposed
it, sent again. Each test failed on the code the probe ran against."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.core.roles import Channel
from sscard.models.foundation import BankAccount
from sscard.services import loss
from tests.ledger.helpers import activated

pytestmark = pytest.mark.keys_required


def _key(n: str) -> dict[str, str]:
    return {"Idempotency-Key": f"s25-{n}"}


def _status_of(app, pan: str) -> str:
    with app.db.session() as s:
        return s.scalar(select(BankAccount.status).where(BankAccount.pan == pan))


def _login(api, card, password: str) -> dict[str, str]:
    answer = api.post("/api/v1/cardholder/login", json={"login": card.citizen_id, "password": password},
                      headers=_key(f"login-{card.person_id}-{password}"))
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_a_cardholder_api_token_of_an_initial_query_password_may_only_change_it(city, app, api):
    """RULES §4: the query password's change is forced at the first login while it is the initial one. The
    portal kept this (its pages send such a session to the change page) but the API answered the login
    `must_change_password: true` with a token good for everything: a finder of the card (the initial
    password is the last six characters of the card number printed on it) read the statement, reported
    and cancelled the SS loss, issued proofs of insurance. The frame refuses all but the change now
    (`password_change_required`), on the portal's operations too; once changed, the new login is served.
    Session 26 (docs/RULES.md gap 16, one rule for every channel with 12333): such a cardholder may also
    report the card lost and read its state (a finder stopping the card harms nobody), never lift the loss."""
    card = activated(city, opening_fen=10_000)
    holder = _login(api, card, card.card_number[-6:])
    for n, (method, route, body) in enumerate([
        ("get", f"/api/v1/bank-accounts/{card.pan}/statement", None),
        ("post", f"/api/v1/cards/{card.card_number}/ss-loss/cancel", {}),
    ]):
        kwargs = {"headers": {**holder, **_key(f"r{n}")}} | ({"json": body} if body is not None else {})
        refused = getattr(api, method)(route, **kwargs)
        assert refused.status_code == 403 and refused.json()["code"] == "password_change_required", (route, refused.text)
    with app.db.session() as s:
        from sscard.models.foundation import Card
        assert s.scalar(select(Card.ss_status).where(Card.card_number == card.card_number)) == "normal"
    reported = api.post(f"/api/v1/cards/{card.card_number}/ss-loss/temporary", json={},
                        headers={**holder, **_key("report")})
    assert reported.status_code == 200, reported.text
    assert api.get(f"/api/v1/persons/{card.person_id}/cards", headers=holder).status_code == 200
    cancelled = api.post(f"/api/v1/cards/{card.card_number}/ss-loss/cancel", json={},
                         headers={**holder, **_key("cancel")})
    assert cancelled.status_code == 403 and cancelled.json()["code"] == "password_change_required"
    with app.db.session() as s:
        assert s.scalar(select(Card.ss_status).where(Card.card_number == card.card_number)) == "temporary_loss"
    loss.cancel_ss_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    new = "80468213"
    changed = api.post("/api/v1/cardholder/query-password/change", headers={**holder, **_key("chg")},
                       json={"old": card.card_number[-6:], "new": new, "new_again": new})
    assert changed.status_code == 200, changed.text
    holder = _login(api, card, new)
    assert api.get(f"/api/v1/bank-accounts/{card.pan}/statement", headers=holder).status_code == 200
    # the portal's session actor carries the mark too: the frame refuses the portal's operations alike
    from sscard.services import passwords, websession
    passwords.reset_query_password(app, city.actor("clerk"), card.person_id, card.citizen_id)
    login = websession.cardholder_login(app, card.citizen_id, card.card_number[-6:])
    actor, _row = websession.resolve(app, login.token, "cardholder")
    with pytest.raises(Exception) as err:
        loss.cancel_ss_loss(app, actor, card.card_number)
    assert getattr(err.value, "code", None) == "password_change_required"


def test_a_lost_or_frozen_accounts_pin_is_changed_on_no_channel(city, app, client):
    """RULES §3 (docs/RULES.md R3.4): a lost or frozen account takes no debit, a balance inquiry nor a PIN
    change. An ATM refused the lost card's balance (`account_lost`) but changed its PIN, and so did the
    bank's hotline, the teller's API and the cardholder's: a finder who had seen the PIN typed set one of
    their own while the owner's oral loss ran, and had the card to themselves once it lapsed. Refused on
    every channel now, the account's state first; a reset in person at the outlet is still done."""
    from sscard.core.errors import SscardError
    from sscard.services import banking, staff
    from tests.hotline.conftest import pin_for
    from tests.hotline.phone import Phone, keys_for_citizen_id

    card = city.issued_card("周七", phone="13912345678")
    pin = pin_for(card)
    teller = city.actor("teller")
    banking.activate(app, teller, card.pan, card.citizen_id, pin, pin, cardholder_in_person=True)
    new = pin_for(card, avoid=pin)
    atm = staff.actor_for_token(app, city.token(terminal="ATM-GSB-1"))
    city.own_query_password(card)
    holder = city.cardholder(card, Channel.API)
    for lost in ("oral", "written", "frozen"):
        if lost == "oral":
            loss.report_oral_loss(app, city.cardholder(card, Channel.HOTLINE_BANK), card.pan)
        elif lost == "written":
            loss.report_written_loss(app, teller, card.pan, card.citizen_id)
        else:
            loss.cancel_bank_loss(app, teller, card.pan, card.citizen_id)
            banking.freeze(app, city.actor("bsup"), card.pan, "court order")
        for who in (atm, teller, holder):
            with pytest.raises(SscardError) as err:
                banking.change_pin(app, who, card.pan, pin, new, new, idempotency_key=f"{lost}-{who.id}")
            expected = "account_frozen_pin_change" if lost == "frozen" else "account_lost_pin_change"
            assert err.value.code == expected, (lost, who.role)
        phone = Phone(client, "bank:GSB").press("1").press("5")
        phone.press(keys_for_citizen_id(card.citizen_id)).press("2").press(card.phone)
        phone.press(pin).press(new).press(new)
        assert "银行卡密码修改成功" not in phone.text, lost
        assert "挂失" in phone.text or "冻结" in phone.text, (lost, phone.text[-200:])
    banking.unfreeze(app, city.actor("bsup"), card.pan, "lifted")
    assert banking.balance_inquiry(app, atm, card.pan, pin)["status"] == "active"  # the PIN never changed
