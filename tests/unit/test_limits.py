"""Rate and polling arithmetic: when the next call fits, queue estimates, adaptive polling and
retry back-off, with time and randomness injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.clock import full_jitter
from bot.limits import next_poll_interval, queue_etas, slot_times, wait_before_next


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


# -- budgets ----------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def eta(ahead: int, spent: list[datetime], **budget: Any) -> float:
    """Seconds until the request with `ahead` requests before it goes out."""
    return queue_etas(spent, count=ahead + 1, **budget)[ahead]


def test_under_the_limit_a_call_fits_now() -> None:
    spent = [ago(s) for s in range(9)]
    assert wait_before_next(spent, limit=10, window=60, now=NOW) == 0


def test_at_the_limit_wait_until_the_oldest_leaves_the_window() -> None:
    spent = [ago(50 - i) for i in range(10)]  # oldest 50 s ago
    assert wait_before_next(spent, limit=10, window=60, now=NOW) == 10


def test_calls_older_than_the_window_do_not_count() -> None:
    spent = [ago(61)] * 20 + [ago(1)] * 9
    assert wait_before_next(spent, limit=10, window=60, now=NOW) == 0


def test_queue_eta_follows_the_budget() -> None:
    # 10 spent in the last 10 s: nothing fits for 50 s; then 10 more go at once.
    spent = [ago(10 - i) for i in range(10)]
    assert eta(0, spent, limit=10, window=60, now=NOW) == 50
    assert eta(9, spent, limit=10, window=60, now=NOW) == 59
    # The 11th waiting request needs the second batch to age out: 60 s after the first slot.
    assert eta(10, spent, limit=10, window=60, now=NOW) == 110


def test_an_empty_budget_sends_ten_now_and_the_eleventh_a_window_later() -> None:
    slots = slot_times([], count=11, limit=10, window=60, now=NOW)
    assert slots[:10] == [NOW] * 10
    assert slots[10] == NOW + timedelta(seconds=60)


def test_a_block_delays_every_slot() -> None:
    blocked = NOW + timedelta(seconds=30)
    assert eta(0, [], limit=10, window=60, now=NOW, blocked_until=blocked) == 30


def test_a_call_exactly_one_window_old_no_longer_counts() -> None:
    spent = [ago(60)] + [ago(1)] * 9
    assert wait_before_next(spent, limit=10, window=60, now=NOW) == 0
    spent = [ago(59.5)] + [ago(1)] * 9
    assert wait_before_next(spent, limit=10, window=60, now=NOW) == 0.5


def test_a_burst_of_25_at_10_per_window_starts_in_three_waves() -> None:
    slots = slot_times([], count=25, limit=10, window=61, now=NOW)
    offsets = [(s - NOW).total_seconds() for s in slots]
    assert offsets == [0] * 10 + [61] * 10 + [122] * 5
    # The request with k ahead of it starts at slot k, whatever the earlier spends were.
    spent = [ago(30)] * 4  # four creates 30 s ago: six fit now
    assert eta(5, spent, limit=10, window=61, now=NOW) == 0
    assert eta(6, spent, limit=10, window=61, now=NOW) == 31
    assert eta(9, spent, limit=10, window=61, now=NOW) == 31
    assert eta(10, spent, limit=10, window=61, now=NOW) == 61


def test_a_block_longer_than_the_window_moves_every_place() -> None:
    blocked = NOW + timedelta(seconds=90)
    etas = [eta(k, [], limit=2, window=60, now=NOW, blocked_until=blocked) for k in range(5)]
    assert etas == [90, 90, 150, 150, 210]
