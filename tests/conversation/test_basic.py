"""End to end on loopback: a slash command becomes a run whose card ends complete."""

from __future__ import annotations

from tests.harness import Conversation, ack_text


async def test_a_slash_command_runs_to_completion(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        response = await chat.slash("fix the flaky login test repo=acme/web")
        assert response.status_code == 200
        assert "Queued" in ack_text(response)
        created = chat.emulator.created_bodies()
        assert len(created) == 1
        body = created[0]
        assert body["prompt"] == "fix the flaky login test"
        assert body["metadata"]["slack"]["trigger"] == "slash_command"
        await chat.run_until_idle()
        root = chat.slack.bot_messages("C1")[0]
        texts = chat.bot_texts("C1", root["ts"])
        print("\n---\n".join(texts))
        assert any("✅" in t for t in texts)
