"""Who may start runs, and bad input. Refusals are specific, reach
only the person who asked, and leave nothing behind: no queue entry, or a failed one with the
reason, and no card saying "queued"."""

from __future__ import annotations

from bot.intake.options import HELP_TEXT
from tests.harness import Conversation, ack_text


async def test_people_not_on_allowed_slack_users_are_refused_and_nothing_is_queued(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, allowed_slack_users="U1") as chat:
        refused = ack_text(await chat.slash("deploy to prod", user="U2"))
        assert "not on this bot's list of people who may start Codegen runs" in refused
        assert "ALLOWED_SLACK_USERS" in refused

        ts = await chat.mention("deploy to prod", user="U2")
        await chat.dm("deploy to prod", user="U2")
        whispers = [e for e in chat.slack.ephemerals if e["user"] == "U2"]
        assert len(whispers) == 2
        assert all("ALLOWED_SLACK_USERS" in e["text"] for e in whispers)
        assert whispers[0]["channel"] == "C1"

        assert await chat.queued_requests() == []
        assert chat.emulator.calls("create_run") == []
        assert chat.slack.bot_messages("C1") == []
        assert chat.slack.bot_reactions("C1", ts) == []

        # The allowed person is not affected.
        assert "Queued" in ack_text(await chat.slash("deploy to staging", user="U1"))
        assert len(chat.emulator.created_bodies()) == 1


async def test_channels_not_on_allowed_slack_channels_are_refused(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url, allowed_slack_channels="C1") as chat:
        chat.slack.add_channel("C2", name="random")
        refused = ack_text(await chat.slash("fix it", channel="C2"))
        assert "not on the bot's list of channels where people may start Codegen runs" in refused
        assert "ALLOWED_SLACK_CHANNELS" in refused
        await chat.mention("fix it", channel="C2")
        assert "ALLOWED_SLACK_CHANNELS" in chat.slack.ephemerals[-1]["text"]
        assert chat.slack.ephemerals[-1]["channel"] == "C2"
        assert await chat.queued_requests() == []

        # Subcommands that only read still work there; the allowed channel runs as usual.
        assert "*Commands*" in ack_text(await chat.slash("help", channel="C2"))
        assert "Queued" in ack_text(await chat.slash("fix it", channel="C1"))
        # A DM with the bot is a person asking privately, not a channel: allowed.
        await chat.dm("fix it too")
        assert len(chat.emulator.created_bodies()) == 2


async def test_the_allowlists_cover_channel_defaults_too(sqlite_url: str) -> None:
    async with Conversation.start(
        database_url=sqlite_url, allowed_slack_users="U1", allowed_slack_channels="C1"
    ) as chat:
        chat.slack.add_channel("C2", name="random")
        for text in ("config repo=acme/api", "config reset"):
            refused = ack_text(await chat.slash(text, user="U2"))
            assert "may change this channel's defaults" in refused, refused
            assert "ALLOWED_SLACK_USERS" in refused and refused.endswith("Nothing was changed.")
            elsewhere = ack_text(await chat.slash(text, channel="C2"))
            assert "ALLOWED_SLACK_CHANNELS" in elsewhere
        assert await chat.runtime.store.channels.defaults("C1") is None
        assert await chat.runtime.store.channels.defaults("C2") is None
        # Reading them is for everyone; the allowed person in the allowed channel may change.
        assert "Defaults for runs" in ack_text(await chat.slash("config", user="U2"))
        assert ack_text(await chat.slash("config repo=acme/api")).startswith("Saved.")
        defaults = await chat.runtime.store.channels.defaults("C1")
        assert defaults is not None and defaults.repo == "acme/api"


