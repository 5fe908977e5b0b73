"""The bot's Slack calls keep their connections: one per call would be a TCP connection and
a TLS handshake to slack.com each time (slack_sdk opens a session per call unless handed one)."""

from __future__ import annotations

from tests.harness import Conversation


async def test_a_runs_slack_calls_share_connections(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("fix the flaky login test repo=acme/web")
        await chat.run_until_idle()
        calls = [c for c in chat.slack.calls if c.token == chat.slack.bot_token]
        peers = {c.peer for c in calls}
        print(f"{len(calls)} calls over {len(peers)} connections")
        assert len(calls) >= 6  # root, card, reactions, edits, the final reply
        assert None not in peers
        # Calls made one after another reuse one connection; a few at once may open more.
        assert len(peers) <= len(calls) // 3
