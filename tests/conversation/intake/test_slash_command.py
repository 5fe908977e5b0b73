"""`/codegen <prompt>` with options, the root message that becomes the
run's thread, the DM fallback for channels the bot is not in, and the subcommands."""

from __future__ import annotations

from datetime import timedelta

from bot.runs.budget import READ, OrgBudget
from tests.harness import ORG_ID, TEAM, Conversation, ack_text


async def test_a_slash_command_posts_a_root_message_that_becomes_the_runs_thread(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        long_tail = "and then " * 60
        response = await chat.slash(f"add a CSV export to reports model=gpt-5 {long_tail}")
        assert response.status_code == 200
        ack = ack_text(response)
        assert ack.startswith("Queued.")
        assert response.json().get("response_type") == "ephemeral"

        roots = chat.slack.bot_messages("C1")
        root = roots[0]
        assert root.get("thread_ts") in (None, root["ts"])  # a top-level message
        assert root["text"].startswith("<@U1> asked Codegen: add a CSV export to reports")
        assert len(root["text"]) < 400  # shortened; the full prompt goes to Codegen
        assert "model=gpt-5" not in root["text"]

        body = chat.emulator.created_bodies()[0]
        assert body["prompt"].startswith("add a CSV export to reports and then")
        assert body["model"] == "gpt-5"
        # The card lives in the root's thread, as does everything after it.
        await chat.run_until_idle()
        thread = chat.bot_texts("C1", root["ts"])
        assert len(thread) == 3  # root, card, final reply
        assert "*Complete*" in thread[1]
        assert "is complete" in thread[2]


async def test_options_anywhere_or_in_a_leading_block_last_one_wins(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("[repo=acme/api, agent=claude_code] add rate limiting model=o3")
        await chat.slash("repo=acme/web tidy the CSS repo=acme/docs")
        await chat.slash("set timeout=30 in the worker config")
        bodies = chat.emulator.created_bodies()
        assert len(bodies) == 3
        assert bodies[0]["prompt"] == "add rate limiting"
        assert (bodies[0]["repo_id"], bodies[0]["agent_type"], bodies[0]["model"]) == (
            102,
            "claude_code",
            "o3",
        )
        assert (bodies[1]["prompt"], bodies[1]["repo_id"]) == ("tidy the CSS", 103)
        # Unknown keys outside a leading block are prompt text.
        assert bodies[2]["prompt"] == "set timeout=30 in the worker config"
        assert bodies[2].get("repo_id") is None


async def test_the_metadata_sent_to_codegen_is_the_design_contract(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("fix the flaky test")
        [request] = await chat.queued_requests()
        root = chat.slack.bot_messages("C1")[0]["ts"]
        body = chat.emulator.created_bodies()[0]
        assert body["metadata"] == {
            "source": "slack",
            "request_id": request.id,
            "codegen_user_id": 7,  # alice (dev@example.com) is member 7
            "slack": {
                "team_id": TEAM,
                "channel_id": "C1",
                "user_id": "U1",
                "thread_ts": root,
                "message_ts": root,
                "trigger": "slash_command",
                "permalink": f"https://fake-team.slack.com/archives/C1/p{root.replace('.', '')}",
                "author_id": None,
            },
        }


async def test_a_minute_of_more_slash_commands_than_slack_answers_look_ups_all_show_at_once(
    sqlite_url: str,
) -> None:
    """Sixty commands in a minute, in twelve channels: Slack answers 50 membership look-ups a
    minute (Tier 3), so a bot that asked before each post would leave ten of them without a
    message. Each is posted in its channel with its card within the minute."""
    async with Conversation.start(database_url=sqlite_url) as chat:
        channels = [f"C{n:02d}" for n in range(12)]
        for n in range(60):
            assert "Queued" in ack_text(await chat.slash(f"task {n}", channel=channels[n % 12]))
            await chat.advance(1.0)
        for channel in channels:
            roots = [
                m for m in chat.slack.bot_messages(channel) if m.get("thread_ts") in (None, m["ts"])
            ]
            assert len(roots) == 5, channel
            for root in roots:
                assert len(chat.slack.bot_messages(channel, root["ts"])) >= 2  # root and card
        assert all(row.prepared for row in await chat.queued_requests())


async def test_in_a_private_channel_the_bot_is_not_in_it_reports_in_a_dm(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.add_channel("G1", name="secret", is_private=True, is_member=False)
        # The channel's saved defaults still apply to runs reported elsewhere.
        assert "Saved" in ack_text(await chat.slash("config repo=acme/api", channel="G1"))
        response = await chat.slash("audit the billing code", channel="G1")
        assert response.status_code == 200
        assert "Queued" in ack_text(response)

        told = chat.ephemeral_texts()[-1]
        assert "not a member of this channel" in told
        assert "/invite @Codegen" in told
        assert "in a DM with you" in told

        assert chat.slack.messages("G1") == []
        dm = chat.slack.calls_to("conversations.open")[0]
        assert dm["users"] == "U1"
        dm_channel = next(c for c, info in chat.slack.channels.items() if info.get("user") == "U1")
        root = chat.slack.bot_messages(dm_channel)[0]
        assert "audit the billing code" in root["text"]
        body = chat.emulator.created_bodies()[0]
        assert body["repo_id"] == 102
        assert body["metadata"]["slack"]["channel_id"] == dm_channel
        assert body["metadata"]["slack"]["thread_ts"] == root["ts"]
        await chat.run_until_idle()
        assert any("is complete" in t for t in chat.bot_texts(dm_channel, root["ts"]))
        assert chat.slack.messages("G1") == []

        # The same in a DM between other people.
        chat.slack.add_channel("D0OTHERS", is_im=True, is_member=False, user="U2")
        response = await chat.slash("summarise this thread", channel="D0OTHERS")
        assert "Queued" in ack_text(response)
        assert "not a member of this channel" in chat.ephemeral_texts()[-1]
        assert chat.slack.messages("D0OTHERS") == []
        assert len(chat.emulator.created_bodies()) == 2
        assert len(chat.slack.bot_messages(dm_channel)) == 5  # 2 roots, 2 cards, 1 final reply


async def test_a_note_whose_response_url_has_expired_still_reaches_the_person(
    sqlite_url: str,
) -> None:
    """Slack refuses a response URL after 30 minutes or five uses (404, not a connection
    error): a note sent after that goes by chat.postEphemeral instead of being lost."""
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.add_channel("G1", name="secret", is_private=True, is_member=False)
        response = await chat.slash("audit the billing code", channel="G1", settle=False)
        assert "Queued" in ack_text(response)
        chat.slack.expire_response_urls()  # before the note that it went to a DM is sent
        await chat.settle()

        assert [r.url for r in chat.slack.responses] != []  # it was tried, and refused
        told = [str(e.get("text")) for e in chat.slack.ephemerals]
        assert len(told) == 1 and "in a DM with you" in told[0]
        assert chat.slack.ephemerals[0]["user"] == "U1"
        assert chat.slack.ephemerals[0]["channel"] == "G1"


async def test_help_status_and_list(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        help_text = ack_text(await chat.slash("help"))
        assert "/codegen status &lt;run id&gt;" in help_text
        assert "/codegen config reset" in help_text

        assert "have not started any" in ack_text(await chat.slash("list"))
        assert "not following a run #4242" in ack_text(await chat.slash("status 4242"))
        assert "is not a run id" in ack_text(await chat.slash("status abc"))

        await chat.slash("write the changelog")
        await chat.run_until_idle()
        await chat.slash("fix the typo in the README", user="U1")

        status = ack_text(await chat.slash("status 1000"))
        assert "Run <http://" in status and "|#1000>" in status
        assert "*COMPLETE*" in status
        assert "Done: write the changelog" in status  # the summary of a finished run
        # Someone else asking from another channel sees the state but not the summary,
        # which may describe private work.
        chat.slack.add_channel("C9", name="elsewhere")
        elsewhere = ack_text(await chat.slash("status 1000", user="U2", channel="C9"))
        assert "*COMPLETE*" in elsewhere
        assert "Done: write the changelog" not in elsewhere
        # In the run's own channel it is shared context.
        assert "Done: write the changelog" in ack_text(await chat.slash("status 1000", user="U2"))

        listing = ack_text(await chat.slash("list")).splitlines()
        assert listing[0] == "*Your recent Codegen requests*"
        # Newest first: the second run is in progress, the first one complete, both linked.
        assert "|#1001>" in listing[1] and "fix the typo in the README" in listing[1]
        assert "|#1000>" in listing[2] and "COMPLETE" in listing[2]
        assert "write the changelog" in listing[2]
        # Another person's list has only their own runs.
        assert "have not started any" in ack_text(await chat.slash("list", user="U2"))


async def test_a_prompt_of_only_invisible_characters_is_not_a_run(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        # Nothing visible is nothing typed: the run form opens, and nothing is queued.
        for text in ("\u200b\u2060", "\u200b \ufeff\u3164"):
            assert ack_text(await chat.slash(text)) == ""
            assert chat.opened_view()["callback_id"] == "codegen_run"
        assert "/codegen status &lt;run id&gt;" in ack_text(
            await chat.slash("[repo=acme/web] \u200b")
        )
        await chat.mention("\u200b\u2060")
        await chat.run_until_idle()
        assert await chat.queued_requests() == []
        assert chat.emulator.created_bodies() == []
        hints = chat.ephemeral_texts()
        assert hints and "/codegen status &lt;run id&gt;" in hints[-1]


async def test_config_shows_sets_and_resets_the_channels_defaults(sqlite_url: str) -> None:
    async with Conversation.start(
        database_url=sqlite_url, codegen_default_model="org-model"
    ) as chat:
        shown = ack_text(await chat.slash("config"))
        assert "• repo: Codegen's organization default" in shown
        assert "• model: `org-model` (org default)" in shown

        saved = ack_text(await chat.slash("config repo=acme/web agent=claude_code"))
        assert saved.startswith("Saved.")
        assert "• repo: `acme/web` (channel default)" in saved
        assert "• agent: `claude_code` (channel default)" in saved
        assert "• model: `org-model` (org default)" in saved

        await chat.slash("fix the header")
        await chat.slash("fix the footer repo=acme/api")
        first, second = chat.emulator.created_bodies()
        assert (first["repo_id"], first["agent_type"], first["model"]) == (
            101,
            "claude_code",
            "org-model",
        )
        assert second["repo_id"] == 102  # inline beats the channel default

        # Another channel has its own (no) defaults.
        assert "• repo: Codegen's organization default" in ack_text(
            await chat.slash("config", channel="C2")
        )

        cleared = ack_text(await chat.slash("config reset"))
        assert cleared.startswith("Channel defaults cleared.")
        assert "• repo: Codegen's organization default" in cleared
        assert "• agent: Codegen's organization default" in cleared


async def test_config_refuses_a_repository_codegen_does_not_know(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        refused = ack_text(await chat.slash("config repo=acme/wbe"))
        assert "No repository `acme/wbe`" in refused
        assert "`acme/web`" in refused
        assert "• repo: Codegen's organization default" in ack_text(await chat.slash("config"))
        bad = ack_text(await chat.slash("config agent=foo"))
        assert "`agent=foo` is not an agent" in bad


async def test_repository_lookups_are_paid_from_the_shared_read_budget(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        # The tracker (or another replica) has just used the organization's 60 reads.
        other_replica = OrgBudget(
            store=chat.runtime.store, clock=chat.clock, org_id=ORG_ID, creates_per_minute=10
        )
        for _ in range(60):
            assert await other_replica.try_spend(READ) == 0
        asked = chat.clock.now()
        await chat.slash("fix the nav repo=acme/web")
        [lookup] = chat.emulator.calls("list_repos")
        assert lookup.at - asked >= timedelta(seconds=30)  # it waited for the window
        assert chat.emulator.rate_limited_count == 0
        assert chat.emulator.created_bodies()[0]["repo_id"] == 101