async def test_an_empty_request_gets_the_form_and_options_alone_the_help_text(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        assert ack_text(await chat.slash("   ")) == ""
        assert chat.opened_view()["callback_id"] == "codegen_run"
        only_options = ack_text(await chat.slash("repo=acme/web"))
        assert only_options.startswith("Options alone don't start a run")
        assert HELP_TEXT in only_options
        await chat.mention("")
        assert chat.slack.ephemerals[-1]["text"] == HELP_TEXT
        await chat.mention("help")
        assert chat.slack.ephemerals[-1]["text"] == HELP_TEXT
        await chat.dm("help")
        assert chat.slack.ephemerals[-1]["text"] == HELP_TEXT
        assert await chat.queued_requests() == []


async def test_bad_option_values_and_unknown_keys_are_named_with_the_valid_ones(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        agent = ack_text(await chat.slash("fix the login agent=foo"))
        assert agent == "`agent=foo` is not an agent. Valid values: `codegen`, `claude_code`."
        block = ack_text(await chat.slash("[repo=acme/web, timeout=30] fix the login"))
        assert "Unknown option `timeout`" in block
        assert "Valid options: `repo`, `model`, `agent`" in block
        repo = ack_text(await chat.slash("fix it repo=not/a/repo"))
        assert "`repo=not/a/repo` is not a repository" in repo

        ts = await chat.mention("fix the login agent=robot")
        whisper = chat.slack.ephemerals[-1]
        assert whisper["text"].startswith("`agent=robot` is not an agent. Valid values:")
        assert (whisper["channel"], whisper["user"]) == ("C1", "U1")
        assert chat.slack.bot_reactions("C1", ts) == []

        # Outside a leading block an unknown key is just prompt text.
        await chat.slash("set timeout=30 in the worker")
        assert [b["prompt"] for b in chat.emulator.created_bodies()] == [
            "set timeout=30 in the worker"
        ]
        assert len(await chat.queued_requests()) == 1


async def test_a_prompt_over_max_prompt_chars_is_refused_with_the_limit(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url, max_prompt_chars=1000) as chat:
        refused = ack_text(await chat.slash("x" * 1001))
        assert refused.startswith("Your request is 1,001 characters long; the limit is 1,000")
        assert "MAX_PROMPT_CHARS" in refused
        await chat.mention("y" * 1500)
        assert "the limit is 1,000 (MAX_PROMPT_CHARS)" in chat.slack.ephemerals[-1]["text"]
        assert await chat.queued_requests() == []
        assert chat.slack.bot_messages("C1") == []
        # At the limit is fine.
        assert "Queued" in ack_text(await chat.slash("z" * 1000))


async def test_an_unknown_repository_is_refused_with_the_closest_names_and_no_leftovers(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        response = await chat.slash("fix the docs build repo=acme/dcos")
        assert "Queued" in ack_text(response)  # the name is checked after the ack
        told = chat.ephemeral_texts()[-1]
        assert told.startswith("No repository `acme/dcos` in this Codegen organization.")
        assert "Closest: `acme/docs`" in told

        # Nothing half-done: no root message, no card, no reaction, nothing sent to Codegen,
        # and the queue entry is closed with the reason.
        assert chat.slack.bot_messages("C1") == []
        assert chat.emulator.calls("create_run") == []
        [row] = await chat.queued_requests()
        assert row.status == "failed"
        assert row.error is not None and "No repository `acme/dcos`" in row.error
        await chat.run_until_idle()
        assert chat.emulator.calls("create_run") == []

        # The same for a mention: refused in a whisper, no card, no 👀 left on the message.
        ts = await chat.mention("fix it repo=acme/wbe")
        assert "Closest: `acme/web`" in chat.slack.ephemerals[-1]["text"]
        assert chat.slack.bot_messages("C1") == []
        assert chat.slack.bot_reactions("C1", ts) == []
        # The list is fresh by now, so that one was refused before it was queued: only the
        # first is listed, its reason cut outside any code span.
        listing = ack_text(await chat.slash("list"))
        assert "not started (No repository `acme/dcos`" in listing
        assert "acme/wbe" not in listing
        # What people typed is shown as text, never as markup that could ping anyone.
        await chat.slash("tell <!channel> about `the release notes for the 2.4 train` soon")
        listing = ack_text(await chat.slash("list"))
        assert "<!channel>" not in listing and "&lt;!channel&gt;" in listing
        assert all(line.count("`") % 2 == 0 for line in listing.splitlines()), listing
        for line in [line for line in listing.splitlines() if "not started" in line]:
            reason = line.split("not started (", 1)[1].rsplit("): ", 1)[0]
            assert reason.count("`") % 2 == 0, line  # never cut inside a code span


async def test_codegen_unreachable_while_preparing_keeps_the_request_and_it_runs_once_later(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        # The repository lookup meets a 503: that is not the person's fault, so no refusal.
        chat.emulator.script.fail_next_read(503, message="upstream busy")
        assert "Queued" in ack_text(await chat.slash("fix the nav repo=acme/web"))
        assert "it stays queued and I will try again shortly" in chat.ephemeral_texts()[-1]
        assert chat.emulator.calls("create_run") == []
        [row] = await chat.queued_requests()
        assert row.status == "pending"

        await chat.run_until_idle()
        [body] = chat.emulator.created_bodies()
        assert (body["prompt"], body["repo_id"]) == ("fix the nav", 101)
        roots = [m for m in chat.slack.bot_messages("C1") if m.get("thread_ts") in (None, m["ts"])]
        assert len(roots) == 1


async def test_a_typo_in_a_repository_is_refused_at_the_ack_once_the_list_is_fresh(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        # The list has not been read yet: the ack promises no run, only a check.
        first = ack_text(await chat.slash("write docs repo=acme/webb"))
        assert first.startswith("Queued. Options taken: repo `acme/webb`.")
        assert "I will check repository `acme/webb` with Codegen" in first
        assert "post the run" in first and "or tell you why I could not start it" in first
        assert "Closest: `acme/web`" in chat.ephemeral_texts()[-1]
        reads = len(chat.emulator.calls("list_repos"))

        # Now the list is fresh: the same typo is refused in the ack itself, nothing queued.
        queued = len(await chat.queued_requests())
        refused = ack_text(await chat.slash("write docs repo=acme/webb"))
        assert refused.startswith(
            "No repository `acme/webb` in this Codegen organization. Closest: `acme/web`"
        )
        assert refused.endswith(". Nothing was started.")
        assert len(await chat.queued_requests()) == queued
        assert len(chat.emulator.calls("list_repos")) == reads  # judged without a call
        # A known name is acked with the firm promise, and the options it took.
        ok = ack_text(await chat.slash("write docs repo=acme/web agent=claude_code"))
        assert ok == (
            "Queued. Options taken: repo `acme/web`, agent `claude_code`. I will post the run "
            "in a thread here and keep its status card up to date."
        )
        # Past the list's time to live, the check goes back to after the ack.
        await chat.advance(400, step=50)
        later = ack_text(await chat.slash("write docs repo=acme/webb"))
        assert later.startswith("Queued.") and "I will check repository" in later
        assert chat.emulator.created_bodies()[-1]["repo_id"] == 101


async def test_options_grammar_errors_name_what_is_wrong_and_groups_count_anywhere(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        unclosed = ack_text(
            await chat.slash("[repo=acme/web, model=y agent=claude_code add a readme")
        )
        assert "is never closed" in unclosed and "Nothing was started." in unclosed
        assert await chat.queued_requests() == []

        ack = ack_text(await chat.slash("add a readme [model=gpt-5, agent=claude_code]"))
        assert "Options taken: model `gpt-5`, agent `claude_code`." in ack
        await chat.run_until_idle()
        [body] = chat.emulator.created_bodies()
        assert body["prompt"] == "add a readme"
        assert (body["model"], body["agent_type"]) == ("gpt-5", "claude_code")


async def test_only_admins_change_channel_defaults_and_the_last_change_is_shown(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, admin_slack_users="U2") as chat:
        refused = ack_text(await chat.slash("config repo=acme/api", user="U1"))
        assert refused.startswith("Only admins change this channel's defaults here")
        assert refused.endswith("Nothing was changed.")
        assert "Only admins" in ack_text(await chat.slash("config reset", user="U1"))
        assert await chat.runtime.store.channels.defaults("C1") is None

        saved = ack_text(await chat.slash("config repo=acme/api model=gpt-5", user="U2"))
        assert saved.startswith("Saved.")
        assert (
            "Last changed by <@U2> 0 s ago: repo not set → `acme/api`, model not set → `gpt-5`."
            in saved
        )
        await chat.advance(120, step=60)
        shown = ack_text(await chat.slash("config", user="U1"))  # anyone may read them
        assert "Last changed by <@U2> 2 min ago" in shown
        assert "Admins (ADMIN_SLACK_USERS) change them" in shown
        cleared = ack_text(await chat.slash("config reset", user="U2"))
        assert "repo `acme/api` → not set, model `gpt-5` → not set." in cleared

    # Without ADMIN_SLACK_USERS, anyone allowed to ask may change them.
    async with Conversation.start(database_url=sqlite_url) as chat:
        assert ack_text(await chat.slash("config agent=codegen", user="U1")).startswith("Saved.")
