"""Docs/RULES.md gap 16: the initial query password (the last six characters of the SS number or the card
number, both printed on the card) identifies a caller who may report the card lost and hear its state, and
nothing else: a finder of the card must not lift the owner's loss nor change a password (RULES §4, §5)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.core.errors import SscardError
from sscard.core.roles import Channel
from sscard.services import cards, loss
from sscard.services import hotline as svc
from tests.hotline.phone import Phone, keys_for_citizen_id
from tests.support import City


@pytest.fixture
def ss_city(make_app):
    """A city whose initial query password is the last six of the SS number (typable on a keypad)."""
    return City(make_app(query_password={"initial_source": "ss_number"}))


def _card_with_typable_initial(city: City):
    card = city.issued_card("钱八")
    while card.citizen_id.endswith("X") or not card.citizen_id[-6:].isdigit():
        card = city.issued_card("钱八")
    return card


def _call(city: City):
    client = TestClient(create_app(city.app))
    return client, Phone(client)


def test_a_caller_with_the_initial_query_password_may_report_a_loss_but_not_lift_it(ss_city):
    card = _card_with_typable_initial(ss_city)
    client, phone = _call(ss_city)
    with client:
        phone.press("1").press("2")
        phone.press(keys_for_citizen_id(card.citizen_id)).press(card.citizen_id[-6:])
        assert "身份验证成功" in phone.text and "初始查询密码" in phone.text and "只能办理挂失和查询" in phone.text
        phone.press("1")  # confirm the temporary loss: allowed
        assert "临时挂失成功" in phone.text
        status = cards.card_status(ss_city.app, ss_city.actor("clerk"), card.card_number)["ss_status"]
        assert status == "temporary_loss"
        phone.press("3")  # cancel it: refused, and said why, before any confirmation
        assert "不能办理此业务" in phone.text and "确认请按1" not in phone.text
        phone.press("4")  # change the SS password: refused too
        assert "不能办理此业务" in phone.text and "原密码" not in phone.text
    status = cards.card_status(ss_city.app, ss_city.actor("clerk"), card.card_number)["ss_status"]
    assert status == "temporary_loss"


def test_the_english_caller_hears_the_initial_password_limits_in_english(ss_city):
    card = _card_with_typable_initial(ss_city)
    client, phone = _call(ss_city)
    with client:
        phone.press("9").press("1")
        phone.press(keys_for_citizen_id(card.citizen_id)).press(card.citizen_id[-6:])
        assert "You used the initial query password" in phone.text
        phone.press("3")
        assert "cannot be done after identifying with the initial query password" in phone.text


def test_the_frame_refuses_a_loss_cancel_to_an_initial_password_caller_on_every_cardholder_channel(ss_city):
    """The rule is the frame's (access.BEFORE_FIRST_CHANGE), not the menu's: an action that forgot to ask
    is still refused, on the hotline as on the portal and the API."""
    from dataclasses import replace

    card = _card_with_typable_initial(ss_city)
    app = ss_city.app
    initial_caller = svc.holder(card.person_id, card.name, svc.LINE_12333, svc.INITIAL_PASSWORD)
    loss.report_temporary_loss(app, initial_caller, card.card_number)  # may report
    assert cards.card_status(app, initial_caller, card.card_number)["ss_status"] == "temporary_loss"  # may read
    for actor in (initial_caller,
                  replace(ss_city.cardholder(card, Channel.PORTAL), must_change_password=True),
                  replace(ss_city.cardholder(card, Channel.API), must_change_password=True)):
        with pytest.raises(SscardError) as refused:
            loss.cancel_ss_loss(app, actor, card.card_number)
        assert refused.value.code == "password_change_required"
    owner = svc.holder(card.person_id, card.name, svc.LINE_12333, "query_password")
    loss.cancel_ss_loss(app, owner, card.card_number)  # the owner's own password: allowed
    assert cards.card_status(app, owner, card.card_number)["ss_status"] == "normal"


def test_the_menu_does_not_offer_an_initial_password_caller_the_ss_password_change_the_frame_refuses(ss_city):
    """Session 29: option 4 (change the SS password) was offered after identifying with the initial query
    password, and then refused. The menu now asks the frame (access.allowed_before_first_change)."""
    card = _card_with_typable_initial(ss_city)
    client, phone = _call(ss_city)
    with client:
        assert "修改社保卡应用密码请按4" in phone.press("1").text  # not identified yet: offered
        phone.press("1")  # card status: identification first
        phone.press(keys_for_citizen_id(card.citizen_id)).press(card.citizen_id[-6:])
        assert "只能办理挂失和查询" in phone.text and "社会保障卡服务" in phone.text  # back at the main menu
        assert "按4" not in phone.text and "临时挂失请按2" in phone.text
        phone.press("2").press("1")  # a temporary loss: allowed, and back at the main menu
        assert "临时挂失成功" in phone.text
        assert "按3" not in phone.text and "按4" not in phone.text  # neither the cancel nor the change


def test_the_english_menu_leaves_the_change_out_for_an_initial_password_caller_too(ss_city):
    card = _card_with_typable_initial(ss_city)
    client, phone = _call(ss_city)
    with client:
        assert "To change the social security application password, press 4" in phone.press("9").text
        phone.press("1")
        phone.press(keys_for_citizen_id(card.citizen_id)).press(card.citizen_id[-6:])
        assert "Social security card services" in phone.text and "press 4" not in phone.text


def test_a_caller_with_their_own_query_password_is_still_offered_the_ss_password_change(ss_city):
    from sscard.services import passwords

    card = _card_with_typable_initial(ss_city)
    owner = ss_city.cardholder(card, Channel.PORTAL)
    passwords.change_query_password(ss_city.app, owner, card.citizen_id[-6:], "80246813", "80246813")
    client, phone = _call(ss_city)
    with client:
        phone.press("1").press("1")
        phone.press(keys_for_citizen_id(card.citizen_id)).press("80246813")
        assert "身份验证成功" in phone.text and "只能办理" not in phone.text
        assert "修改社保卡应用密码请按4" in phone.text
        phone.press("4")
        assert "原密码" in phone.text
