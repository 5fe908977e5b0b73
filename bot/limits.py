"""Rate and polling arithmetic. Pure: every function takes the spend times, `now` and, where
there is randomness, `rand` in [0, 1)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

POLL_GROWTH = 1.5
POLL_JITTER = 0.1


def wait_before_next(
    spent: Sequence[datetime], *, limit: int, window: float, now: datetime
) -> float:
    """Seconds until one more call fits, so that no window of `window` seconds holds more
    than `limit` calls (0.0: it fits now)."""
    start = now - timedelta(seconds=window)
    recent = sorted(t for t in spent if t > start)
    # The call that must leave the window first is the limit-th newest one.
    leaving = recent[len(recent) - limit] if len(recent) >= limit else None
    return wait_for_slot(len(recent), leaving, limit=limit, window=window, now=now)


def wait_for_slot(
    in_window: int, leaving: datetime | None, *, limit: int, window: float, now: datetime
) -> float:
    """wait_before_next from what a store can count: the calls in the window (as far as
    `limit`) and the limit-th newest of them, which must leave before another fits."""
    if in_window < limit or leaving is None:
        return 0.0
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


def next_poll_interval(
    current: float, *, changed: bool, minimum: float, maximum: float, rand: float
) -> float:
    """Poll again soon after a change, then less and less often while nothing happens.

    Jitter (±10 %) keeps runs created in one burst from being due in the same tick forever."""
    base = minimum if changed else min(maximum, max(minimum, current) * POLL_GROWTH)
    jittered = base * (1 - POLL_JITTER + 2 * POLL_JITTER * rand)
    return min(maximum, max(minimum, jittered))


def queue_etas(
    spent: Sequence[datetime],
    *,
    count: int,
    limit: int,
    window: float,
    now: datetime,
    blocked_until: datetime | None = None,
) -> list[float]:
    """Seconds until each of the next `count` waiting calls can go out ([k]: with k ahead),
    none before a 429's block ends."""
    start = max(now, blocked_until) if blocked_until is not None else now
    slots = slot_times(spent, count=count, limit=limit, window=window, now=start)
    return [max(0.0, (slot - now).total_seconds()) for slot in slots]


class Pace:
    """A token bucket: `rate` calls a second on average, at most `burst` at once.

    The tracker spends its reads at an even pace instead of the whole window in its first
    ticks: a window spent in one burst leaves every run unread for the rest of it."""

    def __init__(self, *, rate: float, burst: float, now: datetime) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = min(1.0, burst)
        self.at = now

    def take(self, now: datetime) -> int:
        """All whole calls available now (the caller gives back what it did not use)."""
        elapsed = max(0.0, (now - self.at).total_seconds())
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.at = max(self.at, now)
        taken = int(self.tokens)
        self.tokens -= taken
        return taken

    def give_back(self, calls: int) -> None:
        self.tokens = min(self.burst, self.tokens + max(0, calls))
