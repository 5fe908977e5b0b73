"""Many runs in flight: the tracker stays inside 60 reads per 30 s (counted by the emulator,
whose limiter is strict) and still notices every completion. The same scenario as
`make bench` (bench/tracker_reads.py), smaller."""

from __future__ import annotations

from bench.tracker_reads import READ_LIMIT, simulate
from bot.codegen.models import AgentRunResponse, Page
from bot.runs.reading import ListPositions


async def test_120_runs_stay_inside_the_read_budget_and_every_completion_is_replied_to_soon() -> (
    None
):
    figures = await simulate(
        120, seconds=240, others=50, others_elsewhere=30, tick=2.0, in_process=True
    )
    assert figures.max_reads_per_window <= READ_LIMIT
    assert figures.rate_limited == 0
    assert figures.completed == figures.noticed == figures.final_replies == 120
    # Two pages hold them all, read every few seconds: a completion is replied to within
    # the minimum interval (5 s) and a tick or two (of 2 s here).
    assert figures.latency("max", until="reply") <= 5 + 2 * 2
    # Pages answer for dozens of runs; GETs are for the few left over.
    assert figures.runs_per_read > 20
    assert figures.get_calls < figures.list_calls
    # Only runs started through the API are on the pages read.
    assert all(query.get("source_type") == "API" for query in figures.list_queries)


async def test_runs_deep_in_the_list_are_read_where_they_are_not_from_the_top() -> None:
    """Our 40 runs sit below 450 newer runs of other people: once found, only their pages are
    read, not the 4–5 pages above them every time."""
    figures = await simulate(40, seconds=300, others=10, newer=450, tick=2.0, in_process=True)
    assert figures.completed == figures.noticed == 40
    assert figures.rate_limited == 0
    above = [q for q in figures.list_queries if int(q["skip"]) < 400]
    assert len(above) <= 5  # the first search down the list, then never again
    assert len(figures.list_queries) - len(above) > 20


async def test_a_quiet_run_is_still_read_when_reads_are_to_spare() -> None:
    """The poll interval orders runs; it does not ration reads: a run quiet for minutes (its
    interval grown to the 60 s maximum) is read every few seconds while the budget allows."""
    figures = await simulate(10, seconds=600, others=0, in_process=True)
    assert figures.completed == figures.final_replies == 10
    assert figures.latency("max", until="reply") <= 5 + 2
    # And never more often than the minimum interval: one page, at most every 5 s.
    assert figures.max_reads_per_minute <= 60 / 5 + 1


def _page(ids: list[int], *, skip: int, total: int) -> Page[AgentRunResponse]:
    items = [AgentRunResponse(id=i, organization_id=7) for i in ids]
    return Page[AgentRunResponse](items=items, total=total, page=skip // 100 + 1, size=100, pages=1)


def test_list_positions_follow_new_runs_arriving_on_top() -> None:
    positions = ListPositions()
    positions.learn(100, _page(list(range(1900, 1800, -1)), skip=100, total=2000))
    assert positions.index(1900) == 100
    assert positions.index(1801) == 199
    # 30 newer runs arrive: everything moves down by 30 once the new total is seen.
    positions.learn(0, _page(list(range(2029, 1929, -1)), skip=0, total=2030))
    assert positions.index(1900) == 130
    # A run never seen goes just below the nearest newer one that was.
    assert positions.index(1850) == positions.index(1851) + 1
    assert positions.index(5000) == 0  # newer than all: the top
    assert positions.index(1500, floor=400) == 400
    positions.forget([1900])
    assert positions.index(1900) == positions.index(1930) + 1 == 100
