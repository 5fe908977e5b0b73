"""The shared create budget: a burst waits its turn in order, each waiting card shows its place,
and Codegen never sees more than the budget in any window (so it never answers 429)."""

from __future__ import annotations

import random
import re
from datetime import timedelta

from sqlalchemy import event

from bot.devtools.emulator import most_in_window
from tests.harness import Conversation, card_ts, edits, final_replies, roots

PLACE = re.compile(r"queued, (?:(\d+) ahead|(next in line)), starts in about ([^·]+?) ·")


def places(texts: list[str]) -> list[tuple[int, str]]:
    """(requests ahead, "starts in about …") of each waiting edit, in order."""
    found = []
    for text in texts:
        match = PLACE.search(text)
        if match:
            found.append((0 if match.group(2) else int(match.group(1)), match.group(3)))
    return found


async def test_a_burst_of_25_goes_out_at_10_a_minute_in_order_showing_each_place(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, codegen_create_per_minute=10) as chat:
        # Five channels: Slack lets the bot post about once a second in one channel (bursts of
        # ten), and each request posts a root and a card before it can go.
        channels = [f"C{k}" for k in range(1, 6)]
        for channel in channels[1:]:
            chat.slack.add_channel(channel, name=channel.lower())
        for n in range(1, 26):
            await chat.slash(f"task {n}", channel=channels[(n - 1) % 5])
            chat.clock.advance(0.001)
        # Ten went out at once, on intake's wake-up; fifteen wait for the budget.
        assert len(chat.emulator.created_bodies()) == 10
        by_channel = {c: iter(roots(chat, c)) for c in channels}
        burst_roots = [
            (channels[(n - 1) % 5], next(by_channel[channels[(n - 1) % 5]])) for n in range(1, 26)
        ]
        assert len(burst_roots) == 25
        await chat.run_until_idle(step=2)

        creates = chat.emulator.calls("create_run")
        assert len(creates) == 25 and all(c.status == 200 for c in creates)
        assert chat.emulator.rate_limited_count == 0
        # The emulator's clock is the bot's: never more than 10 creates in any 60 s window.
        assert most_in_window([c.at for c in creates], seconds=60) == 10
        # One run per request, in the order they were asked for.
        bodies = chat.emulator.created_bodies()
        assert [b["prompt"] for b in bodies] == [f"task {n}" for n in range(1, 26)]
        request_ids = [b["metadata"]["request_id"] for b in bodies]
        assert len(set(request_ids)) == 25
        assert {r.id for r in await chat.queued_requests()} == set(request_ids)

        started = {b["prompt"]: c.at for b, c in zip(bodies, creates, strict=True)}
        for n, (channel, root) in enumerate(burst_roots, start=1):
            shown = places(edits(chat.slack, card_ts(chat, root, channel)))
            if n <= 10:
                assert shown == []  # sent at once: never waited
                continue
            # Every waiting card showed its place from the start, and it only ever moved up.
            assert shown, f"task {n} never showed its place"
            assert shown[0][0] == n - 11
            ahead = [a for a, _ in shown]
            assert ahead == sorted(ahead, reverse=True)
            assert started[f"task {n}"] > creates[9].at
        # The second batch goes a minute after the first, the third a minute after that.
        assert (creates[10].at - creates[0].at).total_seconds() >= 60
        assert (creates[20].at - creates[10].at).total_seconds() >= 60
        assert all(
            len(final_replies(chat, root, channel=channel)) == 1 for channel, root in burst_roots
        )


async def test_a_waiting_card_shows_a_start_time_that_holds(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url, codegen_create_per_minute=2) as chat:
        for n in range(1, 6):
            await chat.slash(f"job {n}")
            chat.clock.advance(0.001)
        job_roots = roots(chat)
        # Two went out at 0 s; with a 61 s window (60 + 1 s margin) the next two go at 61 s,
        # the fifth at 122 s.
        third = places(edits(chat.slack, card_ts(chat, job_roots[2])))
        fifth = places(edits(chat.slack, card_ts(chat, job_roots[4])))
        assert third[0] == (0, "1 min")  # 70 s rounded up, shown as minutes
        assert fifth[0] == (2, "2 min")
        waiting_cards = [card_ts(chat, root) for root in job_roots[2:]]
        before = [len(edits(chat.slack, card)) for card in waiting_cards]
        await chat.advance(30)
        # Nothing moved: no waiting card is edited just because time passes.
        assert [len(edits(chat.slack, card)) for card in waiting_cards] == before
        await chat.advance(32)
        created = chat.emulator.calls("create_run")
        assert len(created) == 4
        # Now the fifth is next in line, about a minute away.
        assert places(edits(chat.slack, card_ts(chat, job_roots[4])))[-1] == (0, "1 min")


async def test_creates_stay_within_the_limit_at_the_api_while_the_database_is_slow(
    sqlite_url: str,
) -> None:
    """For the first minute every statement takes 0–3 s (on the shared fake clock), so a
    spend's stamp and its create's arrival at the API drift apart by seconds; then the
    database is fast again and the next creates leave the moment their slots free up. The API
    must still never see more than 10 creates in any 60 s."""
    rng = random.Random(7)
    async with Conversation.start(database_url=sqlite_url, codegen_create_per_minute=10) as chat:
        slow_until = chat.clock.now() + timedelta(seconds=60)

        def slow(*_args: object) -> None:
            if chat.clock.now() < slow_until:
                chat.clock.advance(rng.uniform(0.0, 3.0))

        event.listen(chat.runtime.store.engine.sync_engine, "before_cursor_execute", slow)
        for n in range(25):
            await chat.slash(f"task {n}", settle=False)
        await chat.settle()
        await chat.run_until_idle(step=1, limit=7200)

        creates = chat.emulator.calls("create_run")
        assert len(creates) == 25
        assert chat.emulator.rate_limited_count == 0
        assert most_in_window([c.at for c in creates], seconds=60) <= 10


async def test_requests_behind_the_create_budget_show_their_cards_while_they_wait(
    sqlite_url: str,
) -> None:
    """Twenty commands at once in one channel: Slack takes about ten posts in ten seconds there,
    so most are prepared (root and card) after intake gave them back, by the dispatcher, and
    the create budget holds ten of them for a minute. Their cards need not wait that minute."""
    async with Conversation.start(database_url=sqlite_url, codegen_create_per_minute=10) as chat:
        for n in range(1, 21):
            await chat.slash(f"task {n}")
            chat.clock.advance(0.001)
        await chat.advance(50)
        assert len(chat.emulator.created_bodies()) == 10  # the rest wait for the next minute
        rows = await chat.queued_requests()
        assert len(rows) == 20
        assert all(row.prepared and row.card_ts for row in rows)
        assert len(roots(chat, "C1")) == 20
