"""Who asked, in Codegen's terms: Slack users matched to organization members by email; with
CODEGEN_MEMBERS_ONLY, only members start runs."""

from __future__ import annotations

from tests.harness import Conversation, ack_text


async def test_a_members_run_carries_their_codegen_user_id(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.add_user("U3", "carol", email="carol@elsewhere.example")
        await chat.slash("add a changelog")  # U1: dev@example.com, the token's owner
        await chat.mention("and a license", user="U2")  # Teammate@Example.com: any case
        await chat.slash("and a readme", user="U3")  # no member has that email
        bodies = chat.emulator.created_bodies()
        assert [b["metadata"]["codegen_user_id"] for b in bodies] == [7, 8, None]
        # The member list is read once and kept (it costs reads from the shared budget).
        assert len(chat.emulator.calls("list_users")) == 1


async def test_members_only_refuses_a_stranger_naming_the_email_slack_has(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, codegen_members_only=True) as chat:
        chat.slack.add_user("U3", "carol", email="carol@elsewhere.example")
        assert "Queued" in ack_text(await chat.slash("add a readme", user="U3"))
        told = chat.ephemeral_texts()[-1]
        assert told.startswith("Only members of this bot's Codegen organization may start runs")
        assert "`carol@elsewhere.example`" in told
        assert "An admin can invite that address to the organization in Codegen" in told
        await chat.mention("add a readme", user="U3")
        assert "carol@elsewhere.example" in chat.slack.ephemerals[-1]["text"]
        assert chat.emulator.created_bodies() == []
        # Nothing is left behind in the channel: no root message, no card.
        assert chat.slack.bot_messages("C1") == []

        # A member goes through.
        await chat.slash("add a readme", user="U2")
        [body] = chat.emulator.created_bodies()
        assert body["metadata"]["codegen_user_id"] == 8


async def test_members_only_without_the_email_scope_says_what_is_missing(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, codegen_members_only=True) as chat:
        chat.slack.scopes.remove("users:read.email")  # installed before the scope was added
        await chat.slash("add a readme")
        told = chat.ephemeral_texts()[-1]
        assert "Slack did not give me your email address" in told
        assert "users:read.email" in told
        assert chat.emulator.created_bodies() == []


async def test_members_only_waits_when_the_member_list_cannot_be_read(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url, codegen_members_only=True) as chat:
        chat.emulator.script.fail_next_read(503, times=2)
        await chat.slash("add a readme")
        assert chat.emulator.created_bodies() == []  # nobody is let in unchecked
        await chat.run_until_idle()
        [body] = chat.emulator.created_bodies()  # checked later, and let in
        assert body["metadata"]["codegen_user_id"] == 7
