"""Two replicas of the bot on one PostgreSQL, ticking at the same time over a burst of requests
that arrive at both: every request becomes exactly one run, every status change is one card
edit, and each run's final reply is posted once."""

from __future__ import annotations

import asyncio
from collections import Counter

from bot.clock import FakeClock
from bot.devtools.emulator import EmulatorState, most_in_window
from bot.runs.reading import ListPages
from tests.harness import (
    CODEGEN_TOKEN,
    ORG_ID,
    Conversation,
    card_text,
    card_ts,
    edits,
    final_replies,
    headline,
    roots,
)

REQUESTS = 16


async def test_two_replicas_on_one_postgres_make_one_run_and_one_report_per_request(
    empty_postgres_url: str,
) -> None:
    postgres_url = empty_postgres_url
    clock = FakeClock()
    emulator = EmulatorState(
        token=CODEGEN_TOKEN, org_id=ORG_ID, clock=clock, pending_seconds=5, active_seconds=20
    )
    # Small claims, so that neither replica can take every due run in one tick: the two
    # really share the tracking, whichever reaches the database first.
    async with (
        Conversation.start(
            database_url=postgres_url,
            clock=clock,
            emulator=emulator,
            replica_id="replica-a",
            # Each waits for Slack's post budget on the shared fake clock, which then jumps for
            # the other: leases must outlast those jumps (lapsing is not what this tests).
            runtime_options={"read_plan": ListPages(heads_per_read=1), "lease_seconds": 600},
        ) as a,
        Conversation.start(
            database_url=postgres_url,
            clock=clock,
            emulator=emulator,
            slack=a.slack,
            replica_id="replica-b",
            # Each waits for Slack's post budget on the shared fake clock, which then jumps for
            # the other: leases must outlast those jumps (lapsing is not what this tests).
            runtime_options={"read_plan": ListPages(heads_per_read=1), "lease_seconds": 600},
        ) as b,
    ):
        # A burst, half to each replica (Slack's load balancer), a little apart.
        for n in range(REQUESTS):
            chat = a if n % 2 == 0 else b
            await chat.slash(f"task {n}", settle=False)
            clock.advance(0.01)
        changed: Counter[str] = Counter()

        async def replica_tick(chat: Conversation, name: str) -> None:
            await chat.runtime.dispatcher.tick()
            report = await chat.runtime.tracker.tick()
            changed[name] += len(report.changed)

        for second in range(400):
            # Both at once; who reaches the database first alternates.
            first, then = ((a, "a"), (b, "b")) if second % 2 else ((b, "b"), (a, "a"))
            await asyncio.gather(
                a.settle(),
                b.settle(),
                replica_tick(*first),
                replica_tick(*then),
            )
            if not await a.busy():
                break
            clock.advance(1)
        assert not await a.busy(), "requests or runs still in flight"

        requests = await a.queued_requests()
        assert len(requests) == REQUESTS
        bodies = emulator.created_bodies()
        created_for = [body["metadata"]["request_id"] for body in bodies]
        # Exactly one run per request: none lost, none twice.
        assert sorted(created_for) == sorted(r.id for r in requests)
        assert all(r.status == "dispatched" for r in requests)
        assert len(emulator.calls("create_run")) == REQUESTS
        assert emulator.rate_limited_count == 0
        assert most_in_window([c.at for c in emulator.calls("create_run")], seconds=60) <= 10
        # Both replicas did the work: each sent runs and saw status changes.
        for chat, name in ((a, "a"), (b, "b")):
            created = chat.runtime.metrics.registry.get_sample_value(
                "codegen_bot_runs_created_total"
            )
            assert created and created > 0, name
            assert changed[name] > 0, name

        threads = roots(a)
        assert len(threads) == REQUESTS
        for root in threads:
            # Every status shown at most once, in order, on one card edited in place.
            statuses = [
                headline(text)
                for text in edits(a.slack, card_ts(a, root))
                if headline(text) not in ("Waiting", "Queued")
            ]
            # Slack's post and edit rates pace a burst in one channel, so a card may skip a
            # state that was over before its edit's turn came; never one shown twice.
            order = ["Starting", "Running", "Complete"]
            if not statuses:  # its card could only be posted once the run had ended
                statuses = [headline(card_text(a, root))]
            assert statuses[-1:] == ["Complete"], statuses
            assert statuses == sorted(set(statuses), key=order.index), statuses
            assert len(final_replies(a, root)) == 1
