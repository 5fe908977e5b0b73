"""kill -9 in the middle of a run, then a restart: every queued request and tracked run picks up
where it was, every request becomes exactly one run, and each final reply appears once.

The bot runs as a real process (`python -m bot.cli run`, HTTP mode, a SQLite file) against the
fake Slack and the Codegen emulator in this test process, on the real clock. Conditions are
polled with a timeout; nothing waits a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from pathlib import Path
from typing import Any

from bot.devtools.emulator import EmulatorState, running_emulator
from bot.devtools.slack import FakeSlack
from bot.slack.cards import FINAL_REPLY_EVENT
from tests.harness import Conversation, card_text, final_replies, roots
from tests.process.support import BotProcess as Bot
from tests.process.support import bot_env, final_reply_runs, free_port, until

BOT_TOKEN = "xoxb-restart-test-token"
SIGNING_SECRET = "restart-test-signing-secret"
CODEGEN_TOKEN = "cg-restart-test-token"
ORG_ID = 11


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the bot's database from outside (WAL: readers do not block the bot)."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=0.2)) as connection:
            return list(connection.execute(sql).fetchall())
    except sqlite3.OperationalError:
        return []  # not created yet, or busy: look again


async def test_kill_9_while_tracking_then_restart_finishes_everything_exactly_once(
    tmp_path: Path,
) -> None:
    emulator = EmulatorState(
        token=CODEGEN_TOKEN, org_id=ORG_ID, pending_seconds=0.5, active_seconds=1.5
    )
    db = tmp_path / "bot.db"
    port = free_port()
    async with (
        FakeSlack.running(bot_token=BOT_TOKEN) as slack,
        running_emulator(emulator) as codegen_url,
    ):
        slack.add_channel("C1", name="general")
        slack.add_user("U1", "alice")
        bot = Bot(
            bot_env(
                BOT_MODE="http",
                PORT=str(port),
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                SLACK_API_URL=slack.api_url,
                CODEGEN_API_TOKEN=CODEGEN_TOKEN,
                CODEGEN_ORG_ID=str(ORG_ID),
                CODEGEN_API_URL=codegen_url,
                DATABASE_URL=f"sqlite+aiosqlite:///{db}",
                CODEGEN_POLL_MIN_SECONDS="0.2",
                CODEGEN_POLL_MAX_SECONDS="1",
            ),
            tmp_path,
            port,
            signing_secret=SIGNING_SECRET,
        )
        try:
            await bot.start()
            await bot.slash("fix the login page", slack)
            await until(lambda: len(emulator.created_bodies()) == 1, "the first run")
            # The second request meets a 429: the org's creates are blocked for 2 s (in the
            # store), so it is still queued when the bot dies.
            emulator.script.fail_next_create(429, retry_after=2)
            await bot.slash("write the release notes", slack)
            await until(
                lambda: [c.status for c in emulator.calls("create_run")] == [200, 429],
                "the second request to be refused for now",
            )

            def mid_run() -> bool:
                """Frozen (SIGSTOP), the store shows both in flight and no lease held: the state
                a restart must resume from. Otherwise thaw and look again."""
                bot.signal(signal.SIGSTOP)
                tracked = _rows(db, "SELECT status FROM tracked_runs WHERE tracking = 1")
                queued = _rows(db, "SELECT id FROM queued_requests WHERE status = 'pending'")
                leases = _rows(
                    db,
                    "SELECT count(*) FROM tracked_runs WHERE lease_owner IS NOT NULL "
                    "UNION ALL SELECT count(*) FROM queued_requests WHERE lease_owner IS NOT NULL",
                )
                ready = (
                    len(tracked) == 1
                    and tracked[0][0] in ("PENDING", "ACTIVE")
                    and len(queued) == 1
                    and leases == [(0,), (0,)]
                )
                if not ready:
                    bot.signal(signal.SIGCONT)
                return ready

            await until(mid_run, "a moment with a run tracked and a request queued")
            await bot.kill()
            assert final_reply_runs(slack) == []
            assert emulator.status_of(1000) in ("PENDING", "ACTIVE")

            await bot.start()

            def all_done() -> bool:
                return (
                    sorted(final_reply_runs(slack)) == [1000, 1001]
                    and _rows(db, "SELECT count(*) FROM tracked_runs WHERE tracking = 1") == [(0,)]
                    and _rows(db, "SELECT count(*) FROM queued_requests WHERE status = 'pending'")
                    == [(0,)]
                )

            await until(all_done, "both runs to finish after the restart")
        finally:
            await bot.stop()

        # Exactly once: one run per request, one final reply per run.
        bodies = emulator.created_bodies()
        request_ids = [b["metadata"]["request_id"] for b in bodies]
        stored = _rows(db, "SELECT id, status, run_id FROM queued_requests ORDER BY created_at")
        assert [r[0] for r in stored] == request_ids
        assert [(r[1], r[2]) for r in stored] == [("dispatched", 1000), ("dispatched", 1001)]
        assert sorted(final_reply_runs(slack)) == [1000, 1001]
        assert [c.status for c in emulator.calls("create_run")] == [200, 429, 200]
        assert emulator.rate_limited_count == 1
        # The first run's card ended complete, edited in place (no second card).
        cards = [
            m
            for m in slack.bot_messages("C1")
            if m.get("thread_ts")
            and "Codegen run #1000" in str(m.get("text"))
            and (m.get("metadata") or {}).get("event_type") != FINAL_REPLY_EVENT
        ]
        assert len(cards) == 1 and "Complete" in str(cards[0]["text"]), bot.logs()


async def test_a_crash_between_create_and_record_does_not_create_twice(sqlite_url: str) -> None:
    """The process dies after Codegen created the run and before the bot recorded it (here:
    the dispatcher is cancelled right after the create returned). The request stays leased and
    marked as possibly sent; once the lease expires, the next holder finds the run by the
    request's id and adopts it instead of creating another."""
    async with Conversation.start(database_url=sqlite_url) as chat:
        dispatcher = chat.runtime.dispatcher
        real_create = dispatcher.codegen.create_run

        async def create_then_die(body: Any) -> Any:
            await real_create(body)
            raise asyncio.CancelledError  # killed before the answer was recorded

        dispatcher.codegen.create_run = create_then_die  # type: ignore[method-assign]
        await chat.slash("fix the login page")
        dispatcher.codegen.create_run = real_create  # type: ignore[method-assign]
        assert len(emulator_creates := chat.emulator.calls("create_run")) == 1
        [request] = await chat.queued_requests()
        assert (request.status, request.ambiguous) == ("pending", True)
        assert request.lease_owner is not None  # held by the dead dispatcher

        await chat.advance(30)
        assert len(chat.emulator.calls("create_run")) == 1  # the lease still holds
        await chat.run_until_idle()
        assert chat.emulator.calls("create_run") == emulator_creates  # never sent again
        [request] = await chat.queued_requests()
        assert (request.status, request.run_id) == ("dispatched", 1000)
        [root] = roots(chat)
        assert "✅ *Complete*" in card_text(chat, root)
        assert len(final_replies(chat, root)) == 1
