"""Sliding-window budget arithmetic. Pure: every function takes the spend times and `now`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta


def wait_before_next(
    spent: Sequence[datetime], *, limit: int, window: float, now: datetime
) -> float:
    """Seconds until one more call fits, so that no window of `window` seconds holds more
    than `limit` calls (0.0: it fits now)."""
    start = now - timedelta(seconds=window)
    recent = sorted(t for t in spent if t > start)
    if len(recent) < limit:
        return 0.0
    # The call that must leave the window first is the limit-th newest one.
    leaving = recent[len(recent) - limit]
    return max(0.0, (leaving + timedelta(seconds=window) - now).total_seconds())


def slot_times(
    spent: Sequence[datetime], *, count: int, limit: int, window: float, now: datetime
) -> list[datetime]:
    """When each of the next `count` calls could go out if the budget is spent greedily.

    Used for queue estimates: slot_times(...)[k] is when the request with k requests ahead of
    it starts."""
    start = now - timedelta(seconds=window)
    times = sorted(t for t in spent if t > start)
    slots: list[datetime] = []
    for _ in range(count):
        if len(times) < limit:
            slot = now
        else:
            slot = max(now, times[len(times) - limit] + timedelta(seconds=window))
        times.append(slot)
        slots.append(slot)
    return slots


def eta_seconds(
    ahead: int,
    spent: Sequence[datetime],
    *,
    limit: int,
    window: float,
    now: datetime,
    blocked_until: datetime | None = None,
) -> float:
    """Seconds until a request with `ahead` requests before it can be sent."""
    base = max(now, blocked_until) if blocked_until is not None else now
    slot = slot_times(spent, count=ahead + 1, limit=limit, window=window, now=base)[-1]
    return max(0.0, (slot - now).total_seconds())
