"""Time comes from a clock that tests can move, so the 60-day window and lock expiries are testable."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import overload
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    """Wall-clock time, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        """The calendar day in Asia/Shanghai: every 'day' in the rules is a Shanghai day."""
        return self.now().astimezone(SHANGHAI).date()


class FixedClock(Clock):
    """A clock that only moves when told to (tests, demos, benchmarks that replay a day)."""

    def __init__(self, start: datetime | None = None):
        self._now = start or datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when if when.tzinfo else when.replace(tzinfo=UTC)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        with self._lock:
            self._now += delta or timedelta(**kwargs)
            return self._now


def next_shanghai_midnight(now: datetime) -> datetime:
    """The next 00:00 in Asia/Shanghai after `now`, as UTC."""
    local = now.astimezone(SHANGHAI)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)
    return midnight.astimezone(UTC)


def shanghai_day(now: datetime) -> date:
    return now.astimezone(SHANGHAI).date()


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC by our convention."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_time(value: datetime | str) -> datetime:
    """A time (a datetime, or an ISO string as the services answer), timezone-aware; naive means UTC."""
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(str(value)))


def in_shanghai(value: datetime | str) -> datetime:
    """A time in Asia/Shanghai: what a person in China reads."""
    return parse_time(value).astimezone(SHANGHAI)


def shanghai_time(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """How every page, PDF and hotline shows a time: in Beijing time ("" for none)."""
    if not value:
        return ""
    return in_shanghai(value).strftime(fmt)


MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")


def local_text(value: datetime | date | str | None, lang: str, *, day: bool = False) -> str:
    """A time (or a day) as a person reads it, in Beijing time and in their language's form: every
    sentence spoken or shown to a person (the hotlines' texts, refusals' messages, pages' sentences) says
    a time through this one function. zh: 2026年12月6日21:30; en: 6 December 2026, 21:30 (Beijing time).
    A date, a "YYYY-MM-DD" string or `day=True` says the day alone. "" for none. Fields a program reads
    (an API's `locked_until`, an audit record) stay ISO 8601."""
    if value is None or value == "":
        return ""
    when: datetime | None = None
    if isinstance(value, datetime) or (isinstance(value, str) and len(value) > 10):
        when = in_shanghai(value)
        on = when.date()
    else:
        on = value if isinstance(value, date) else date.fromisoformat(value)
    en = lang.startswith("en")
    said = f"{on.day} {MONTHS_EN[on.month - 1]} {on.year}" if en else f"{on.year}年{on.month}月{on.day}日"
    if when is None or day:
        return said
    return f"{said}, {when:%H:%M} (Beijing time)" if en else f"{said}{when:%H:%M}"


def local_pair(value: datetime | date | str | None, *, day: bool = False) -> tuple[str, str]:
    """`local_text` in both languages, as a refusal's parameter (SscardError says the caller's one)."""
    return local_text(value, "zh", day=day), local_text(value, "en", day=day)
