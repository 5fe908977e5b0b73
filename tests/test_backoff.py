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


def test_polling_grows_by_half_each_quiet_poll_and_a_change_always_resets_it() -> None:
    # Without jitter (rand 0.5 is the middle): 5 → 7.5 → 11.25 → … → 60, and back to 5.
    interval, seen = 5.0, []
    for _ in range(9):
        interval = next_poll_interval(interval, changed=False, minimum=5, maximum=60, rand=0.5)
        seen.append(round(interval, 2))
    assert seen == [7.5, 11.25, 16.88, 25.31, 37.97, 56.95, 60, 60, 60]
    for current in (5.0, 17.0, 60.0):
        assert next_poll_interval(current, changed=True, minimum=5, maximum=60, rand=0.5) == 5


def test_jitter_is_within_ten_percent_of_the_base_for_every_draw() -> None:
    draws = [i / 100 for i in range(100)]
    for current in (5.0, 10.0, 20.0, 30.0):
        base = min(60.0, current * 1.5)
        for rand in draws:
            got = next_poll_interval(current, changed=False, minimum=5, maximum=60, rand=rand)
            assert 5 <= got <= 60
            assert base * 0.9 - 1e-9 <= got <= base * 1.1 + 1e-9


def test_retry_ceilings_double_from_the_base_up_to_the_cap() -> None:
    # What the dispatcher uses: base 2 s, cap 120 s; attempt 0 is a request's first retry,
    # and every new request starts again at 0.
    ceilings = [full_jitter(attempt, base=2, cap=120, rand=1.0) for attempt in range(9)]
    assert ceilings == [2, 4, 8, 16, 32, 64, 120, 120, 120]
    assert full_jitter(200, base=2, cap=120, rand=0.5) == 60  # no overflow far out
    assert all(full_jitter(3, base=2, cap=120, rand=r / 10) < 16 for r in range(10))
