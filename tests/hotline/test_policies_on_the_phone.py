"""The hotlines speak the city's policy: loss days and the query-password lockout at a non-default value."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from sscard.composition import create_app
from sscard.services import banking, cards
from tests.hotline.conftest import QUERY_PASSWORD
from tests.hotline.phone import Phone, keys_for_citizen_id


@pytest.fixture
def city_policy_client(make_app):
    """A second App on the same database with a city's own policy; the test's `city` built the data."""
    app = make_app(ss_loss={"temporary_days": 3}, bank_loss={"oral_days": 2},
                   query_password={"max_failures": 2, "lock_minutes": 10})
    with TestClient(create_app(app)) as client:
        yield client, app


def test_loss_days_and_lock_follow_the_policy(city_policy_client, holder, city, clock):
    client, app = city_policy_client
    phone = Phone(client).press("1").press("2")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press("00000000")
    assert "密码错误" in phone.text
    phone.press("00000001")  # the second wrong one locks, for 10 minutes
    assert phone.ended and "已锁定" in phone.text and "2次" in phone.text and "10分钟" in phone.text

    clock.advance(minutes=11)
    phone = Phone(client).press("1").press("2")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert "3天内未办理正式挂失将自动解除" in phone.text
    phone.press("1")
    assert "如未在3天内" in phone.text
    clock.advance(days=3, minutes=1)
    assert cards.card_status(app, city.actor("clerk"), holder.card_number)["ss_status"] == "normal"


def test_oral_loss_lapses_after_the_policy_days(city_policy_client, holder, city, clock):
    client, app = city_policy_client
    pin = "739184" if "739184" not in holder.citizen_id else "582947"
    banking.activate(app, city.actor("teller"), holder.pan, holder.citizen_id, pin, pin, cardholder_in_person=True)
    phone = Phone(client, "bank:GSB").press("1").press("1")
    phone.press(holder.pan).press(keys_for_citizen_id(holder.citizen_id)).press("1").press(pin)
    assert "口头挂失有效期2天" in phone.text
    phone.press("1")
    assert "口头挂失成功" in phone.text and "有效期2天" in phone.text
    clock.advance(days=1)
    assert cards.card_status(app, city.actor("teller"), holder.card_number)["bank"]["status"] == "oral_loss"
    clock.advance(days=1, minutes=1)
    assert cards.card_status(app, city.actor("teller"), holder.card_number)["bank"]["status"] == "active"


@pytest.fixture
def linked_client(make_app):
    """A city whose policy links the two sides' losses (loss.linked)."""
    app = make_app(loss={"linked": True}, bank_loss={"oral_days": 4})
    with TestClient(create_app(app)) as client:
        yield client, app


def test_a_linked_loss_says_it_reported_the_other_side_and_when_that_lapses(linked_client, holder, city):
    """Session 22's rules probe: with loss.linked the bank side was reported too, and the caller was told
    "This does not cover the bank account" and to call the bank (RULES §5: when linked, a loss on one side
    also records one on the other). The prompt and the reminder now say what was done."""
    client, app = linked_client
    pin = "739184" if "739184" not in holder.citizen_id else "582947"
    banking.activate(app, city.actor("teller"), holder.pan, holder.citizen_id, pin, pin, cardholder_in_person=True)
    phone = Phone(client).press("1").press("2")
    phone.press(keys_for_citizen_id(holder.citizen_id)).press(QUERY_PASSWORD)
    assert "本挂失同时为已启用的银行账户办理口头挂失" in phone.text and "不包括银行账户" not in phone.text
    phone.press("1")
    assert "银行账户已同时办理口头挂失，4天后自动解除" in phone.text and "不包括银行账户" not in phone.text
    assert cards.card_status(app, city.actor("teller"), holder.card_number)["bank"]["status"] == "oral_loss"


def test_a_linked_loss_where_the_other_side_was_not_active_still_says_it_is_separate(linked_client, holder, city):
    from sscard.services import loss

    client, app = linked_client  # the bank side was never activated: nothing to report there
    out = loss.report_temporary_loss(app, city.cardholder(holder), holder.card_number)
    assert out["linked_bank_status"] is None and "bank account is not activated" in out["reminder"]["en"]
