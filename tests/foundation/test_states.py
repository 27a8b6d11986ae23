"""RULES §3: the card's two state machines, every legal move and every illegal (state, event) pair."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sscard.core.errors import SscardError
from sscard.core.states import (
    BANK_TRANSITIONS,
    SS_TRANSITIONS,
    BankStatus,
    SsStatus,
    bank_next,
    check_bank_credit,
    check_bank_debit,
    check_ss_usable,
    effective_bank_status,
    effective_seal_status,
    effective_ss_status,
    ss_next,
)

S, B = SsStatus, BankStatus

# Written out from RULES §3/§5/§6, independently of the implementation's table.
SS_LEGAL = {
    (S.APPLIED, "start_production"): S.IN_PRODUCTION,
    (S.IN_PRODUCTION, "finish_production"): S.READY,
    (S.READY, "seal"): S.SEALED,
    (S.SEALED, "unseal"): S.READY,
    (S.READY, "collect"): S.NORMAL,
    (S.NORMAL, "report_temporary_loss"): S.TEMPORARY_LOSS,
    (S.NORMAL, "report_formal_loss"): S.FORMAL_LOSS,
    (S.TEMPORARY_LOSS, "report_formal_loss"): S.FORMAL_LOSS,
    (S.TEMPORARY_LOSS, "cancel_loss"): S.NORMAL,
    (S.FORMAL_LOSS, "cancel_loss"): S.NORMAL,
    (S.TEMPORARY_LOSS, "lapse_temporary_loss"): S.NORMAL,
    (S.APPLIED, "cancel"): S.CANCELLED,
    (S.READY, "cancel"): S.CANCELLED,
    (S.SEALED, "cancel"): S.CANCELLED,
    (S.NORMAL, "cancel"): S.CANCELLED,
    (S.TEMPORARY_LOSS, "cancel"): S.CANCELLED,
    (S.FORMAL_LOSS, "cancel"): S.CANCELLED,
}
BANK_LEGAL = {
    (B.NOT_ACTIVATED, "activate"): B.ACTIVE,
    (B.ACTIVE, "report_oral_loss"): B.ORAL_LOSS,
    (B.ACTIVE, "report_written_loss"): B.WRITTEN_LOSS,
    (B.ORAL_LOSS, "report_written_loss"): B.WRITTEN_LOSS,
    (B.ORAL_LOSS, "cancel_loss"): B.ACTIVE,
    (B.WRITTEN_LOSS, "cancel_loss"): B.ACTIVE,
    (B.ORAL_LOSS, "lapse_oral_loss"): B.ACTIVE,
    (B.ACTIVE, "freeze"): B.FROZEN,
    (B.FROZEN, "unfreeze"): B.ACTIVE,
    (B.NOT_ACTIVATED, "close"): B.CLOSED,
    (B.ACTIVE, "close"): B.CLOSED,
    (B.ORAL_LOSS, "close"): B.CLOSED,
    (B.WRITTEN_LOSS, "close"): B.CLOSED,
    (B.FROZEN, "close"): B.CLOSED,
}

SS_ILLEGAL = [(s, e) for e in SS_TRANSITIONS for s in SsStatus if (s, e) not in SS_LEGAL]
BANK_ILLEGAL = [(s, e) for e in BANK_TRANSITIONS for s in BankStatus if (s, e) not in BANK_LEGAL]


def test_the_tables_name_exactly_the_events_of_the_rules():
    assert set(SS_TRANSITIONS) == {e for _s, e in SS_LEGAL}
    assert set(BANK_TRANSITIONS) == {e for _s, e in BANK_LEGAL}
    # every pair is accounted for: legal + illegal = all states x all events
    assert len(SS_LEGAL) + len(SS_ILLEGAL) == len(SsStatus) * len(SS_TRANSITIONS)
    assert len(BANK_LEGAL) + len(BANK_ILLEGAL) == len(BankStatus) * len(BANK_TRANSITIONS)


@pytest.mark.parametrize(("pair", "target"), SS_LEGAL.items(), ids=lambda v: str(v))
def test_every_legal_ss_transition_leads_where_the_rules_say(pair, target):
    state, event = pair
    assert ss_next(state, event) is target
    assert ss_next(str(state), event) is target  # as stored in the database


@pytest.mark.parametrize(("pair", "target"), BANK_LEGAL.items(), ids=lambda v: str(v))
def test_every_legal_bank_transition_leads_where_the_rules_say(pair, target):
    state, event = pair
    assert bank_next(state, event) is target
    assert bank_next(str(state), event) is target


@pytest.mark.parametrize(("state", "event"), SS_ILLEGAL, ids=lambda v: str(v))
def test_every_illegal_ss_pair_is_refused_with_illegal_transition(state, event):
    with pytest.raises(SscardError) as info:
        ss_next(state, event)
    assert info.value.code == "illegal_transition"
    assert info.value.status == 409
    assert str(state) in info.value.message("en") and event in info.value.message("en")


@pytest.mark.parametrize(("state", "event"), BANK_ILLEGAL, ids=lambda v: str(v))
def test_every_illegal_bank_pair_is_refused_with_illegal_transition(state, event):
    with pytest.raises(SscardError) as info:
        bank_next(state, event)
    assert info.value.code == "illegal_transition"
    assert str(state) in info.value.message("zh") and event in info.value.message("zh")


def test_final_states_accept_no_event():
    for event in SS_TRANSITIONS:
        with pytest.raises(SscardError):
            ss_next(S.CANCELLED, event)
    for event in BANK_TRANSITIONS:
        with pytest.raises(SscardError):
            bank_next(B.CLOSED, event)


def test_an_unknown_event_or_state_is_a_programming_error_not_a_refusal():
    with pytest.raises(ValueError):
        ss_next(S.NORMAL, "explode")
    with pytest.raises(ValueError):
        bank_next(B.ACTIVE, "activate_twice")
    with pytest.raises(ValueError):
        ss_next("lost", "cancel_loss")


NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def test_a_temporary_loss_lapses_exactly_at_its_expiry():
    expires = NOW + timedelta(days=7)
    assert effective_ss_status("temporary_loss", expires, expires - timedelta(seconds=1)) is S.TEMPORARY_LOSS
    assert effective_ss_status("temporary_loss", expires, expires) is S.NORMAL
    # SQLite hands back naive UTC datetimes
    assert effective_ss_status("temporary_loss", expires.replace(tzinfo=None), expires) is S.NORMAL
    assert effective_ss_status("temporary_loss", None, expires + timedelta(days=99)) is S.TEMPORARY_LOSS


def test_a_ready_card_is_in_effect_sealed_after_the_seal_days():
    ready = NOW
    assert effective_seal_status("ready", ready, ready + timedelta(days=365, seconds=-1), 365) is S.READY
    assert effective_seal_status("ready", ready, ready + timedelta(days=365), 365) is S.SEALED
    assert effective_seal_status("ready", ready.replace(tzinfo=None), ready + timedelta(days=30), 30) is S.SEALED
    assert effective_seal_status("ready", None, ready + timedelta(days=999), 365) is S.READY
    for state in (S.APPLIED, S.IN_PRODUCTION, S.NORMAL, S.CANCELLED):
        assert effective_seal_status(state, ready, ready + timedelta(days=999), 365) is state


@pytest.mark.parametrize("state", [s for s in SsStatus if s is not S.TEMPORARY_LOSS])
def test_no_other_ss_state_lapses(state):
    assert effective_ss_status(state, NOW, NOW + timedelta(days=400)) is state


def test_an_oral_bank_loss_lapses_exactly_at_its_expiry():
    expires = NOW + timedelta(days=5)
    assert effective_bank_status("oral_loss", expires, expires - timedelta(microseconds=1)) is B.ORAL_LOSS
    assert effective_bank_status("oral_loss", expires, expires) is B.ACTIVE


@pytest.mark.parametrize("state", [s for s in BankStatus if s is not B.ORAL_LOSS])
def test_no_other_bank_state_lapses(state):
    assert effective_bank_status(state, NOW, NOW + timedelta(days=400)) is state


@pytest.mark.parametrize(
    ("state", "code"),
    [(S.NORMAL, None), (S.TEMPORARY_LOSS, "card_lost"), (S.FORMAL_LOSS, "card_lost"),
     (S.CANCELLED, "card_cancelled"), (S.APPLIED, "card_not_usable"), (S.IN_PRODUCTION, "card_not_usable"),
     (S.READY, "card_not_usable"), (S.SEALED, "card_not_usable")],
)
def test_ss_application_works_only_on_a_normal_card(state, code):
    if code is None:
        check_ss_usable(state)
        return
    with pytest.raises(SscardError) as info:
        check_ss_usable(state)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("state", "debit", "credit"),
    [(B.ACTIVE, None, None), (B.NOT_ACTIVATED, "not_activated", None), (B.ORAL_LOSS, "account_lost", None),
     (B.WRITTEN_LOSS, "account_lost", None), (B.FROZEN, "account_frozen", None),
     (B.CLOSED, "account_closed", "account_closed")],
)
def test_lost_or_frozen_accounts_refuse_debits_and_accept_credits(state, debit, credit):
    for check, code in ((check_bank_debit, debit), (check_bank_credit, credit)):
        if code is None:
            check(state)
        else:
            with pytest.raises(SscardError) as info:
                check(state)
            assert info.value.code == code
