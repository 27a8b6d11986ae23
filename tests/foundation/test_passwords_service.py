"""RULES §4 through the services, on both databases: initial values, change, verify, reset, lockouts
at their defaults and at another policy value, with expiry by moving the FixedClock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sscard.core.errors import SscardError
from sscard.core.roles import Actor, Channel, Role
from sscard.models.foundation import AuditRecord, Card, Person
from sscard.services import passwords
from tests.support import City

GATEWAY = Actor(kind="channel", id="portal", role=Role.SYSTEM, name="portal", channel=Channel.PORTAL)


def _code(fn, *args, **kwargs) -> str:
    with pytest.raises(SscardError) as info:
        fn(*args, **kwargs)
    return info.value.code


def _login(app, login, password):
    return passwords.login_with_query_password(app, GATEWAY, login, password)


# ---------------------------------------------------------------- SS application password


def test_a_lost_cards_ss_password_is_neither_used_nor_changed_on_any_channel(city, app):
    """Session 22's rules probe: on a card under temporary loss the kiosk (and the API) changed the SS
    password while 12333 and the portal refused: RULES §5, a loss stops the card's SS application at once."""
    from sscard.services import loss
    from tests.ledger.helpers import terminal

    card = city.issued_card()
    loss.report_temporary_loss(app, city.cardholder(card), card.card_number)
    for actor in (terminal(city, "KIOSK-1"), city.cardholder(card, Channel.API), city.actor("clerk")):
        assert _code(passwords.change_ss_password, app, actor, card.card_number, "123456", "135790", "135790") == \
            "card_lost"
    with app.db.session() as s:
        assert s.scalar(select(Card.ss_pw_digest).where(Card.card_number == card.card_number)) is None


def test_ss_password_starts_as_123456_and_changes_with_old_and_new_twice(city, app):
    card = city.issued_card()
    holder = city.cardholder(card, Channel.HOTLINE_12333)
    assert passwords.verify_ss_password(app, holder, card.card_number, "123456")["verified"] is True
    assert _code(passwords.change_ss_password, app, holder, card.card_number, "123456", "135790", "135791") == \
        "password_mismatch"
    assert _code(passwords.change_ss_password, app, holder, card.card_number, "123456", "111111", "111111") == \
        "weak_password"
    assert _code(passwords.change_ss_password, app, holder, card.card_number, "654321", "135790", "135790") == \
        "wrong_password"
    passwords.change_ss_password(app, holder, card.card_number, "123456", "135790", "135790")
    assert _code(passwords.verify_ss_password, app, holder, card.card_number, "123456") == "wrong_password"
    assert passwords.verify_ss_password(app, holder, card.card_number, "135790")["verified"] is True


def test_ss_password_refuses_the_cardholders_birth_date(city, app):
    card = city.issued_card()  # born 1980-05-17
    holder = city.cardholder(card)
    assert _code(passwords.change_ss_password, app, holder, card.card_number, "123456", "800517", "800517") == \
        "weak_password"


def _lock_ss(app, actor, card, times):
    for _ in range(times - 1):
        assert _code(passwords.verify_ss_password, app, actor, card.card_number, "999999") == "wrong_password"
    assert _code(passwords.verify_ss_password, app, actor, card.card_number, "999999") == "password_locked"


def test_ss_password_locks_after_three_wrong_until_a_window_reset(city, app, clock):
    card = city.issued_card()
    holder = city.cardholder(card, Channel.HOTLINE_12333)
    assert _code(passwords.verify_ss_password, app, holder, card.card_number, "999999") == "wrong_password"
    passwords.verify_ss_password(app, holder, card.card_number, "123456")  # a hit clears the count
    _lock_ss(app, holder, card, 3)
    clock.advance(days=30)
    assert _code(passwords.verify_ss_password, app, holder, card.card_number, "123456") == "password_locked"
    clerk = city.actor("clerk")
    assert _code(passwords.reset_ss_password, app, clerk, card.card_number, "110105194912310029") == \
        "invalid_citizen_id"
    other = city.new_person("李四")[1]
    assert _code(passwords.reset_ss_password, app, clerk, card.card_number, other) == "identity_mismatch"
    out = passwords.reset_ss_password(app, clerk, card.card_number, card.citizen_id)
    assert out == {"card_number": card.card_number, "reset": True, "initial": True}
    assert passwords.verify_ss_password(app, holder, card.card_number, "123456")["verified"] is True


