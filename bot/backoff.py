"""Back-off arithmetic. Pure: randomness comes in as `rand` in [0, 1)."""

from __future__ import annotations

GROWTH = 1.5
JITTER = 0.1


def next_poll_interval(
    current: float, *, changed: bool, minimum: float, maximum: float, rand: float
) -> float:
    """Poll again soon after a change, then less and less often while nothing happens.

    Jitter (±10 %) keeps runs created in one burst from being due in the same tick forever."""
    base = minimum if changed else min(maximum, max(minimum, current) * GROWTH)
    jittered = base * (1 - JITTER + 2 * JITTER * rand)
    return min(maximum, max(minimum, jittered))


def full_jitter(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """AWS-style full jitter: a uniform wait in [0, min(cap, base·2^attempt))."""
    return rand * min(cap, base * (2**attempt))
