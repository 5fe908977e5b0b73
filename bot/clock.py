"""Time as an input, and the time arithmetic both API clients share.

Pure code takes `now`; the edges ask a Clock, which tests replace with FakeClock. The helpers
below are pure: an ISO timestamp from an API, a Retry-After header, a full-jitter back-off.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol

# Longest Retry-After we believe; a larger value is more likely a bug than a plan.
MAX_RETRY_AFTER_SECONDS = 3600.0


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told; `sleep` advances it instead of waiting."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now

    def advance_to(self, moment: datetime) -> datetime:
        """Jump forward to `moment` (never back)."""
        if moment > self._now:
            self._now = moment
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def utc(value: datetime) -> datetime:
    """Treat a naive datetime (SQLite returns them) as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_time(value: str | None) -> datetime | None:
    """An API's ISO 8601 timestamp ("…Z" included) as an aware datetime; None if unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return utc(parsed)


def parse_retry_after(value: str | None, *, now: datetime, default: float = 60.0) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date.

    Clamped to [0, MAX_RETRY_AFTER_SECONDS]; `default` when absent or unreadable.
    """
    if value is None or not value.strip():
        return default
    text = value.strip()
    seconds: float
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC with unknown origin
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def full_jitter(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """AWS-style full jitter: a uniform wait in [0, min(cap, base·2^attempt)); `rand` in
    [0, 1) is the randomness, passed in."""
    return rand * min(cap, base * (2.0 ** min(attempt, 64)))
