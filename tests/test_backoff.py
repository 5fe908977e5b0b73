"""Adaptive polling and retry back-off, with randomness injected."""

from __future__ import annotations

from bot.backoff import full_jitter, next_poll_interval


def test_polling_slows_while_nothing_changes_and_stays_within_the_bounds() -> None:
    interval = 5.0
    seen = []
    for _ in range(12):
        interval = next_poll_interval(interval, changed=False, minimum=5, maximum=60, rand=0.5)
        seen.append(interval)
    assert seen == sorted(seen)
    assert seen[0] == 7.5
    assert seen[-1] == 60


def test_a_change_resets_polling_to_the_minimum() -> None:
    assert next_poll_interval(60, changed=True, minimum=5, maximum=60, rand=0.5) == 5


def test_jitter_spreads_intervals_but_never_leaves_the_bounds() -> None:
    low = next_poll_interval(20, changed=False, minimum=5, maximum=60, rand=0.0)
    high = next_poll_interval(20, changed=False, minimum=5, maximum=60, rand=0.999)
    assert 5 <= low < 30 < high <= 60
    assert next_poll_interval(5, changed=True, minimum=5, maximum=60, rand=0.0) == 5
    assert next_poll_interval(60, changed=False, minimum=5, maximum=60, rand=0.999) == 60


def test_fractional_intervals_are_allowed() -> None:
    assert next_poll_interval(0.1, changed=True, minimum=0.1, maximum=0.5, rand=0.5) == 0.1


def test_full_jitter_grows_to_its_cap() -> None:
    assert full_jitter(0, base=1, cap=30, rand=0.999) < 1
    assert full_jitter(3, base=1, cap=30, rand=0.5) == 4
    assert full_jitter(10, base=1, cap=30, rand=0.5) == 15
    assert full_jitter(4, base=1, cap=30, rand=0.0) == 0
