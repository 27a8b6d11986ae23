"""The login throttle across accounts (issue 13): wrong passwords counted per client address.

Each account locks itself after a few misses (services/passwords, core/passwords), which does nothing
against one client trying one password on many accounts (credential stuffing). Here every failed
login at any door (staff console, bank console, portal, API) counts against the client's address;
over `login.client_failures_per_minute` or `..._per_hour` the next login is refused with
`too_many_attempts` *before* the password is checked, so it neither reveals anything nor burns the
account's own counter.

Counting is the `limits` library's moving window, in its in-memory storage (one process) or Redis
(`SSCARD_RATE_LIMIT_STORAGE=redis://...`, shared by every worker). `limits` reads the wall clock (the
memory storage calls time.time(), Redis its server's TIME), so these windows do not follow the injected
clock: a throttle is protection in real time, not a business rule about days.

A refusal is audited once per client, door and minute ("login.throttled": the address, the door and
how many distinct accounts it tried in the hour; never a login name or password), not once per
request, so an attack cannot flood the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter

from ..core.errors import SscardError, register_messages
from ..core.roles import Actor, Channel, Role
from .access import Scope
from .app import App
from .operation import Op, key_scope, operation

register_messages({
    "too_many_attempts": (
        429,
        "来自您所在网络地址的登录失败次数过多，请{seconds}秒后再试",
        "Too many failed logins from your network address: try again in {seconds} seconds",
    ),
})

# The doors, and the channel their refusals are audited on.
DOORS = {"console": Channel.WINDOW, "bank": Channel.BANK_OUTLET, "portal": Channel.PORTAL, "api": Channel.API,
         "12333": Channel.HOTLINE_12333, "bank_hotline": Channel.HOTLINE_BANK}  # the hotlines: by caller number
FAILED_LOGIN = ("wrong_password", "password_locked", "wrong_pin", "pin_locked")  # refusals a throttle counts
_MAX_ACCOUNTS = 100_000  # the distinct-accounts counter's ceiling (a count, not a limit)
T = TypeVar("T")


def client_key(client: str) -> str:
    """What a client address is counted as: an IPv6 address as its /64 (one subscriber's network: a host
    picks any of its 2^64 addresses at will, so counting each one let a single machine make every guess from
    a fresh address, session 27's probe), an IPv4-mapped one as its IPv4 address; anything else (an IPv4
    address, a caller's number on the hotlines) as it is."""
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return client


class LoginThrottle:
    """Failed logins per client address (an IPv6 client per /64: `client_key`), in moving windows of a
    minute and an hour."""

    def __init__(self, storage_uri: str, per_minute: int, per_hour: int, *, key: bytes,
                 namespace: str = "sscard-login", windows: tuple[RateLimitItem, ...] | None = None):
        self.storage = storage_from_string(storage_uri)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.key = key
        self.windows = windows or (
            RateLimitItemPerMinute(per_minute, namespace=namespace),
            RateLimitItemPerHour(per_hour, namespace=namespace),
        )
        longest = max(w.get_expiry() for w in self.windows)
        self.audited = RateLimitItemPerMinute(1, namespace=f"{namespace}-audited")
        self.seen = RateLimitItemPerSecond(1, longest, namespace=f"{namespace}-seen")
        self.accounts = RateLimitItemPerSecond(_MAX_ACCOUNTS, longest, namespace=f"{namespace}-accounts")

    def retry_after(self, client: str) -> int:
        """Seconds until this client may try again; 0 when it may now."""
        client = client_key(client)
        wait = 0.0
        for window in self.windows:
            if not self.limiter.test(window, client):
                reset, _ = self.limiter.get_window_stats(window, client)
                wait = max(wait, reset - time.time())
        return 0 if wait <= 0 else max(1, math.ceil(wait))

    def failed(self, client: str, door: str, login: str) -> None:
        """Count one wrong login; the account is kept only as a keyed digest, to count distinct ones."""
        client = client_key(client)
        for window in self.windows:
            self.limiter.hit(window, client)
        account = hmac.new(self.key, f"{door}\x00{login.strip().upper()}".encode(), hashlib.sha256).hexdigest()[:32]
        if self.limiter.hit(self.seen, client, account):
            self.limiter.hit(self.accounts, client)

    def accounts_tried(self, client: str) -> int:
        client = client_key(client)
        return _MAX_ACCOUNTS - self.limiter.get_window_stats(self.accounts, client).remaining

    def first_refusal_in_window(self, client: str, door: str) -> bool:
        return self.limiter.hit(self.audited, client_key(client), door)


def throttle_for(app: App) -> LoginThrottle:
    """The app's throttle, built once from its settings and policy."""
    found = app.extras.get("login_throttle")
    if found is None:
        policy = app.policy.login
        found = LoginThrottle(app.settings.rate_limit_storage, policy.client_failures_per_minute,
                              policy.client_failures_per_hour, key=app.settings.secret_key)
        app.extras["login_throttle"] = found
    return found


def gateway(door: str) -> Actor:
    return Actor(kind="channel", id=door, role=Role.SYSTEM, name=f"{door} login", channel=DOORS[door])


def guarded_login(app: App, client: str, door: str, login: str, attempt: Callable[[], T]) -> T:
    """Run one login attempt (`attempt()`: None or wrong_password/password_locked when it fails) under
    the client's throttle: refused unchecked when the client is over its limit, counted when it fails."""
    if door not in DOORS:
        raise ValueError(f"unknown login door {door!r}")
    throttle = throttle_for(app)
    wait = throttle.retry_after(client)
    if wait:
        if throttle.first_refusal_in_window(client, door):
            # raises too_many_attempts once its audit record is written
            login_throttled(app, gateway(door), client, door, throttle.accounts_tried(client), wait)
        raise SscardError("too_many_attempts", seconds=wait)
    try:
        result = attempt()
    except SscardError as err:
        if err.code in FAILED_LOGIN:
            throttle.failed(client, door, login)
        raise
    if result is None:
        throttle.failed(client, door, login)
    return result


@operation("login.throttled", roles={Role.SYSTEM}, scope=Scope.CITY, keyed=False)
def login_throttled(op: Op, client: str, door: str, accounts_tried: int, retry_after: int) -> dict[str, Any]:
    """The audit record of a client refused at a login door (once per client, door and minute)."""
    policy = op.policy.login
    op.audit("client", client, after="throttled", door=door, accounts_tried=accounts_tried,
             retry_after_seconds=retry_after, per_minute=policy.client_failures_per_minute,
             per_hour=policy.client_failures_per_hour)
    raise SscardError("too_many_attempts", commit=True, seconds=retry_after)


# ---------------------------------------------------------------- requests per caller

CALLER_KINDS = ("terminal", "staff", "cardholder")


def caller_kind(actor: Actor) -> str | None:
    """Which of the policy's per-caller limits counts this actor's requests (None: none, the server's own)."""
    if actor.role is Role.SYSTEM:
        return None
    if actor.role is Role.TERMINAL:
        return "terminal"
    return "cardholder" if actor.role is Role.CARDHOLDER else "staff"


class LocalWindows:
    """Sliding window counters in this process (the `limits` library's sliding window counter, its arithmetic
    without its storage's machinery): per caller, this window's count and the previous one's, the previous
    weighted by how much of it the sliding window still covers. A hit is a dict look-up and a few additions
    under one lock (~1 µs; `limits`' memory storage took ~20 µs of the event loop per request, several locks,
    key strings and expiry timers, on every request of a route the lane answers in ~40 µs)."""

    MAX_CALLERS = 100_000  # past it, callers silent for two windows are forgotten

    def __init__(self, window_seconds: int) -> None:
        self.window = float(window_seconds)
        self.counts: dict[str, list[float]] = {}  # caller -> [window number, count in it, count in the one before]
        self.lock = threading.Lock()

    def hit(self, who: str, limit: int) -> float:
        """Count one request within `limit`: 0.0, else the seconds until one would be (not counted)."""
        number, into = divmod(time.time(), self.window)
        with self.lock:
            entry = self.counts.get(who)
            if entry is None or entry[0] != number:
                before = entry[1] if entry is not None and entry[0] == number - 1 else 0.0
                if entry is None and len(self.counts) >= self.MAX_CALLERS:
                    self._forget(number)
                entry = self.counts[who] = [number, 0.0, before]
            current, previous = entry[1], entry[2]
            if current + previous * (1 - into / self.window) + 1 <= limit:
                entry[1] = current + 1
                return 0.0
        return self._wait(current, previous, into, limit)

    def _wait(self, current: float, previous: float, into: float, limit: int) -> float:
        w = self.window
        if current + 1 <= limit and previous:  # within this window, once the previous one has faded enough
            return min(w * (1 - (limit - 1 - current) / previous) - into, w - into)
        # in the next window, once this one (then the previous) has faded enough
        return (w - into) + max(0.0, w * (1 - (limit - 1) / current)) if current else w - into

    def _forget(self, number: float) -> None:
        for who in [who for who, entry in self.counts.items() if entry[0] < number - 1]:
            del self.counts[who]


class CallerRate:
    """Requests per caller on the API (its tokens': a staff user's, a terminal's, a cardholder's), in a sliding
    window of the city's policy (`api.rate_window_seconds`; `api.terminal_requests_per_window`,
    `..._staff_...`, `..._cardholder_...`). A valid token could hammer any route as fast as the server answered;
    a refusal here costs a counter's look-up, no database. Counted in the login throttle's storage
    (`SSCARD_RATE_LIMIT_STORAGE`): memory:// in this worker process (`LocalWindows`), anything else (redis://)
    by the `limits` library's sliding window counter there, across the workers (its moving window would keep a
    timestamp per request, too dear at thousands a second)."""

    def __init__(self, storage_uri: str, window_seconds: int, per_window: dict[str, int], *,
                 local: bool | None = None) -> None:
        self.per_window = dict(per_window)
        in_process = storage_uri.startswith("memory://") if local is None else local
        self.local = LocalWindows(window_seconds) if in_process else None
        self.audits = LocalWindows(window_seconds) if in_process else None  # one audited refusal a window
        self.storage = storage_from_string(storage_uri)
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)
        self.items = {kind: RateLimitItemPerSecond(per_window[kind], window_seconds, namespace=f"sscard-rate-{kind}")
                      for kind in CALLER_KINDS}
        self.audited = RateLimitItemPerSecond(1, window_seconds, namespace="sscard-rate-audited")

    def wait(self, actor: Actor) -> int:
        """Count one request of this actor: 0 when it is within its limit, else the seconds until it may be
        (a refused request is not counted)."""
        kind = caller_kind(actor)
        if kind is None:
            return 0
        who = key_scope(actor)  # the caller behind every token of theirs, as their Idempotency-Keys are scoped
        if self.local is not None:
            wait = self.local.hit(who, self.per_window[kind])
            return 0 if wait == 0.0 else max(1, math.ceil(wait))
        item = self.items[kind]
        if self.limiter.hit(item, who):
            return 0
        reset, _ = self.limiter.get_window_stats(item, who)
        return max(1, math.ceil(reset - time.time()))

    def first_refusal_in_window(self, actor: Actor) -> bool:
        """Whether this refusal of the caller is to be audited (the first in a window)."""
        who = key_scope(actor)
        if self.audits is not None:
            return self.audits.hit(who, 1) == 0.0
        return self.limiter.hit(self.audited, who)


