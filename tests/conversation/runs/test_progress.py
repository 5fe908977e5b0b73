"""Live progress: a working run's newest steps on its card, from Codegen's (alpha) run logs,
within their own budget, never more than one change of a card's steps per 10 s, never a
status read less; the final card has none; a missing logs endpoint turns progress off."""

from __future__ import annotations

import itertools
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.devtools.emulator.state import RUN_LOGS, most_in_window
from bot.doctor import check_database
from bot.runs.budget import LOGS, READ
from tests.harness import Conversation, all_text, card_ts, final_replies, roots

# A step as a context line ("`tool` — thought") or as a plan's task card ("tool — thought").
STEP = re.compile(r"`?(\w+)`? — [^\n]*\(step (\d+)\)")
STATUS_READS = ("get_run", "list_runs")
LOOK_UPS = ("list_users", "list_repos", "current_user")


def steps_on(message: dict[str, Any]) -> list[tuple[str, int]]:
    """The (tool, step number) of each progress line on a card, top to bottom."""
    return [(tool, int(n)) for tool, n in STEP.findall(all_text(message))]


def progress_edits(chat: Conversation, ts: str) -> list[tuple[datetime, list[tuple[str, int]]]]:
    """Each chat.update of the card that changed its progress lines: (when, the lines)."""
    changes: list[tuple[datetime, list[tuple[str, int]]]] = []
    shown: list[tuple[str, int]] = []
    for call in chat.slack.calls_to("chat.update"):
        if call.get("ts") != ts:
            continue
        lines = steps_on({"text": "", "blocks": call.get("blocks")})
        if lines != shown:
            assert call.at is not None
            changes.append((call.at, lines))
            shown = lines
    return changes


def status_reads(chat: Conversation) -> list[tuple[str, datetime, str]]:
    return [
        (call.kind, call.at, call.path)
        for call in chat.emulator.received
        if call.kind in STATUS_READS
    ]


