"""A run's life as the people in the thread see it: one card edited in place, reactions that
move 👀 → ⏳ → ✅/❌, a final reply that mentions the requester, and a question when it pauses."""

from __future__ import annotations

import re

from tests.harness import (
    CHANNEL,
    Conversation,
    card_text,
    card_ts,
    edits,
    final_replies,
    headline,
    roots,
    text_of,
)

HOURGLASS, CHECK, CROSS, EYES = "hourglass_flowing_sand", "white_check_mark", "x", "eyes"


async def test_a_slash_command_ends_with_the_card_complete_the_summary_and_a_check(
    sqlite_url: str,
) -> None:
    # The card's status edits, in order: progress edits (test_progress.py) left out.
    async with Conversation.start(database_url=sqlite_url, codegen_logs_per_minute=0) as chat:
        await chat.slash("fix the flaky login test repo=acme/web agent=claude_code")
        # Intake woke the dispatcher: the create went out without waiting for a tick.
        assert len(chat.emulator.created_bodies()) == 1
        assert chat.emulator.calls("create_run")[0].at == chat.clock.now()
        [root] = roots(chat)
        card = card_ts(chat, root)
        running = card_text(chat, root)
        assert "run <http://" in running and "#1000" in running
        assert "View run" in running and "/runs/1000" in running
        assert "Requested by <@U1>" in running
        assert "repo `acme/web` (inline)" in running
        assert "agent `claude_code` (inline)" in running
        assert "model: org default" in running
        assert chat.slack.bot_reactions(CHANNEL, root) == [HOURGLASS]

        await chat.run_until_idle()

        done = card_text(chat, root)
        assert "✅ *Complete*" in done and "finished in" in done
        assert "View run" in done
        # One edit per status: Starting (PENDING) → Running (ACTIVE) → Complete; never twice.
        assert [headline(t) for t in edits(chat.slack, card)] == ["Starting", "Running", "Complete"]
        [final] = final_replies(chat, root)
        reply = text_of(final)
        assert reply.startswith("✅ <@U1> Codegen run #1000 is complete")
        assert "Done: fix the flaky login test" in reply
        # From the create to the poll that saw it end: 25 s at the emulator, seen within 5 s.
        assert re.search(r"ran for about (2[5-9]|30) s", reply), reply
        assert (
            "<https://github.com/acme/web/pull/1000|Codegen: fix the flaky login test>"
            " · `codegen-bot/run-1000`"
        ) in reply
        assert chat.slack.bot_reactions(CHANNEL, root) == [CHECK]
        # Nothing more happens afterwards: no reads, no posts.
        reads, posts = len(chat.emulator.received), len(chat.slack.calls)
        await chat.advance(300, step=10)
        assert (len(chat.emulator.received), len(chat.slack.calls)) == (reads, posts)


async def test_a_failed_run_ends_with_a_cross_and_says_why(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.next_run_ends("FAILED")
        await chat.slash("upgrade the ORM")
        await chat.run_until_idle()
        [root] = roots(chat)
        assert "❌ *Failed*: status `FAILED`" in card_text(chat, root)
        [final] = final_replies(chat, root)
        reply = text_of(final)
        assert reply.startswith("❌ <@U1> Codegen run #1000 failed (status FAILED)")
        assert "the test suite kept failing" in reply
        assert chat.slack.bot_reactions(CHANNEL, root) == [CROSS]


async def test_a_mention_moves_its_reactions_from_eyes_to_hourglass_to_check(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, codegen_create_per_minute=1) as chat:
        await chat.slash("fill the budget")  # the only create of this minute
        ts = await chat.mention("add a dark mode")
        assert chat.slack.bot_reactions(CHANNEL, ts) == [EYES]  # received, waiting its turn
        await chat.advance(62)
        assert chat.slack.bot_reactions(CHANNEL, ts) == [HOURGLASS]
        await chat.run_until_idle()
        assert chat.slack.bot_reactions(CHANNEL, ts) == [CHECK]


async def test_a_paused_run_asks_for_a_reply_once_and_a_reply_resumes_it(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.next_run_ends("PAUSED")
        await chat.slash("migrate the settings page")
        [root] = roots(chat)
        await chat.advance(90)
        assert chat.emulator.status_of(1000) == "PAUSED"
        assert "⏸️ *Paused*: waiting for your reply in this thread" in card_text(chat, root)
        [question] = final_replies(chat, root, kind="pause")
        asked = text_of(question)
        assert asked.startswith("⏸️ <@U1> Codegen run #1000 is paused")
        assert "Which branch should the change be based on?" in asked
        assert chat.slack.bot_reactions(CHANNEL, root) == [HOURGLASS]
        assert final_replies(chat, root) == []

        await chat.advance(600, step=10)  # still paused: asked once, not on every poll
        assert len(final_replies(chat, root, kind="pause")) == 1

        await chat.mention("base it on main", thread_ts=root)
        [resume] = chat.emulator.resume_bodies()
        assert (resume["agent_run_id"], resume["prompt"]) == (1000, "base it on main")
        await chat.run_until_idle()
        assert chat.emulator.status_of(1000) == "COMPLETE"
        [final] = final_replies(chat, root)
        assert text_of(final).startswith("✅ <@U1> Codegen run #1000 is complete")
        assert len(final_replies(chat, root, kind="pause")) == 1
        assert len(chat.emulator.created_bodies()) == 1


async def test_a_run_that_goes_on_without_a_reply_from_slack_still_gets_its_final_reply(
    sqlite_url: str,
) -> None:
    """Paused, then resumed elsewhere (in Codegen's web app): the pause question was posted, and
    the final reply must still follow."""
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("write the changelog")
        await chat.advance(8)
        chat.emulator.set_status(1000, "PAUSED")
        await chat.advance(60)
        [root] = roots(chat)
        assert len(final_replies(chat, root, kind="pause")) == 1
        chat.emulator.set_status(1000, "COMPLETE")
        await chat.run_until_idle()
        assert len(final_replies(chat, root)) == 1
        assert "✅ *Complete*" in card_text(chat, root)