def caller_rate(app: App) -> CallerRate:
    """The app's per-caller request limits, built once from its settings and policy."""
    found = app.extras.get("caller_rate")
    if found is None:
        policy = app.policy.api
        found = CallerRate(app.settings.rate_limit_storage, policy.rate_window_seconds,
                           {"terminal": policy.terminal_requests_per_window,
                            "staff": policy.staff_requests_per_window,
                            "cardholder": policy.cardholder_requests_per_window})
        app.extras["caller_rate"] = found
    return found


def refuse_over_rate(app: App, actor: Actor, wait: int) -> None:
    """Refuse a caller over its limit: `rate_limited` with the seconds to wait (Retry-After). Its audit record
    (`throttle.caller_limited`) is written once per caller and window, never once per request: a loop cannot flood the
    log, and a refusal that is not audited costs no database and no thread (api.deps.admitted calls this in a
    thread only when `first_refusal_in_window`; then it audits)."""
    kind = caller_kind(actor)
    assert kind is not None  # (only a counted caller is ever over its limit)
    api_throttled(app, gateway("api"), key_scope(actor), kind, wait)  # raises once recorded
    raise SscardError("rate_limited", seconds=wait)  # (not reached)


@operation("throttle.caller_limited", roles={Role.SYSTEM}, scope=Scope.CITY, keyed=False)
def api_throttled(op: Op, caller: str, kind: str, retry_after: int) -> dict[str, Any]:
    """The audit record of a caller refused for its request rate (once per caller and window)."""
    policy = op.policy.api
    op.audit("caller", caller, after="throttled", kind=kind, retry_after_seconds=retry_after,
             window_seconds=policy.rate_window_seconds, per_window=getattr(policy, f"{kind}_requests_per_window"))
    raise SscardError("rate_limited", commit=True, seconds=retry_after)
