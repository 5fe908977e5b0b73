"""The org's budgets as the store keeps them (SQLite and PostgreSQL), on an injected clock:
creates per minute with the safety margin, the tracker's read reserve, a 429's block, and the
queue places and start estimates the waiting cards show."""

from __future__ import annotations

from datetime import timedelta

from bot.clock import FakeClock
from bot.metrics import Metrics
from bot.runs.budget import CREATE, PR_EDIT, READ, OrgBudget
from bot.runs.dispatcher import queue_note, round_eta
from bot.store.store import Store


def budget(store: Store, clock: FakeClock, creates: int = 10) -> OrgBudget:
    return OrgBudget(store=store, clock=clock, org_id=1, creates_per_minute=creates)


async def test_ten_creates_a_minute_with_a_second_of_margin(store: Store, clock: FakeClock) -> None:
    org = budget(store, clock)
    waits = []
    for _ in range(10):
        waits.append(await org.try_spend(CREATE))
        clock.advance(1)
    assert waits == [0] * 10
    # The first went out at 0 s; the window is 60 s plus 1 s of margin.
    assert await org.try_spend(CREATE) == 51
    clock.advance(50.5)
    assert await org.try_spend(CREATE) == 0.5
    clock.advance(0.5)
    assert await org.try_spend(CREATE) == 0
    assert await org.try_spend(CREATE) > 0


async def test_the_trackers_reserve_leaves_reads_for_the_dispatcher(
    store: Store, clock: FakeClock
) -> None:
    org = budget(store, clock)
    tracker_reads = 0
    while await org.try_spend(READ, reserve=4) == 0:
        tracker_reads += 1
    assert tracker_reads == 56
    lookups = 0
    while await org.try_spend(READ) == 0:
        lookups += 1
    assert lookups == 4
    clock.advance(31)  # 30 s window + margin
    assert await org.try_spend(READ, reserve=4) == 0


async def test_thirty_pull_request_edits_a_minute_per_token_apart_from_the_reads(
    store: Store, clock: FakeClock
) -> None:
    org = budget(store, clock)
    person = org.for_token("0123456789abcdef")
    assert [await org.try_spend(PR_EDIT) for _ in range(30)] == [0] * 30
    assert await org.try_spend(PR_EDIT) == 61  # 60 s window + margin
    assert await person.try_spend(PR_EDIT) == 0  # a person's own token counts apart
    # None of it touched the reads the tracker polls with, nor the creates.
    assert await org.try_spend(READ, reserve=59) == 0
    assert await org.try_spend(CREATE) == 0
    clock.advance(61)
    assert await org.try_spend(PR_EDIT) == 0


async def test_a_429_blocks_the_org_and_moves_every_start(store: Store, clock: FakeClock) -> None:
    org = budget(store, clock)
    await org.block(CREATE, 30)
    assert await org.try_spend(CREATE) == 30
    assert await org.queue_etas(12) == [30.0] * 10 + [91.0] * 2
    clock.advance(30)
    assert await org.try_spend(CREATE) == 0


async def test_queue_estimates_follow_the_spends(store: Store, clock: FakeClock) -> None:
    org = budget(store, clock)
    for _ in range(10):
        await org.try_spend(CREATE)
        clock.advance(0.5)
    etas = await org.queue_etas(15)
    assert etas[:10] == [56.0, 56.5, 57.0, 57.5, 58.0, 58.5, 59.0, 59.5, 60.0, 60.5]
    assert etas[10:] == [117.0, 117.5, 118.0, 118.5, 119.0]


def test_shown_estimates_round_up_in_ten_second_steps() -> None:
    assert [round_eta(s) for s in (0, 0.4, 10, 10.2, 39.9, 40, 40.01, 61)] == [
        10,
        10,
        10,
        20,
        40,
        40,
        50,
        70,
    ]


def test_a_waiting_cards_note_changes_with_its_place_not_with_the_time(clock: FakeClock) -> None:
    start = clock.now() + timedelta(seconds=47)
    note = queue_note(3, start)
    # The same place and predicted start, looked at later: no edit.
    assert queue_note(3, start) == note
    assert queue_note(2, start) != note  # moved up
    assert queue_note(3, start + timedelta(seconds=30)) != note  # pushed back (a 429)


async def test_metrics_show_what_each_window_has_spent_and_left(
    store: Store, clock: FakeClock
) -> None:
    metrics = Metrics()
    org = OrgBudget(store=store, clock=clock, org_id=1, creates_per_minute=10, metrics=metrics)
    other_replica = budget(store, clock)  # shares the store, counts toward the same window

    def window(bucket: str) -> tuple[float | None, float | None]:
        return (
            metrics.registry.get_sample_value("codegen_bot_budget_spent", {"bucket": bucket}),
            metrics.registry.get_sample_value("codegen_bot_budget_left", {"bucket": bucket}),
        )

    for _ in range(3):
        await other_replica.try_spend(CREATE)
    await org.try_spend(CREATE)
    assert window(CREATE) == (4, 6)
    for _ in range(6):
        await org.try_spend(CREATE)
    assert window(CREATE) == (10, 0)
    assert await org.try_spend(CREATE) > 0  # refused: still 10 spent, none left
    assert window(CREATE) == (10, 0)
    clock.advance(62)
    await org.try_spend(READ)
    await org.try_spend(CREATE)
    assert window(READ) == (1, 59)
    assert window(CREATE) == (1, 9)  # the old window has passed