def test_ss_password_reset_may_set_a_new_one_typed_on_the_pin_pad(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    assert _code(passwords.reset_ss_password, app, clerk, card.card_number, card.citizen_id, "222222") == \
        "weak_password"
    passwords.reset_ss_password(app, clerk, card.card_number, card.citizen_id, "802461")
    holder = city.cardholder(card)
    assert passwords.verify_ss_password(app, holder, card.card_number, "802461")["verified"] is True


def test_ss_password_lockout_follows_policy_max_failures(make_app):
    app = make_app(ss_password={"max_failures": 5})
    city = City(app)
    card = city.issued_card()
    _lock_ss(app, city.cardholder(card), card, 5)


def test_ss_password_is_per_card_and_counts_wrong_answers_in_the_audit(city, app):
    card = city.issued_card()
    holder = city.cardholder(card)
    _code(passwords.verify_ss_password, app, holder, card.card_number, "999999")
    with app.db.session() as s:
        row = s.scalars(select(AuditRecord).where(AuditRecord.operation == "ss_password.verify")).one()
        assert row.result == "wrong_password" and row.detail["failures"] == 1
        assert s.scalar(select(Card.ss_pw_failures).where(Card.card_number == card.card_number)) == 1


# ---------------------------------------------------------------- information query password


def test_initial_query_password_is_last_six_of_the_first_card_number(city, app):
    card = city.issued_card()
    out = _login(app, card.citizen_id, card.card_number[-6:])
    assert out["person_id"] == card.person_id and out["must_change_password"] is True
    assert _login(app, card.card_number, card.card_number[-6:])["person_id"] == card.person_id
    assert _code(_login, app, card.citizen_id, card.citizen_id[-6:]) == "wrong_password"


def test_initial_query_password_from_the_ss_number_by_policy(make_app):
    app = make_app(query_password={"initial_source": "ss_number"})
    card = City(app).issued_card()
    assert _login(app, card.citizen_id, card.citizen_id[-6:])["person_id"] == card.person_id
    assert _code(_login, app, card.citizen_id, card.card_number[-6:]) == "wrong_password"


def test_unknown_logins_answer_like_wrong_passwords(city, app):
    city.issued_card()
    assert _code(_login, app, "11010519491231002X", "123456") == "wrong_password"
    assert _code(_login, app, "A12345674", "123456") == "wrong_password"
    assert _code(_login, app, "nonsense", "123456") == "wrong_password"


def test_query_password_change_then_login_with_the_new_one(city, app):
    card = city.issued_card()
    holder = city.cardholder(card)
    initial = card.card_number[-6:]
    assert _code(passwords.change_query_password, app, holder, initial, initial, initial) == "weak_password"
    assert _code(passwords.change_query_password, app, holder, "Wrong-old-1", "80468213", "80468213") == \
        "wrong_password"
    passwords.change_query_password(app, holder, initial, "80468213", "80468213")
    out = _login(app, card.citizen_id, "80468213")
    assert out["must_change_password"] is False
    assert _code(_login, app, card.citizen_id, initial) == "wrong_password"
    with app.db.session() as s:
        person = s.get(Person, card.person_id)
        assert person.query_pw_hash.startswith("$argon2id$") and not person.query_pw_initial


def _lock_query(app, login, times):
    for _ in range(times - 1):
        assert _code(_login, app, login, "Not-it-000") == "wrong_password"
    assert _code(_login, app, login, "Not-it-000") == "password_locked"


def test_query_password_locks_after_five_for_thirty_minutes_then_unlocks(city, app, clock):
    card = city.issued_card()
    initial = card.card_number[-6:]
    _lock_query(app, card.citizen_id, 5)
    assert _code(_login, app, card.citizen_id, initial) == "password_locked"
    clock.advance(minutes=29)
    assert _code(_login, app, card.citizen_id, initial) == "password_locked"
    clock.advance(minutes=1)
    assert _login(app, card.citizen_id, initial)["person_id"] == card.person_id
    # and a fresh count after the lock ran out
    assert _code(_login, app, card.citizen_id, "Not-it-000") == "wrong_password"


def test_query_password_lockout_follows_policy(make_app, clock):
    app = make_app(query_password={"max_failures": 3, "lock_minutes": 10})
    card = City(app).issued_card()
    _lock_query(app, card.citizen_id, 3)
    clock.advance(minutes=9, seconds=59)
    assert _code(_login, app, card.citizen_id, card.card_number[-6:]) == "password_locked"
    clock.advance(seconds=1)
    assert _login(app, card.citizen_id, card.card_number[-6:])["person_id"] == card.person_id


def test_query_password_reset_at_window_unlocks_and_restores_the_initial(city, app, clock):
    card = city.issued_card()
    holder = city.cardholder(card)
    passwords.change_query_password(app, holder, card.card_number[-6:], "80468213", "80468213")
    _lock_query(app, card.citizen_id, 5)
    clerk = city.actor("clerk")
    other = city.new_person("王五")[1]
    assert _code(passwords.reset_query_password, app, clerk, card.person_id, other) == "identity_mismatch"
    assert _code(passwords.reset_query_password, app, holder, card.person_id, card.citizen_id) == "forbidden"
    passwords.reset_query_password(app, clerk, card.person_id, card.citizen_id)
    out = _login(app, card.citizen_id, card.card_number[-6:])
    assert out["must_change_password"] is True
    assert _code(_login, app, card.citizen_id, "80468213") == "wrong_password"


def test_clock_moves_do_not_unlock_an_ss_lock_but_do_unlock_a_query_lock(city, app, clock):
    card = city.issued_card()
    holder = city.cardholder(card)
    _lock_ss(app, holder, card, 3)
    _lock_query(app, card.citizen_id, 5)
    clock.advance(timedelta(hours=1))
    assert _code(passwords.verify_ss_password, app, holder, card.card_number, "123456") == "password_locked"
    assert _login(app, card.citizen_id, card.card_number[-6:])["person_id"] == card.person_id
