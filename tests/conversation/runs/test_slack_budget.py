"""Slack's rate limits, kept from the bot's side: bursts never make the fake Slack (which
enforces Slack's tiers) answer 429, queue-position refreshes use only their share of
chat.update and each card's queue line changes at most every 30 s, and every run still gets
its status changes and one final reply."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import datetime

from bot.devtools.emulator import most_in_window
from bot.runs.dispatcher import QUEUE_REFRESH_SECONDS
from bot.slack.budget import CHANNEL_POST_RATE, LOW_SHARE, METHOD_RATES
from tests.harness import Conversation, final_replies, roots

BURST = 36
CHANNELS = [f"C{k}" for k in range(1, 7)]


async def test_a_burst_of_36_stays_inside_slacks_rates_and_reports_every_run_once(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, codegen_create_per_minute=12) as chat:
        for channel in CHANNELS[1:]:
            chat.slack.add_channel(channel, name=channel.lower())
        for n in range(BURST):
            await chat.slash(f"task {n}", channel=CHANNELS[n % len(CHANNELS)], settle=False)
        await chat.settle()
        await chat.run_until_idle(limit=4 * 3600, step=2)

        assert chat.slack.rate_limited() == 0  # Slack never had to say no
        # The bot held calls back instead, and /metrics counts them apart from those it made.
        calls = chat.runtime.metrics.registry.get_sample_value
        held = calls(
            "codegen_bot_slack_calls_total", {"method": "chat.update", "outcome": "no_budget"}
        )
        made = calls("codegen_bot_slack_calls_total", {"method": "chat.update", "outcome": "ok"})
        assert held and held > 0
        assert made == len(chat.slack.calls_to("chat.update"))
        assert len(chat.emulator.created_bodies()) == BURST
        threads = [(c, root) for c in CHANNELS for root in roots(chat, c)]
        assert len(threads) == BURST
        assert all(len(final_replies(chat, root, channel=c)) == 1 for c, root in threads)

        updates = chat.slack.calls_to("chat.update")
        posts = chat.slack.calls_to("chat.postMessage")
        assert most_in_window(_times(updates), seconds=60) <= METHOD_RATES["chat.update"].limit
        for channel in CHANNELS:
            in_channel = [c for c in posts if c.get("channel") == channel]
            assert most_in_window(_times(in_channel), seconds=10) <= CHANNEL_POST_RATE.limit
        # Queue refreshes (LOW) never took more than their share of the edits.
        waiting = [c for c in updates if "Waiting" in str(c.get("text"))]
        share = int(METHOD_RATES["chat.update"].limit * LOW_SHARE)
        assert waiting and most_in_window(_times(waiting), seconds=60) <= share
        # And each card's queue line changed at most every QUEUE_REFRESH_SECONDS.
        by_card: dict[str, list[datetime]] = defaultdict(list)
        for call in waiting:
            by_card[str(call.get("ts"))].append(_at(call.at))
        for times in by_card.values():
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
            assert all(gap >= QUEUE_REFRESH_SECONDS for gap in gaps), gaps


def _at(at: datetime | None) -> datetime:
    assert at is not None
    return at


def _times(calls: list[object]) -> list[datetime]:
    return [_at(getattr(c, "at", None)) for c in calls]
