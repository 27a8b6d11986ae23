"""The query password is digits only (issue 17, point 3): the portal's password also identifies a 12333
caller, and a phone keypad has no letters. A password set with letters before the rule still signs in on
the web, and a caller who has one is told what to do instead of locking themselves out."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR, Channel
from sscard.models.foundation import Person
from sscard.services import passwords
from tests.hotline.phone import Phone, keys_for_citizen_id
from tests.portal.helpers import login

LEGACY = "Lake-View-88"


def give_legacy_letter_password(app, card) -> None:
    """What a person who changed their password before the digits-only rule has: a hash of letters, and
    no record of whether a phone can type it (the column came with the rule)."""
    with app.db.session() as s:
        person = s.scalar(select(Person).where(Person.id == card.person_id))
        person.query_pw_hash = app.secrets.hash_password(LEGACY)
        person.query_pw_initial = False
        person.query_pw_phone_ok = None


def code_of(fn, *args) -> str:
    with pytest.raises(SscardError) as info:
        fn(*args)
    return info.value.code


def test_a_new_query_password_with_letters_is_refused_and_says_why(city, app):
    card = city.issued_card()
    holder = city.cardholder(card)
    with pytest.raises(SscardError) as info:
        passwords.change_query_password(app, holder, card.card_number[-6:], LEGACY, LEGACY)
    assert info.value.code == "weak_password"
    assert "12333" in info.value.message("zh") and "数字" in info.value.message("zh")
    assert "digits" in info.value.message("en")
    passwords.change_query_password(app, holder, card.card_number[-6:], "80468213", "80468213")
    assert passwords.query_password_status(app, holder) == {"initial": False, "phone_usable": True}


def test_a_legacy_letter_password_still_signs_in_on_the_web_and_is_then_known_as_unphoneable(city, app, client):
    card = city.issued_card()
    give_legacy_letter_password(app, card)
    holder = city.cardholder(card)
    assert passwords.query_password_status(app, holder)["phone_usable"] is None  # not known before a login
    response = login(client, card.citizen_id, LEGACY)
    assert response.status_code == 303 and response.headers["location"] == "/portal/card"
    assert passwords.query_password_status(app, holder)["phone_usable"] is False
    page = client.get("/portal/card")
    assert "含有字母" in page.text and "12333" in page.text  # the card page tells them to change it


def test_a_caller_with_a_letter_password_is_told_what_to_do_and_does_not_lock_the_web_login(city, app, client):
    card = city.issued_card()
    give_legacy_letter_password(app, card)
    assert login(client, card.citizen_id, LEGACY).status_code == 303  # learnt: it has letters
    for _call in range(3):  # nine keypad tries in all: more than the 5 that lock a password
        phone = Phone(client).press("1").press("1")
        phone.press(keys_for_citizen_id(card.citizen_id))
        assert "密码为数字" in phone.text
        phone.press("80468213")
        assert "密码错误" in phone.text and "含有字母" in phone.text and "网上服务大厅" in phone.text
        assert "还可尝试" not in phone.text  # an identification never says how many tries are left
        phone.press("80468214").press("80468215")
        assert phone.ended and "已锁定" not in phone.text
    client.cookies.clear()
    assert login(client, card.citizen_id, LEGACY).status_code == 303  # the web login was not locked


def test_a_digit_password_still_locks_after_five_wrong_on_the_phone(city, app):
    card = city.issued_card()
    holder = city.cardholder(card)
    passwords.change_query_password(app, holder, card.card_number[-6:], "80468213", "80468213")
    gateway = SYSTEM_ACTOR.via(Channel.HOTLINE_12333)
    for attempt in range(4):
        assert code_of(passwords.login_with_query_password, app, gateway, card.citizen_id,
                       f"1357902{attempt}") == "wrong_password"
    assert code_of(passwords.login_with_query_password, app, gateway, card.citizen_id,
                   "13579029") == "password_locked"
