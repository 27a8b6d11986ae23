"""RULES §4 in core: weak-password rules, initial values, keeping secrets, and the three lockouts.

The lockouts are also checked by Hypothesis state machines: a model written from RULES §4 against
the implementation, with rules that try passwords and move the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sscard.core.clock import SHANGHAI, FixedClock
from sscard.core.errors import SscardError
from sscard.core.passwords import (
    INITIAL_SS_PASSWORD,
    Lockout,
    Secrets,
    after_failure,
    after_reset,
    check_new_pin,
    check_new_query_password,
    check_repeat,
    initial_query_password,
    verify_with_lockout,
    weak_pin_reason,
)
from sscard.core.policy import load_policy

CID = "11010519491231002X"
BIRTH = date(1949, 12, 31)
KEY = bytes(range(32))


# ---------------------------------------------------------------- weak passwords


@pytest.mark.parametrize(
    ("pin", "reason"),
    [
        ("12345", "it must be 6 digits"),
        ("1234567", "it must be 6 digits"),
        ("12a456", "it must be 6 digits"),
        ("111111", "all digits are the same"),
        ("000000", "all digits are the same"),
        ("123456", "the digits run up or down"),
        ("345678", "the digits run up or down"),
        ("987654", "the digits run up or down"),
        ("491231", "it is the birth date"),  # YYMMDD
        ("123149", "it is the birth date"),  # MMDDYY
        ("311249", "it is the birth date"),  # DDMMYY
        ("123170", "it is the birth date"),  # MMDD..
        ("105194", "it is six digits of the citizen ID"),
        ("231002", "it is six digits of the citizen ID"),
    ],
)
def test_weak_six_digit_passwords_are_refused_with_the_reason(pin, reason):
    assert weak_pin_reason(pin, CID, BIRTH)[1] == reason
    with pytest.raises(SscardError) as info:
        check_new_pin(pin, CID, BIRTH)
    assert info.value.code == "weak_password"
    assert info.value.message("en") == f"The password is too weak: {reason}"
    assert pin not in info.value.message("en").split(": ")[1]


@pytest.mark.parametrize("pin", ["135790", "802461", "120033", "975310", "112358"])
def test_ordinary_six_digit_passwords_are_accepted(pin):
    assert check_new_pin(pin, CID, BIRTH) == pin


@pytest.mark.parametrize(
    ("password", "initial", "reason"),
    [
        ("80461", None, "it must be 6 to 20 digits (the 12333 keypad takes digits only)"),
        ("8" + "0461" * 5, None, "it must be 6 to 20 digits (the 12333 keypad takes digits only)"),
        (" 8046135", None, "it must be 6 to 20 digits (the 12333 keypad takes digits only)"),
        ("Lake-View-88", None, "it must be 6 to 20 digits (the 12333 keypad takes digits only)"),  # letters: 12333's keypad cannot type them
        ("８０４６１３５", None, "it must be 6 to 20 digits (the 12333 keypad takes digits only)"),  # full-width digits from a Chinese IME are not keypad digits
        ("88888888", None, "all digits are the same"),
        ("450213", "450213", "it is the initial password"),
        ("19491231", None, "it is part of the citizen ID"),
        ("000000", None, "all digits are the same"),
        ("654321", None, "the digits run up or down"),
        ("23456789", None, "the digits run up or down"),
    ],
)
def test_weak_query_passwords_are_refused(password, initial, reason):
    with pytest.raises(SscardError) as info:
        check_new_query_password(password, CID, initial)
    assert info.value.message("en") == f"The password is too weak: {reason}"


def test_a_good_query_password_is_digits_a_phone_can_type():
    assert check_new_query_password("80468213", CID, "45002X") == "80468213"
    assert check_new_query_password("802461", CID, "45002X") == "802461"


def test_new_password_must_be_typed_twice_the_same():
    check_repeat("Lake-View-88", "Lake-View-88")
    with pytest.raises(SscardError) as info:
        check_repeat("Lake-View-88", "Lake-View-89")
    assert info.value.code == "password_mismatch"


# ---------------------------------------------------------------- initial values and secrets


def test_initial_ss_password_is_123456_even_though_it_is_a_run():
    assert INITIAL_SS_PASSWORD == "123456"
    assert weak_pin_reason(INITIAL_SS_PASSWORD) is not None  # as issued, never as chosen


def test_initial_query_password_is_last_six_of_first_card_number_or_of_the_ss_number():
    assert initial_query_password(load_policy(), "A12345674", CID) == "345674"
    ss = load_policy(query_password={"initial_source": "ss_number"})
    assert initial_query_password(ss, "A12345674", CID) == "31002X"
    assert initial_query_password(load_policy(), None, CID) == "31002X"  # before any card exists


def test_pin_digests_are_keyed_and_bound_to_purpose_and_subject():
    s = Secrets(KEY)
    d = s.pin_digest("ss_password", "A12345674", "135790")
    assert "135790" not in d and len(d) == 64
    assert s.pin_matches(d, "ss_password", "A12345674", "135790")
    assert not s.pin_matches(d, "ss_password", "A12345674", "135791")
    assert not s.pin_matches(d, "bank_pin", "A12345674", "135790")
    assert not s.pin_matches(d, "ss_password", "B12345674", "135790")
    assert not s.pin_matches(None, "ss_password", "A12345674", "135790")
    assert Secrets(bytes(range(1, 33))).pin_digest("ss_password", "A12345674", "135790") != d
    with pytest.raises(ValueError):
        Secrets(b"short")


def test_typed_passwords_are_argon2id_hashes():
    from sscard.services.app import FAST_ARGON2

    s = Secrets(KEY, FAST_ARGON2)
    h = s.hash_password("Lake-View-88")
    assert h.startswith("$argon2id$") and "Lake-View-88" not in h
    assert s.password_matches(h, "Lake-View-88")
    assert not s.password_matches(h, "Lake-View-89")
    assert not s.password_matches("not a hash", "Lake-View-88")
    assert not s.password_matches(None, "Lake-View-88")


# ---------------------------------------------------------------- lockouts, example by example

T0 = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai


def _fail(lock: Lockout, kind: str, policy, now, times: int) -> Lockout:
    for _ in range(times):
        lock = after_failure(lock, kind, policy, now)
    return lock


def test_query_password_locks_after_five_for_thirty_minutes_then_counts_afresh():
    policy = load_policy()
    lock = _fail(Lockout(), "query_password", policy, T0, 4)
    assert not lock.is_locked(T0) and lock.failures == 4
    lock = after_failure(lock, "query_password", policy, T0)
    assert lock.is_locked(T0) and lock.locked_until == T0 + timedelta(minutes=30)
    assert lock.is_locked(T0 + timedelta(minutes=29, seconds=59))
    assert not lock.is_locked(T0 + timedelta(minutes=30))
    later = after_failure(lock, "query_password", policy, T0 + timedelta(minutes=31))
    assert later.failures == 1 and not later.is_locked(T0 + timedelta(minutes=31))


def test_query_password_lock_follows_the_policy():
    policy = load_policy(query_password={"max_failures": 2, "lock_minutes": 5})
    lock = _fail(Lockout(), "query_password", policy, T0, 2)
    assert lock.locked_until == T0 + timedelta(minutes=5)


def test_ss_password_locks_after_three_until_reset():
    policy = load_policy()
    lock = _fail(Lockout(), "ss_password", policy, T0, 2)
    assert not lock.is_locked(T0)
    lock = after_failure(lock, "ss_password", policy, T0)
    assert lock.locked and lock.is_locked(T0 + timedelta(days=3650))
    assert not after_reset(lock).is_locked(T0)
    assert _fail(Lockout(), "ss_password", load_policy(ss_password={"max_failures": 5}), T0, 4).locked is False


@pytest.mark.parametrize(
    ("local_time", "unlock_local"),
    [
        (datetime(2026, 1, 5, 10, 0), datetime(2026, 1, 6, 0, 0)),
        (datetime(2026, 1, 5, 23, 59), datetime(2026, 1, 6, 0, 0)),
        (datetime(2026, 1, 6, 0, 0), datetime(2026, 1, 7, 0, 0)),  # locked at midnight: the whole day
        (datetime(2026, 1, 6, 1, 30), datetime(2026, 1, 7, 0, 0)),  # 17:30 UTC the day before
        (datetime(2026, 12, 31, 20, 0), datetime(2027, 1, 1, 0, 0)),
    ],
)
def test_bank_pin_locks_until_the_next_shanghai_midnight(local_time, unlock_local):
    now = local_time.replace(tzinfo=SHANGHAI).astimezone(UTC)
    unlock = unlock_local.replace(tzinfo=SHANGHAI).astimezone(UTC)
    lock = _fail(Lockout(), "bank_pin", load_policy(), now, 3)
    assert lock.locked_until == unlock
    assert lock.is_locked(unlock - timedelta(seconds=1)) and not lock.is_locked(unlock)


def test_bank_pin_until_reset_policy_keeps_the_lock():
    lock = _fail(Lockout(), "bank_pin", load_policy(bank_pin={"lock": "until_reset"}), T0, 3)
    assert lock.locked and lock.is_locked(T0 + timedelta(days=30))


def test_verify_with_lockout_refuses_while_locked_even_with_the_right_password():
    policy = load_policy()
    lock = _fail(Lockout(), "ss_password", policy, T0, 3)
    new, error = verify_with_lockout(lock, "ss_password", policy, T0, True, locked_code="password_locked",
                                     wrong_code="wrong_password")
    assert new == lock and error.code == "password_locked" and error.commit
    assert "reset" in error.message("en")


def test_wrong_and_locked_answers_commit_the_counter():
    policy = load_policy()
    new, error = verify_with_lockout(Lockout(), "query_password", policy, T0, False,
                                     locked_code="password_locked", wrong_code="wrong_password")
    assert new.failures == 1 and error.code == "wrong_password" and error.commit
    lock = _fail(Lockout(), "query_password", policy, T0, 4)
    new, error = verify_with_lockout(lock, "query_password", policy, T0, False,
                                     locked_code="password_locked", wrong_code="wrong_password")
    assert error.code == "password_locked" and "Beijing time" in error.message("en")
    assert "10:30" in error.message("en")  # 02:30 UTC is 10:30 in Shanghai


# ---------------------------------------------------------------- lockouts, model vs implementation

RIGHT, WRONG = True, False


class LockoutMachine(RuleBasedStateMachine):
    """Model of RULES §4 for one password: a miss counts, a hit clears, at the limit it locks.

    kind, policy and the model's lock rule are chosen at the start; the clock moves by rules."""

    def __init__(self):
        super().__init__()
        self.clock = FixedClock(T0)

    @initialize(
        kind=st.sampled_from(["ss_password", "query_password", "bank_pin"]),
        max_failures=st.integers(1, 6),
        lock_minutes=st.integers(1, 120),
        bank_lock=st.sampled_from(["next_day", "until_reset"]),
    )
    def setup(self, kind, max_failures, lock_minutes, bank_lock):
        self.kind = kind
        self.max = max_failures
        self.lock_minutes = lock_minutes
        self.bank_lock = bank_lock
        self.policy = load_policy(
            ss_password={"max_failures": max_failures},
            query_password={"max_failures": max_failures, "lock_minutes": lock_minutes},
            bank_pin={"max_failures": max_failures, "lock": bank_lock},
        )
        self.lock = Lockout()
        # the model
        self.misses = 0
        self.miss_day = None  # the Shanghai day of the last miss
        self.forever = False
        self.until: datetime | None = None

    def _model_locked(self, now: datetime) -> bool:
        return self.forever or (self.until is not None and now < self.until)

    def _model_lock_end(self, now: datetime) -> datetime | None:
        if self.kind == "query_password":
            return now + timedelta(minutes=self.lock_minutes)
        if self.kind == "bank_pin" and self.bank_lock == "next_day":
            local = now.astimezone(SHANGHAI).date() + timedelta(days=1)
            return datetime(local.year, local.month, local.day, tzinfo=SHANGHAI).astimezone(UTC)
        return None

    @precondition(lambda self: hasattr(self, "kind"))
    @rule(right=st.booleans())
    def attempt(self, right):
        now = self.clock.now()
        self.lock, error = verify_with_lockout(
            self.lock, self.kind, self.policy, now, right, locked_code="password_locked", wrong_code="wrong_password"
        )
        if self._model_locked(now):
            expected = "password_locked"
        elif right:
            self.misses, self.until = 0, None
            expected = None
        else:
            if self.until is not None:  # a lock that ran out: counting starts again
                self.misses, self.until = 0, None
            day = now.astimezone(SHANGHAI).date()
            if self.kind == "bank_pin" and self.bank_lock == "next_day" and day != self.miss_day:
                self.misses = 0  # RULES gap 15: a day's wrong PINs (当日连续), counted per Shanghai day
            self.miss_day = day
            self.misses += 1
            if self.misses >= self.max:
                end = self._model_lock_end(now)
                self.forever = end is None
                self.until = end
                expected = "password_locked"
            else:
                expected = "wrong_password"
        assert (error.code if error else None) == expected

    @precondition(lambda self: hasattr(self, "kind"))
    @rule(minutes=st.integers(0, 36 * 60))
    def clock_moves(self, minutes):
        self.clock.advance(minutes=minutes)

    @precondition(lambda self: hasattr(self, "kind"))
    @rule()
    def reset_at_window(self):
        self.lock = after_reset(self.lock)
        self.misses, self.until, self.forever = 0, None, False

    @precondition(lambda self: hasattr(self, "kind"))
    @invariant()
    def locked_agrees_with_the_model(self):
        now = self.clock.now()
        assert self.lock.is_locked(now) == self._model_locked(now)
        if not self._model_locked(now) and self.until is None:
            assert self.lock.failures == self.misses


LockoutMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_lockout_machine_matches_the_rules = LockoutMachine.TestCase
