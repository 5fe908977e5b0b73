"""Slack agent sessions: a run's thread is a session whose status follows the card; Slack's own
stop button stops the run; where Slack refuses sessions, the card alone is used."""

from __future__ import annotations

from typing import Any

from bot.doctor import check_sessions
from tests.harness import Conversation, final_replies


async def session_stop(chat: Conversation, root: str, user: str) -> None:
    event: dict[str, Any] = {
        "type": "agent_session_stopped",
        "channel": "C1",
        "thread_ts": root,
        "user": user,
        "streaming_message_ts": [],
        "event_ts": "1.0",
    }
    await chat.event(event)


def session_calls(chat: Conversation) -> list[Any]:
    return [c for c in chat.slack.calls if c.method == "agents.sessions.setStatus"]


async def test_a_session_follows_its_run_processing_suspended_processing_closed(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.next_run_ends("PAUSED")
        root = await chat.mention("migrate the settings page\nand keep the old URLs")
        await chat.advance(30)
        assert chat.emulator.status_of(1000) == "PAUSED"
        await chat.reply("base it on release/2.4", thread_ts=root)
        await chat.run_until_idle()
        assert final_replies(chat, root)

        assert chat.slack.session_statuses("C1", root) == [
            "processing",
            "suspended",
            "processing",
            "closed",
        ]
        session = chat.slack.agent_sessions[("C1", root)]
        assert session["title"] == "migrate the settings page"
        assert session["initiator_user_id"] == "U1"
        # Title and initiator only when Slack creates the session.
        assert [("title" in c.params) for c in session_calls(chat)] == [True, False, False, False]


async def test_slacks_stop_button_stops_the_run_for_the_requester_only(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.stop_seconds = 4
        root = await chat.mention("refactor the billing module")
        await chat.advance(8)
        assert chat.emulator.status_of(1000) == "ACTIVE"

        await session_stop(chat, root, "U2")  # not the requester, not an admin
        assert chat.emulator.calls("stop_run") == []
        assert any("Only <@U1>, who started run" in t for t in chat.ephemeral_texts())
        # Still working: Slack is told so again, and offers its stop button again.
        assert chat.slack.session_statuses("C1", root) == ["processing", "processing"]

        await session_stop(chat, root, "U1")
        [stop] = chat.emulator.calls("stop_run")
        assert stop.json == {"agent_run_id": 1000}
        await chat.advance(2)  # the card shows the stop requested: the session is no longer busy
        assert chat.slack.session_statuses("C1", root)[-1] == "active"
        await chat.run_until_idle()
        assert chat.emulator.status_of(1000) in ("STOPPED", "CANCELLED")
        assert chat.slack.session_statuses("C1", root)[-1] == "closed"
        [final] = final_replies(chat, root)
        assert "was stopped" in final["text"]


async def test_without_sessions_one_refusal_then_the_card_alone(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.sessions_error = "feature_disabled"
        first = await chat.mention("fix the flaky login test")
        await chat.run_until_idle()
        second = await chat.mention("tidy the README")
        await chat.run_until_idle()
        await chat.runtime.sessions.tick()

        assert len(session_calls(chat)) == 1  # once for the workspace, not once a run
        assert chat.slack.agent_sessions == {}
        assert final_replies(chat, first) and final_replies(chat, second)  # cards as usual
        result = await check_sessions(chat.runtime.store)
        assert result.status == "warn"
        assert "feature_disabled" in result.detail and "card alone" in result.detail


async def test_a_status_slack_had_no_room_for_is_sent_by_the_next_tick(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.rate_limit_next("agents.sessions.setStatus", retry_after=30)
        root = await chat.mention("add a health check")
        await chat.advance(3)
        assert chat.slack.session_statuses("C1", root) == []
        chat.clock.advance(60)
        await chat.runtime.sessions.tick()
        assert chat.slack.session_statuses("C1", root) == ["processing"]
