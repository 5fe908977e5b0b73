"""A flood of requests: each is stored before its ack says "Queued", a few are prepared at a
time while the rest wait in the outbox, and none is lost or answered "try again". When the
store cannot take a request, the ack (or, for a mention, a reply) says so."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from bot.intake.intake import PREPARE_CONCURRENCY, STORE_UNAVAILABLE_TEXT
from tests.harness import Conversation, ack_text

FLOOD = 24


async def test_a_flood_is_stored_before_each_ack_and_prepared_a_few_at_a_time(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        # Root messages wait at Slack, so every preparation that started piles up there.
        chat.slack.hold("chat.postMessage")
        acks = await asyncio.gather(*(chat.slash(f"task {n}", settle=False) for n in range(FLOOD)))
        assert all(a.status_code == 200 and "Queued" in ack_text(a) for a in acks)
        assert len(await chat.queued_requests()) == FLOOD  # stored before acked

        await chat.slack.until_held("chat.postMessage", PREPARE_CONCURRENCY)
        await asyncio.sleep(0.1)  # room for any extra preparation to arrive (none may)
        assert chat.slack.held("chat.postMessage") == PREPARE_CONCURRENCY

        chat.slack.release("chat.postMessage")
        await chat.settle()
        await chat.run_until_idle(limit=3600)
        prompts = sorted(b["prompt"] for b in chat.emulator.created_bodies())
        assert prompts == sorted(f"task {n}" for n in range(FLOOD))
        assert not [t for t in chat.ephemeral_texts() if "try again" in t]


async def test_requests_past_slacks_room_in_a_channel_wait_without_a_try_that_must_fail(
    sqlite_url: str,
) -> None:
    """Twenty commands at once in one channel: Slack takes about ten posts there in ten
    seconds, a root and a card each. Once the bot knows the channel is full, the requests
    after wait in the outbox for Slack's room instead of being tried, refused and given back
    (one write and several look-ups each, in the middle of a burst of acks)."""
    async with Conversation.start(database_url=sqlite_url) as chat:
        for n in range(20):
            assert "Queued" in ack_text(await chat.slash(f"task {n}"))
            chat.clock.advance(0.001)
        held = chat.runtime.metrics.registry.get_sample_value(
            "codegen_bot_slack_calls_total", {"method": "chat.postMessage", "outcome": "no_budget"}
        )
        assert held == 1  # the one that found the channel full
        rows = await chat.queued_requests()
        waiting = [row for row in rows if not row.prepared]
        assert len(waiting) == 15  # five prepared; the sixth was tried and given back
        assert all(
            row.lease_owner is None and row.next_attempt_at > chat.clock.now() for row in waiting
        )

        await chat.run_until_idle(limit=3600)
        prompts = sorted(b["prompt"] for b in chat.emulator.created_bodies())
        assert prompts == sorted(f"task {n}" for n in range(20))


async def test_requests_queued_for_preparation_when_slack_fills_up_are_not_tried_either(
    sqlite_url: str,
) -> None:
    """The same twenty at once, all acked before any is prepared: the first five's roots and
    cards fill the channel's window, so the fifteen after wait for Slack's room from their
    ack on, untried (each would have been refused and given back, a write apiece)."""
    async with Conversation.start(database_url=sqlite_url) as chat:
        acks = await asyncio.gather(*(chat.slash(f"task {n}", settle=False) for n in range(20)))
        assert all("Queued" in ack_text(a) for a in acks)
        await chat.settle()
        held = chat.runtime.metrics.registry.get_sample_value(
            "codegen_bot_slack_calls_total", {"method": "chat.postMessage", "outcome": "no_budget"}
        )
        assert held is None  # no post was tried without room
        rows = await chat.queued_requests()
        waiting = [row for row in rows if not row.prepared]
        assert len(waiting) == 15
        assert all(
            row.lease_owner is None and row.next_attempt_at > chat.clock.now() for row in waiting
        )
        await chat.run_until_idle(limit=3600)
        assert len(chat.emulator.created_bodies()) == 20


@contextlib.contextmanager
def _store_refuses_requests(database_url: str) -> Iterator[None]:
    """The outbox table is gone for a moment (as if the database were broken): every insert
    fails at once. Put back on exit."""
    path = Path(database_url.removeprefix("sqlite+aiosqlite:///"))
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("ALTER TABLE queued_requests RENAME TO queued_requests_away")
        connection.commit()
        try:
            yield
        finally:
            connection.execute("ALTER TABLE queued_requests_away RENAME TO queued_requests")
            connection.commit()


async def test_when_the_store_cannot_take_a_request_the_ack_says_so(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        with _store_refuses_requests(sqlite_url):
            ack = await chat.slash("write the changelog")
            assert ack.status_code == 200
            assert ack_text(ack) == STORE_UNAVAILABLE_TEXT
            await chat.mention("write the release notes")
            assert chat.ephemeral_texts()[-1] == STORE_UNAVAILABLE_TEXT
        assert await chat.queued_requests() == []
        assert chat.emulator.created_bodies() == []

        # Once the store is back, the same request goes through (nothing half-done remains).
        assert "Queued" in ack_text(await chat.slash("write the changelog"))
        await chat.run_until_idle()
        assert [b["prompt"] for b in chat.emulator.created_bodies()] == ["write the changelog"]
