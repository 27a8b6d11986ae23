"""SS-side losses through the services, lapses recorded by the sweep, and the foundation's policies
(production days, validity, activation window, temporary-loss days) at a value other than the default."""

from __future__ import annotations

import pytest

from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR, Channel
from sscard.services import cards, enrolment, loss, production
from sscard.services.passwords import cardholder_actor
from tests.support import City


def _code(fn, *args, **kwargs) -> str:
    with pytest.raises(SscardError) as info:
        fn(*args, **kwargs)
    return info.value.code


def test_a_cardholder_may_cancel_a_temporary_loss_but_not_a_formal_one(city, app):
    card = city.issued_card()
    holder = city.cardholder(card, Channel.PORTAL)
    loss.report_temporary_loss(app, holder, card.card_number)
    assert loss.cancel_ss_loss(app, holder, card.card_number)["ss_status"] == "normal"
    loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    assert _code(loss.cancel_ss_loss, app, holder, card.card_number) == "forbidden"
    assert _code(loss.cancel_ss_loss, app, city.actor("clerk"), card.card_number) == "identity_mismatch"
    out = loss.cancel_ss_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    assert out["ss_status"] == "normal"


def test_a_temporary_loss_cannot_be_reported_twice_or_on_someone_elses_card(city, app):
    card, other = city.issued_card(), city.issued_card("李四")
    holder = city.cardholder(card)
    loss.report_temporary_loss(app, holder, card.card_number)
    assert _code(loss.report_temporary_loss, app, holder, card.card_number) == "illegal_transition"
    assert _code(loss.report_temporary_loss, app, holder, other.card_number) == "card_not_found"


def test_the_sweep_records_lapsed_temporary_losses(city, app, clock):
    card, kept = city.issued_card(), city.issued_card("李四")
    loss.report_temporary_loss(app, city.cardholder(card), card.card_number)
    clock.advance(days=3)
    loss.report_temporary_loss(app, city.cardholder(kept), kept.card_number)
    clock.advance(days=4)  # the first has run 7 days, the second 4
    assert loss.sweep_lapsed(app, SYSTEM_ACTOR) == {"ss_cards": 1, "bank_accounts": 0}
    clerk = city.actor("clerk")
    assert cards.card_status(app, clerk, card.card_number)["ss_status"] == "normal"
    assert cards.card_status(app, clerk, kept.card_number)["ss_status"] == "temporary_loss"
    assert loss.sweep_lapsed(app, SYSTEM_ACTOR) == {"ss_cards": 0, "bank_accounts": 0}
    # the swept card can be reported lost again
    assert loss.report_temporary_loss(app, city.cardholder(card), card.card_number)["ss_status"] == "temporary_loss"


def test_a_lapsed_temporary_loss_can_still_be_made_formal_from_normal(city, app, clock):
    card = city.issued_card()
    loss.report_temporary_loss(app, city.cardholder(card), card.card_number)
    clock.advance(days=8)
    out = loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id)
    assert out["ss_status"] == "formal_loss"


def test_foundation_policies_at_other_values(make_app, clock):
    app = make_app(production={"working_days": 10}, card={"validity_years": 5},
                   activation={"window_days": 90}, ss_loss={"temporary_days": 3})
    city = City(app)
    clerk = city.actor("clerk")
    pid, cid = city.new_person()
    number = enrolment.apply_first_card(app, clerk, pid, "GSB", "C01")["card_number"]
    batch = production.start_batch(app, clerk, "C01")
    assert batch["due_date"] == "2026-01-19"  # 10 working days after Monday 5 January
    production.complete_batch(app, clerk, batch["batch"])
    out = cards.collect_card(app, clerk, number, cid)
    assert (out["expiry_date"], out["activation_deadline"]) == ("2031-01-05", "2026-04-05")
    holder = cardholder_actor(pid, "张三", Channel.PORTAL)
    loss.report_temporary_loss(app, holder, number)
    clock.advance(days=2, hours=23)
    assert cards.card_status(app, clerk, number)["ss_status"] == "temporary_loss"
    clock.advance(hours=1)
    assert cards.card_status(app, clerk, number)["ss_status"] == "normal"


def test_foundation_policies_at_their_defaults(city, app):
    clerk = city.actor("clerk")
    pid, cid = city.new_person()
    number = enrolment.apply_first_card(app, clerk, pid, "GSB", "C01")["card_number"]
    batch = production.start_batch(app, clerk, "C01")
    assert batch["due_date"] == "2026-01-26"  # 15 working days
    production.complete_batch(app, clerk, batch["batch"])
    out = cards.collect_card(app, clerk, number, cid)
    assert (out["expiry_date"], out["activation_deadline"]) == ("2036-01-05", "2026-03-06")


# ---------------------------------------------------------------- uncollected cards are sealed


def _ready_card(app, city):
    clerk = city.actor("clerk")
    pid, cid = city.new_person()
    number = enrolment.apply_first_card(app, clerk, pid, "GSB", "C01")["card_number"]
    production.complete_batch(app, clerk, production.start_batch(app, clerk, "C01")["batch"])
    return number, cid


def _seal_and_unseal(app, city, clock, days: int):
    clerk = city.actor("clerk")
    number, cid = _ready_card(app, city)
    clock.advance(days=days - 1)
    assert cards.card_status(app, clerk, number)["ss_status"] == "ready"
    assert _code(cards.unseal_card, app, clerk, number, cid) == "illegal_transition"  # nothing to unseal
    clock.advance(days=1)
    assert cards.card_status(app, clerk, number)["ss_status"] == "sealed"
    assert _code(cards.collect_card, app, clerk, number, cid) == "card_sealed"
    assert _code(cards.unseal_card, app, city.actor("clerk2"), number, cid) == "wrong_center"
    assert cards.unseal_card(app, clerk, number, cid)["ss_status"] == "ready"
    assert cards.collect_card(app, clerk, number, cid)["ss_status"] == "normal"


def test_an_uncollected_card_is_sealed_after_365_days_and_unsealed_at_the_window(city, app, clock):
    _seal_and_unseal(app, city, clock, 365)


def test_the_seal_follows_policy_card_uncollected_seal_days(make_app, clock):
    app = make_app(card={"uncollected_seal_days": 30})
    _seal_and_unseal(app, City(app), clock, 30)


def test_the_nightly_sweep_records_sealed_cards(city, app, clock):
    old, _ = _ready_card(app, city)
    clock.advance(days=200)
    young, _ = _ready_card(app, city)
    clock.advance(days=165)
    assert cards.seal_uncollected(app, SYSTEM_ACTOR) == {"sealed": 1}
    assert cards.seal_uncollected(app, SYSTEM_ACTOR) == {"sealed": 0}
    clerk = city.actor("clerk")
    assert cards.card_status(app, clerk, old)["ss_status"] == "sealed"
    assert cards.card_status(app, clerk, young)["ss_status"] == "ready"
    assert _code(cards.seal_uncollected, app, clerk) == "forbidden"
