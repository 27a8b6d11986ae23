"""The three passwords of RULES.md §4 and their lockouts.

- SS application password: 6 digits, initial 123456 on every new card, locked after 3 wrong in a row
  until a window resets it.
- Information query password: 6-20 digits (digits only since issue 17: 12333's keypad has no letters;
  a password set earlier with letters still signs in on the web), initial = last 6 of the first card number (or of the SS
  number), the person's own across cards; 5 wrong lock it for 30 minutes.
- Bank PIN: 6 digits set by the cardholder at activation; 3 wrong lock it until next midnight
  (Shanghai) or until reset.

6-digit secrets are kept as an HMAC under a server key (a 6-digit space is too small for a slow hash
to protect, the key is what protects it); typed passwords as argon2id. Neither is ever kept in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .clock import as_utc, local_pair, next_shanghai_midnight, shanghai_day
from .errors import SscardError, tries_left_text
from .identifiers import ascii_digits
from .policy import Policy

INITIAL_SS_PASSWORD = "123456"

# ---------------------------------------------------------------- rules on new passwords


def weak_pin_reason(pin: str, citizen_id: str | None = None, birth: date | None = None) -> tuple[str, str] | None:
    """Why a 6-digit password is refused, as (zh, en), or None when it is acceptable."""
    if len(pin) != 6 or not ascii_digits(pin):
        return ("须为6位数字", "it must be 6 digits")
    if len(set(pin)) == 1:
        return ("不能是相同数字", "all digits are the same")
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:], strict=False)}
    if steps in ({1}, {-1}):
        return ("不能是连续数字", "the digits run up or down")
    if birth is not None:
        yymmdd, mmdd = f"{birth:%y%m%d}", f"{birth:%m%d}"
        if pin == yymmdd or pin.startswith(mmdd) or pin == f"{birth:%d%m%y}" or pin == f"{birth:%m%d%y}":
            return ("不能使用出生日期", "it is the birth date")
    if citizen_id:
        digits = "".join(ch for ch in citizen_id if ascii_digits(ch))
        if pin in digits:
            return ("不能使用身份证号码中的连续数字", "it is six digits of the citizen ID")
    return None


def check_new_pin(pin: str, citizen_id: str | None = None, birth: date | None = None) -> str:
    reason = weak_pin_reason(pin, citizen_id, birth)
    if reason:
        raise SscardError("weak_password", reason=reason)
    return pin


QUERY_PASSWORD_DIGITS = (6, 20)


def phone_typable(password: str) -> bool:
    """Whether a password can be typed on a phone keypad: ASCII digits only (12333 takes nothing else)."""
    return ascii_digits(password)


def query_password_rule(lang: str = "zh") -> str:
    """The rule in words, shown before the first attempt (portal) and spoken by 12333."""
    low, high = QUERY_PASSWORD_DIGITS
    if lang == "en":
        return (f"{low} to {high} digits (numbers only: the 12333 phone keypad takes digits), not all the same "
                "digit, not a run like 123456, not your birth date or part of your ID number, not the initial one.")
    return f"{low}至{high}位数字（12333电话按键只能输入数字），不能是相同数字、连续数字、出生日期或身份证号码的一部分，不能与初始密码相同。"


def check_new_query_password(password: str, citizen_id: str | None = None, initial: str | None = None,
                             birth: date | None = None) -> str:
    """The information query password is digits only (RULES §4, docs/RULES.md): the same password
    signs in on the portal and identifies a caller on 12333, whose keypad has no letters."""
    low, high = QUERY_PASSWORD_DIGITS
    if not phone_typable(password) or not (low <= len(password) <= high):
        raise SscardError("weak_password", reason=(f"须为{low}至{high}位数字（12333电话按键只能输入数字）",
                                                   f"it must be {low} to {high} digits (the 12333 keypad "
                                                   "takes digits only)"))
    if len(set(password)) == 1:
        raise SscardError("weak_password", reason=("不能是相同数字", "all digits are the same"))
    steps = {int(b) - int(a) for a, b in zip(password, password[1:], strict=False)}
    if steps in ({1}, {-1}):
        raise SscardError("weak_password", reason=("不能是连续数字", "the digits run up or down"))
    if initial is not None and password == initial:
        raise SscardError("weak_password", reason=("不能与初始密码相同", "it is the initial password"))
    if len(password) == 6:
        reason = weak_pin_reason(password, citizen_id, birth)
        if reason:
            raise SscardError("weak_password", reason=reason)
    if citizen_id and password in citizen_id.upper():
        raise SscardError("weak_password", reason=("不能使用身份证号码的一部分", "it is part of the citizen ID"))
    if birth is not None and (f"{birth:%Y%m%d}" in password or password in f"{birth:%Y%m%d}"):
        raise SscardError("weak_password", reason=("不能使用出生日期", "it is the birth date"))
    return password


def check_repeat(new: str, new_again: str) -> None:
    if not hmac.compare_digest(new.encode(), new_again.encode()):
        raise SscardError("password_mismatch")


STAFF_PASSWORD_MIN = 8
STAFF_PASSWORD_MAX = 128  # the consoles' login form reads no more than this (web.security: StaffConsole._login)
_ONE_TIME_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/l/I: read aloud, typed


def check_new_staff_password(password: str, username: str = "") -> None:
    """A staff password as it is set (`staff.add_user`, `staff.reset_password` typed by the resetter,
    `staff.change_password`): 8 to 128 characters (longer could never sign in: the login form reads 128), not the
    user name. `weak_password` with the rule otherwise."""
    if len(password) < STAFF_PASSWORD_MIN:
        raise SscardError("weak_password", reason=("员工密码至少8位", "staff passwords have at least 8 characters"))
    if len(password) > STAFF_PASSWORD_MAX:
        raise SscardError("weak_password", reason=("员工密码最多128位", "staff passwords have at most 128 characters"))
    if username and password.strip().lower() == username.strip().lower():
        raise SscardError("weak_password", reason=("不能与用户名相同", "it is the user name"))


def one_time_staff_password(seed: str | None = None) -> str:
    """A one-time staff password (a reset's, shown once to whoever reset it): 12 characters of an alphabet
    with no look-alikes (about 69 bits), which the staff password rules accept. Random; or drawn from `seed`, a
    keyed digest (hex) only the server can make (a console's: its key, the session and the form's one-time key,
    so that a double click of the confirmation resets once and shows the same password, web.staff_accounts)."""
    if seed is None:
        return "".join(pysecrets.choice(_ONE_TIME_ALPHABET) for _ in range(12))
    number, chars = int(seed, 16), []
    for _ in range(12):
        number, index = divmod(number, len(_ONE_TIME_ALPHABET))
        chars.append(_ONE_TIME_ALPHABET[index])
    return "".join(chars)


def initial_query_password(policy: Policy, first_card_number: str | None, citizen_id: str) -> str:
    if policy.query_password.initial_source == "ss_number" or not first_card_number:
        return citizen_id[-6:]
    return first_card_number[-6:]


# ---------------------------------------------------------------- keeping secrets


class Secrets:
    """HMAC for 6-digit secrets, argon2id for typed passwords. `key` comes from the server's config."""

    def __init__(self, key: bytes, argon2: PasswordHasher | None = None):
        if len(key) < 16:
            raise ValueError("the server key must be at least 16 bytes")
        self._key = key
        self._argon2 = argon2 or PasswordHasher()
        self._dummy: str | None = None

    def pin_digest(self, purpose: str, subject: str, pin: str) -> str:
        """Bound to purpose and subject, so one card's digest is useless for another card or password."""
        msg = f"{purpose}\x00{subject}\x00{pin}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def pin_matches(self, digest: str | None, purpose: str, subject: str, pin: str) -> bool:
        if not digest:
            return False
        return hmac.compare_digest(digest, self.pin_digest(purpose, subject, pin))

    def hash_password(self, password: str) -> str:
        return self._argon2.hash(password)

    def password_matches(self, hashed: str | None, password: str) -> bool:
        if not hashed:
            return False
        try:
            return self._argon2.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def no_password_matches(self, password: str) -> bool:
        """False, after as long as `password_matches` takes on a real hash (a verify against a hash of a
        random password, made once): a login whose account does not exist, or whose password is checked
        without argon2 (an initial query password), must not answer measurably sooner than one checked
        against a hash, or the time tells which logins exist (R1.8)."""
        if self._dummy is None:
            self._dummy = self._argon2.hash(pysecrets.token_hex(16))
        self.password_matches(self._dummy, password)
        return False

    def terminal_key(self, terminal_code: str, purpose: str) -> bytes:
        """A terminal's ISO 8583 key (core.terminal_keys): derived from this key, never stored."""
        from .terminal_keys import derive

        return derive(self._key, terminal_code, purpose)

    def token_digest(self, token: str) -> str:
        """API tokens are random and long: a keyed SHA-256 is enough and lets us look them up."""
        return hmac.new(self._key, b"token\x00" + token.encode(), hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# ---------------------------------------------------------------- lockout


@dataclass(frozen=True)
class Lockout:
    """Wrong attempts in a row and how long the lock lasts (None + locked=False: not locked)."""

    failures: int = 0
    locked_until: datetime | None = None  # a lock that ends by itself
    locked: bool = False  # a lock only a reset ends
    failed_at: datetime | None = None  # the last wrong attempt, where a count is per day (bank_pin, next_day)

    def is_locked(self, now: datetime) -> bool:
        if self.locked:
            return True
        return self.locked_until is not None and as_utc(now) < as_utc(self.locked_until)

    def refusal(self, code: str) -> SscardError:
        """The lock's refusal (committed: the attempt is counted). It says when the lock ends in words
        (`until`), and for a program either `locked_until` (ISO 8601, UTC) or `reset_required` (only a
        reset in person ends it)."""
        if self.locked:
            return SscardError(code, commit=True, until=self.until_text(), reset_required=True)
        if self.locked_until:
            return SscardError(code, commit=True, until=self.until_text(),
                               locked_until=as_utc(self.locked_until).isoformat())
        return SscardError(code, commit=True, until=self.until_text())

    def until_text(self) -> tuple[str, str]:
        if self.locked:
            return ("，请持身份证件办理重置", ": a reset in person is needed")
        if self.locked_until:
            zh, en = local_pair(as_utc(self.locked_until))
            return (f"至{zh}", f" until {en}")
        return ("", "")


KINDS = ("ss_password", "query_password", "bank_pin", "staff_password")


def _limits(kind: str, policy: Policy) -> int:
    return {
        "ss_password": policy.ss_password.max_failures,
        "query_password": policy.query_password.max_failures,
        "bank_pin": policy.bank_pin.max_failures,
        "staff_password": policy.login.staff_max_failures,
    }[kind]


def after_failure(lock: Lockout, kind: str, policy: Policy, now: datetime) -> Lockout:
    """One more wrong attempt; at the limit the lock starts. A lock that ran out starts a fresh count."""
    if lock.locked_until is not None and not lock.is_locked(now):
        lock = Lockout()
    per_day = kind == "bank_pin" and policy.bank_pin.lock == "next_day"
    if per_day and lock.failed_at is not None and shanghai_day(as_utc(lock.failed_at)) != shanghai_day(as_utc(now)):
        lock = Lockout()  # a day's count (当日连续): the first wrong PIN of a new Shanghai day starts from one
    failures = lock.failures + 1
    failed_at = as_utc(now) if per_day else None
    if failures < _limits(kind, policy):
        return replace(lock, failures=failures, failed_at=failed_at)
    if kind == "query_password":
        return Lockout(failures, as_utc(now) + timedelta(minutes=policy.query_password.lock_minutes), False)
    if kind == "staff_password":
        return Lockout(failures, as_utc(now) + timedelta(minutes=policy.login.staff_lock_minutes), False)
    if per_day:
        return Lockout(failures, next_shanghai_midnight(as_utc(now)), False, failed_at)
    return Lockout(failures, None, True)


def after_success(lock: Lockout) -> Lockout:
    return Lockout()


def after_reset(lock: Lockout) -> Lockout:
    return Lockout()


def check_not_locked(lock: Lockout, now: datetime, code: str = "password_locked") -> None:
    if lock.is_locked(now):
        raise SscardError(code, until=lock.until_text())


def verify_with_lockout(
    lock: Lockout, kind: str, policy: Policy, now: datetime, matches: bool, *, locked_code: str, wrong_code: str
) -> tuple[Lockout, SscardError | None]:
    """The shared shape of every password check: refuse while locked, count a miss, clear on a hit.

    Returns the new lock state and the error to raise (after the state is saved), if any."""
    if lock.is_locked(now):
        return lock, lock.refusal(locked_code)
    if matches:
        return after_success(lock), None
    new = after_failure(lock, kind, policy, now)
    if new.is_locked(now):
        return new, new.refusal(locked_code)
    left = max(_limits(kind, policy) - new.failures, 0)
    return new, SscardError(wrong_code, commit=True, tries_left=left, tries=tries_left_text(left))
