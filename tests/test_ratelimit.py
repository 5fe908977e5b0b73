"""Budget arithmetic with an injected clock: when the next call fits, queue position ETAs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot import ratelimit

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_under_the_limit_a_call_fits_now() -> None:
    spent = [ago(s) for s in range(9)]
    assert ratelimit.wait_before_next(spent, limit=10, window=60, now=NOW) == 0


def test_at_the_limit_wait_until_the_oldest_leaves_the_window() -> None:
    spent = [ago(50 - i) for i in range(10)]  # oldest 50 s ago
    assert ratelimit.wait_before_next(spent, limit=10, window=60, now=NOW) == 10


def test_calls_older_than_the_window_do_not_count() -> None:
    spent = [ago(61)] * 20 + [ago(1)] * 9
    assert ratelimit.wait_before_next(spent, limit=10, window=60, now=NOW) == 0


def test_queue_eta_follows_the_budget() -> None:
    # 10 spent in the last 10 s: nothing fits for 50 s; then 10 more go at once.
    spent = [ago(10 - i) for i in range(10)]
    assert ratelimit.eta_seconds(0, spent, limit=10, window=60, now=NOW) == 50
    assert ratelimit.eta_seconds(9, spent, limit=10, window=60, now=NOW) == 59
    # The 11th waiting request needs the second batch to age out: 60 s after the first slot.
    assert ratelimit.eta_seconds(10, spent, limit=10, window=60, now=NOW) == 110


def test_an_empty_budget_sends_ten_now_and_the_eleventh_a_window_later() -> None:
    slots = ratelimit.slot_times([], count=11, limit=10, window=60, now=NOW)
    assert slots[:10] == [NOW] * 10
    assert slots[10] == NOW + timedelta(seconds=60)


def test_a_block_delays_every_slot() -> None:
    blocked = NOW + timedelta(seconds=30)
    assert ratelimit.eta_seconds(0, [], limit=10, window=60, now=NOW, blocked_until=blocked) == 30


def test_a_call_exactly_one_window_old_no_longer_counts() -> None:
    spent = [ago(60)] + [ago(1)] * 9
    assert ratelimit.wait_before_next(spent, limit=10, window=60, now=NOW) == 0
    spent = [ago(59.5)] + [ago(1)] * 9
    assert ratelimit.wait_before_next(spent, limit=10, window=60, now=NOW) == 0.5


def test_a_burst_of_25_at_10_per_window_starts_in_three_waves() -> None:
    slots = ratelimit.slot_times([], count=25, limit=10, window=61, now=NOW)
    offsets = [(s - NOW).total_seconds() for s in slots]
    assert offsets == [0] * 10 + [61] * 10 + [122] * 5
    # The request with k ahead of it starts at slot k, whatever the earlier spends were.
    spent = [ago(30)] * 4  # four creates 30 s ago: six fit now
    assert ratelimit.eta_seconds(5, spent, limit=10, window=61, now=NOW) == 0
    assert ratelimit.eta_seconds(6, spent, limit=10, window=61, now=NOW) == 31
    assert ratelimit.eta_seconds(9, spent, limit=10, window=61, now=NOW) == 31
    assert ratelimit.eta_seconds(10, spent, limit=10, window=61, now=NOW) == 61


def test_a_block_longer_than_the_window_moves_every_place() -> None:
    blocked = NOW + timedelta(seconds=90)
    etas = [
        ratelimit.eta_seconds(k, [], limit=2, window=60, now=NOW, blocked_until=blocked)
        for k in range(5)
    ]
    assert etas == [90, 90, 150, 150, 210]
