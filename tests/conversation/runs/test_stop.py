"""Stopping a run: `/codegen stop <id>`, `@Codegen stop` in its thread, the card's Stop button;
who may; Codegen accepting or refusing the (undocumented, beta) stop; never a new run."""

from __future__ import annotations

from typing import Any

from bot.slack.render import STOP_RUN_ACTION_ID
from tests.harness import Conversation, ack_text, card_ts, final_replies, roots


def stop_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        element
        for block in message.get("blocks") or []
        if block.get("type") == "actions"
        for element in block["elements"]
        if element.get("action_id") == STOP_RUN_ACTION_ID
    ]


async def started(chat: Conversation, prompt: str = "refactor the billing module") -> str:
    """A slash command's run, seen running: the thread's root ts."""
    await chat.slash(prompt)
    await chat.advance(8)
    [root] = roots(chat)[-1:]
    assert chat.emulator.status_of(1000) == "ACTIVE"
    return root


async def test_stop_by_the_requester_is_shown_on_the_card_then_the_run_ends_stopped(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.stop_seconds = 6  # the agent finishes its step first
        root = await started(chat)
        card = chat.slack.message("C1", card_ts(chat, root))
        [button] = stop_buttons(card)  # offered while it runs
        assert button["value"] == "1000" and "confirm" in button

        response = await chat.slash("stop 1000")
        assert ack_text(response) == "Asking Codegen to stop run #1000…"
        [stop] = chat.emulator.calls("stop_run")
        assert stop.path == "/v1/beta/organizations/7/agent/run/stop"
        assert (stop.json, stop.status) == ({"agent_run_id": 1000}, 200)
        assert any("Codegen accepted the stop for run" in t for t in chat.ephemeral_texts())

        await chat.advance(2)  # the tracker shows it on its next tick
        card = chat.slack.message("C1", card_ts(chat, root))
        assert "Stop requested by <@U1>." in str(card["blocks"])
        assert stop_buttons(card) == []  # asked once is enough

        await chat.run_until_idle()
        card = chat.slack.message("C1", card_ts(chat, root))
        assert card["text"].startswith("⏹️ Codegen run #1000: Stopped, by <@U1> after")
        [final] = final_replies(chat, root)
        assert "⏹️ <@U1> Codegen run #1000 was stopped" in final["text"]
        assert "stopped by <@U1>" in str(final["blocks"])
        assert "black_square_for_stop" in chat.slack.bot_reactions("C1", root)
        assert len(chat.emulator.created_bodies()) == 1  # never a new run


async def test_only_the_requester_or_an_admin_may_stop_a_run(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url, admin_slack_users="U3") as chat:
        chat.emulator.stop_seconds = 60
        root = await started(chat)

        await chat.slash("cancel 1000", user="U2")
        assert chat.emulator.calls("stop_run") == []
        assert any(
            "Only <@U1>, who started run" in t and "or an admin can stop it" in t
            for t in chat.ephemeral_texts()
        )
        # An admin may, from the card's button.
        await chat.press(
            STOP_RUN_ACTION_ID, value="1000", message_ts=card_ts(chat, root), user="U3"
        )
        [stop] = chat.emulator.calls("stop_run")
        assert stop.status == 200
        await chat.advance(2)
        assert "Stop requested by <@U3>." in str(
            chat.slack.message("C1", card_ts(chat, root))["blocks"]
        )


async def test_at_codegen_stop_in_a_runs_thread_stops_that_run(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        root = await chat.mention("port the CLI to click")
        await chat.advance(8)
        await chat.mention("abort", thread_ts=root)
        [stop] = chat.emulator.calls("stop_run")
        assert stop.json == {"agent_run_id": 1000}
        await chat.run_until_idle()
        assert chat.emulator.status_of(1000) == "STOPPED"
        assert chat.emulator.resume_bodies() == []
        assert len(chat.emulator.created_bodies()) == 1


async def test_stop_words_never_start_a_run(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        for text in ("stop", "stop the flaky test from failing", "cancel 1000 now"):
            reply = ack_text(await chat.slash(text))
            assert "stop" in reply.lower(), (text, reply)
        assert "Which run?" in ack_text(await chat.slash("stop"))
        assert "is reserved for stopping runs" in ack_text(await chat.slash("abort the deploy"))
        # A stop word in a mention outside any run's thread, and of an unknown run.
        await chat.mention("stop")
        await chat.slash("stop 4242")
        await chat.run_until_idle()
        assert chat.emulator.created_bodies() == []
        assert chat.emulator.calls("stop_run") == []
        texts = chat.ephemeral_texts()
        assert any("Which run?" in t for t in texts)
        assert any("I am not following a run #4242" in t for t in texts)
        assert await chat.queued_requests() == []


async def test_a_stop_codegen_refuses_points_to_codegen_and_hides_the_button(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.stop_supported = False  # the beta endpoint is not there: 404
        root = await started(chat)
        await chat.slash("stop 1000")
        [refused] = chat.emulator.calls("stop_run")
        assert refused.status == 404
        [text] = [t for t in chat.ephemeral_texts() if "did not accept" in t]
        assert text == (
            "Codegen did not accept a stop for this run: open it in Codegen to stop it: "
            f"{chat.emulator.run(1000).web_url}"
        )
        refusal = await chat.runtime.store.stop_refusals.get(7)
        assert refusal is not None and refusal.status_code == 404

        # The run goes on; its card no longer offers the button, and asking again costs
        # Codegen nothing.
        chat.emulator.set_status(1000, "EVALUATION")
        await chat.advance(10)
        card = chat.slack.message("C1", card_ts(chat, root))
        assert "Evaluating" in card["text"]
        assert stop_buttons(card) == []
        await chat.slash("stop 1000")
        assert len(chat.emulator.calls("stop_run")) == 1
        assert len([t for t in chat.ephemeral_texts() if "did not accept" in t]) == 2
        assert chat.emulator.status_of(1000) == "EVALUATION"


async def test_a_405_or_422_is_a_refusal_too_and_a_restart_offers_the_button_again(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        root = await started(chat)
        chat.emulator.script.fail_next_stop(405, message="Method Not Allowed")
        await chat.press(STOP_RUN_ACTION_ID, value="1000", message_ts=card_ts(chat, root))
        assert [c.status for c in chat.emulator.calls("stop_run")] == [405]
        assert any("did not accept a stop" in t for t in chat.ephemeral_texts())
        emulator, clock = chat.emulator, chat.clock

    async with Conversation.start(database_url=sqlite_url, emulator=emulator, clock=clock) as chat:
        assert await chat.runtime.store.stop_refusals.get(7) is None
        assert chat.runtime.stopper.cards.stop_offered
        chat.emulator.script.fail_next_stop(422, message="agent_run_id: not stoppable")
        await chat.slash("stop 1000")
        assert [c.status for c in chat.emulator.calls("stop_run")] == [405, 422]
        await chat.slash("stop 1000")  # refused once: not asked again until a restart
        assert len(chat.emulator.calls("stop_run")) == 2
        assert chat.emulator.created_bodies()[1:] == []


async def test_a_run_cancelled_in_codegen_shows_as_cancelled_not_failed(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        root = await started(chat)
        chat.emulator.set_status(1000, "CANCELLED")
        await chat.run_until_idle()
        card = chat.slack.message("C1", card_ts(chat, root))
        assert card["text"].startswith("⏹️ Codegen run #1000: Cancelled, after")
        assert "Failed" not in card["text"]
        [final] = final_replies(chat, root)
        assert "⏹️ <@U1> Codegen run #1000 was cancelled" in final["text"]
        assert "stopped by" not in str(final["blocks"])  # nobody asked the bot to
        assert chat.slack.bot_reactions("C1", root) == ["black_square_for_stop"]