async def test_a_working_run_shows_its_newest_steps_at_most_every_10_s_and_not_when_done(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.active_seconds = 60  # a step every 3 s: 20 of them
        await chat.slash("fix the flaky login test")
        await chat.advance(40)
        [root] = roots(chat)
        card = chat.slack.message("C1", card_ts(chat, root))
        lines = steps_on(card)
        # The newest steps, most recent first, at most five.
        assert len(lines) == 5
        numbers = [n for _, n in lines]
        assert numbers == sorted(numbers, reverse=True)
        assert numbers[0] >= 8  # 35 s of work at most, a step every 3 s, read ≤ 10 s ago
        assert {tool for tool, _ in lines} <= {
            "ripgrep_search",
            "file_view",
            "file_edit",
            "run_command",
        }
        assert "Latest steps" in all_text(card)
        # As Slack's plan block: a task card a step, the newest one in progress.
        [plan] = [b for b in card["blocks"] if b["type"] == "plan"]
        assert plan["title"] == "Latest steps"
        assert [t["status"] for t in plan["tasks"]] == ["in_progress", *["complete"] * 4]
        assert all(t["type"] == "task_card" and "`" not in t["title"] for t in plan["tasks"])
        # Read newest first, five at a time.
        log_calls = chat.emulator.calls(RUN_LOGS)
        assert log_calls[0].path == "/v1/alpha/organizations/7/agent/run/1000/logs"
        assert log_calls[0].query == {"skip": "0", "limit": "5", "reverse": "true"}

        await chat.run_until_idle()
        changes = progress_edits(chat, card_ts(chat, root))
        assert len(changes) >= 3
        moments = [at for at, lines in changes if lines]
        assert all((b - a).total_seconds() >= 10 for a, b in itertools.pairwise(moments))
        # The final card shows the result as before, and no steps.
        final_card = chat.slack.message("C1", card_ts(chat, root))
        assert final_card["text"].startswith("✅ Codegen run #1000: Complete")
        assert steps_on(final_card) == [] and "Latest steps" not in all_text(final_card)
        assert final_replies(chat, root)
        # No log read after the run was seen ending, nor before it worked.
        assert all(call.status == 200 for call in chat.emulator.calls(RUN_LOGS))


async def busy_morning(chat: Conversation) -> None:
    """Six runs working at once for a minute: more steps than 20 log reads a minute."""
    chat.emulator.active_seconds = 90
    for n in range(6):
        await chat.slash(f"task number {n}", user="U1")
    await chat.run_until_idle()


async def test_log_reads_stay_in_their_own_budget_and_status_polling_keeps_every_read(
    sqlite_url: str, tmp_path: Path, migrated_sqlite: Path
) -> None:
    steady = {"poll_rand": lambda: 0.5, "retry_rand": lambda: 0.5}
    async with Conversation.start(
        database_url=sqlite_url, runtime_options=steady, codegen_logs_per_minute=0
    ) as quiet:
        assert quiet.runtime.progress is None
        await busy_morning(quiet)
        without = status_reads(quiet)
        assert quiet.emulator.calls(RUN_LOGS) == []

    shutil.copyfile(migrated_sqlite, tmp_path / "progress.db")
    other_db = f"sqlite+aiosqlite:///{tmp_path / 'progress.db'}"
    async with Conversation.start(database_url=other_db, runtime_options=steady) as chat:
        await busy_morning(chat)
        # Polling read exactly what it reads without progress, when it did.
        assert status_reads(chat) == without
        logs = chat.emulator.calls(RUN_LOGS)
        times = [call.at for call in logs]
        assert len(logs) > 20  # progress was there, and paced over the runs' lifetime
        assert most_in_window(times, seconds=60) <= 20  # the default CODEGEN_LOGS_PER_MINUTE
        assert chat.emulator.rate_limited_count == 0
        assert all(call.status == 200 for call in logs)
        counted = chat.runtime.metrics.registry.get_sample_value(
            "codegen_bot_codegen_calls_total", {"endpoint": RUN_LOGS, "status_code": "200"}
        )
        assert counted == len(logs)
        # The log reads were paid from their own bucket, none from the status reads'.
        spends = await chat.runtime.store.budgets.state(
            org_id=7, bucket=LOGS, window=3600.0, now=chat.clock.now()
        )
        assert len(spends.spent) == len(logs)
        reads = await chat.runtime.store.budgets.state(
            org_id=7, bucket=READ, window=3600.0, now=chat.clock.now()
        )
        others = [c for c in chat.emulator.received if c.kind in (*STATUS_READS, *LOOK_UPS)]
        assert len(reads.spent) == len(others)
        # Every card went back to its final state without steps.
        for root in roots(chat):
            assert steps_on(chat.slack.message("C1", card_ts(chat, root))) == []


async def test_a_workspace_without_plan_blocks_gets_context_lines_after_one_refusal(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.unrendered_blocks = {"plan"}
        chat.emulator.active_seconds = 60
        await chat.slash("fix the flaky login test")
        await chat.advance(40)
        [root] = roots(chat)
        ts = card_ts(chat, root)
        card = chat.slack.message("C1", ts)
        assert len(steps_on(card)) == 5 and "*Latest steps*" in all_text(card)
        assert all(b["type"] != "plan" for b in card["blocks"])
        # One edit with a plan block was refused; every later one had context lines.
        with_plan = [
            call
            for call in chat.slack.calls_to("chat.update")
            if any(b.get("type") == "plan" for b in call.get("blocks") or [])
        ]
        assert len(with_plan) == 1
        await chat.run_until_idle()
        assert chat.slack.message("C1", ts)["text"].startswith("✅ Codegen run #1000: Complete")
        assert len(final_replies(chat, root)) == 1


async def test_no_logs_endpoint_turns_progress_off_after_one_call_and_the_card_still_works(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.logs_supported = False
        await chat.slash("update the changelog")
        await chat.run_until_idle()
        [call] = chat.emulator.calls(RUN_LOGS)
        assert call.status == 404
        assert chat.runtime.progress is not None and await chat.runtime.progress.is_off()
        [root] = roots(chat)
        card = chat.slack.message("C1", card_ts(chat, root))
        assert card["text"].startswith("✅ Codegen run #1000: Complete")
        assert len(final_replies(chat, root)) == 1
        # The doctor says so (from the store: every replica sees it).
        [check] = [c for c in await check_database(chat.settings) if c.name == "progress"]
        assert check.status == "warn"
        assert check.detail.startswith("Codegen has no run logs endpoint here: progress is off")
