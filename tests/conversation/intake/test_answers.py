"""Plain replies (no mention) in a run's thread: the answer to a paused run, and otherwise
conversation between people that the bot leaves alone."""

from __future__ import annotations

import base64

from tests.conversation.intake.test_threads import png
from tests.harness import Conversation, card_text


async def test_a_plain_reply_answers_a_paused_run_with_its_images(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.next_run_ends("PAUSED")
        root = await chat.mention("migrate the settings page")
        await chat.advance(30)
        assert chat.emulator.status_of(1000) == "PAUSED"
        pause = [t for t in chat.bot_texts("C1", root) if "waiting for your reply" in t]
        assert pause, chat.bot_texts("C1", root)
        assert "To answer, reply in this thread." in str(
            [m.get("blocks") for m in chat.slack.bot_messages("C1", thread_ts=root)]
        )

        shot = chat.slack.add_file("branch.png", png(14), "image/png")
        answer = await chat.reply("base it on release/2.4", thread_ts=root, files=[shot])

        [resume] = chat.emulator.resume_bodies()
        assert resume["agent_run_id"] == 1000
        assert resume["prompt"] == "base it on release/2.4"
        [uri] = resume["images"]
        assert base64.b64decode(uri.partition(",")[2]) == png(14)
        # 👀 at once, moved to ⏳ as the run goes on with it.
        assert chat.slack.bot_reactions("C1", answer) == ["hourglass_flowing_sand"]
        assert len(chat.emulator.created_bodies()) == 1
        await chat.run_until_idle()
        assert chat.emulator.status_of(1000) == "COMPLETE"


async def test_plain_replies_while_a_run_works_are_left_to_the_people(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        root = await chat.mention("add an index to the orders table")
        await chat.advance(8)
        assert chat.emulator.status_of(1000) == "ACTIVE"
        assert "To follow up, mention @Codegen in this thread." in card_text(chat, root)

        reply = await chat.reply("nice, that table is slow", thread_ts=root, user="U2")
        await chat.reply("stop", thread_ts=root, user="U2")  # words between people
        await chat.run_until_idle()

        assert chat.emulator.resume_bodies() == []
        assert chat.emulator.calls("stop_run") == []
        assert len(chat.emulator.created_bodies()) == 1
        assert chat.slack.bot_reactions("C1", reply) == []
        assert chat.ephemeral_texts() == []
        assert len(await chat.queued_requests()) == 1
        # After the run ended, a plain reply is conversation too.
        await chat.reply("thanks!", thread_ts=root, user="U2")
        assert len(await chat.queued_requests()) == 1
        # And a thread the bot has no run in is not its business at all.
        other = chat.slack.add_message("C1", "lunch?", "U2")
        await chat.reply("yes", thread_ts=other)
        assert len(await chat.queued_requests()) == 1


async def test_a_plain_reply_from_someone_not_allowed_to_ask_is_ignored(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, allowed_slack_users="U1") as chat:
        chat.emulator.script.next_run_ends("PAUSED")
        root = await chat.mention("migrate the settings page")
        await chat.advance(30)
        assert chat.emulator.status_of(1000) == "PAUSED"
        await chat.reply("use main", thread_ts=root, user="U2")
        assert chat.emulator.resume_bodies() == []
        assert chat.ephemeral_texts() == []  # no lecture for a reply between people
        await chat.reply("use main", thread_ts=root, user="U1")
        assert [r["prompt"] for r in chat.emulator.resume_bodies()] == ["use main"]
