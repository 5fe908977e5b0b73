"""Following a run: read every minimum interval while reads are to spare (its adaptive poll
time only orders runs when they are not), the watchdog's notes, and the end of tracking after
the maximum age."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

from bot.clock import FakeClock
from bot.devtools.emulator import EmulatorState
from bot.runs.watchdog import Watchdog
from tests.harness import (
    CODEGEN_TOKEN,
    ORG_ID,
    Conversation,
    card_text,
    card_ts,
    final_replies,
    roots,
    text_of,
)


def _reads(chat: Conversation) -> list[float]:
    """Seconds since the start of every read of run 1000 (list pages or GETs)."""
    start = chat.emulator.calls("create_run")[0].at
    return [
        (c.at - start).total_seconds()
        for c in chat.emulator.received
        if c.kind == "list_runs" or (c.kind == "get_run" and c.path.endswith("/1000"))
    ]


def _gaps(times: list[float]) -> list[int]:
    return [round(b - a) for a, b in itertools.pairwise(times)]


async def test_a_run_is_read_every_minimum_interval_while_reads_are_to_spare(
    sqlite_url: str,
) -> None:
    clock = FakeClock()
    emulator = EmulatorState(
        token=CODEGEN_TOKEN, org_id=ORG_ID, clock=clock, pending_seconds=5, active_seconds=900
    )
    exact = {"poll_rand": lambda: 0.5}  # jitter factor exactly 1
    async with Conversation.start(
        database_url=sqlite_url, clock=clock, emulator=emulator, runtime_options=exact
    ) as chat:
        await chat.slash("a long one")
        await chat.advance(200)
        emulator.set_status(1000, "EVALUATION")
        await chat.advance(60)
        emulator.set_status(1000, "COMPLETE")
        await chat.run_until_idle()
        # Quiet for minutes, its poll interval grown to the maximum, it is still read every
        # 5 s (the minimum), never more often: one read buys its news, and reads are there.
        gaps = _gaps([0.0, *_reads(chat)])
        assert set(gaps) == {5}, gaps
        assert sum(gaps) >= 260  # through to the end, seen within 5 s of it
        [run] = await chat.runtime.store.runs.many([1000])
        assert run.poll_interval == 5.0  # reset by the end, the last change seen
        [root] = roots(chat)
        assert len(final_replies(chat, root)) == 1


def _notes(chat: Conversation, card: str) -> list[str]:
    """Every card edit's full content (blocks included), in order."""
    return [
        json.dumps(call.params.get("blocks"))
        for call in chat.slack.calls_to("chat.update")
        if call.get("ts") == card
    ]


async def test_the_watchdog_notes_a_stuck_run_once_and_stops_at_the_maximum_age(
    sqlite_url: str,
) -> None:
    watchdog = Watchdog(
        pending_alert=timedelta(minutes=2),
        stale_alert=timedelta(minutes=5),
        max_age=timedelta(minutes=15),
    )
    async with Conversation.start(
        # The notes of status edits: progress edits (which keep a note shown) left out.
        database_url=sqlite_url,
        runtime_options={"watchdog": watchdog},
        codegen_logs_per_minute=0,
    ) as chat:
        await chat.slash("a run Codegen never starts")
        chat.emulator.set_status(1000, "PENDING")
        [root] = roots(chat)
        card = card_ts(chat, root)

        await chat.advance(240, step=5)
        pending = [n for n in _notes(chat, card) if "Still PENDING after" in n]
        assert len(pending) == 1  # noted once, not on every poll
        assert "Still PENDING after 2 min" in card_text(chat, root)

        chat.emulator.set_status(1000, "ACTIVE")  # it started, then nothing more happens
        await chat.advance(420, step=5)
        stale = [n for n in _notes(chat, card) if "No change for" in n]
        assert len(stale) == 1
        assert "it may be stuck" in card_text(chat, root)
        assert final_replies(chat, root) == []

        await chat.advance(300, step=5)  # past 15 minutes
        shown = card_text(chat, root)
        assert "🛑 *No longer following this run*" in shown
        assert "stopped following this run after 15 min" in shown
        [final] = final_replies(chat, root)
        assert "is still running (status ACTIVE)" in text_of(final)
        assert await chat.runtime.store.runs.count_tracking(org_id=ORG_ID) == 0
        reads = len(_reads(chat))
        await chat.advance(300, step=30)
        assert len(_reads(chat)) == reads  # no longer polled


async def test_a_run_codegen_no_longer_knows_stops_being_tracked(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("fix it")
        del chat.emulator.runs[1000]
        await chat.advance(30)
        [root] = roots(chat)
        shown = card_text(chat, root)
        assert "No longer following this run" in shown
        assert "Codegen no longer knows this run" in shown
        assert await chat.runtime.store.runs.count_tracking(org_id=ORG_ID) == 0
        assert [c.status for c in chat.emulator.calls("get_run")] == [404]


async def test_metrics_show_how_long_a_seen_change_waited_for_its_card_edit(
    sqlite_url: str,
) -> None:
    """/metrics: card_lag_seconds, from a status change being seen to the edit showing it."""
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("a short one")
        await chat.run_until_idle()
        [root] = roots(chat)
        assert len(final_replies(chat, root)) == 1
        registry = chat.runtime.metrics.registry
        edits = registry.get_sample_value("codegen_bot_card_lag_seconds_count")
        # Running, then complete: each shown in the tick that saw it.
        assert edits is not None and edits >= 2
        assert registry.get_sample_value("codegen_bot_card_lag_seconds_sum") == 0.0
