"""App Home: opened, a person sees their runs, channel defaults and (admins) allow-lists and
budgets; it follows their runs at most every 10 s; the Messages tab and people who never
opened it cost no calls."""

from __future__ import annotations

from typing import Any

from tests.harness import Conversation, block_texts


async def open_home(chat: Conversation, user: str = "U1", *, tab: str = "home") -> None:
    await chat.event(
        {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0HOME",
            "tab": tab,
            "event_ts": "1.0",
        }
    )


def home_text(chat: Conversation, user: str = "U1") -> str:
    view = chat.slack.home_of(user)
    assert view is not None, f"no Home published for {user}"
    return "\n".join(block_texts(view["blocks"]))


def publishes(chat: Conversation) -> list[Any]:
    return [c for c in chat.slack.calls if c.method == "views.publish"]


async def test_a_person_sees_their_runs_on_home_and_it_follows_them(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("fix the flaky login test repo=acme/web")
        await chat.slash("tidy up the README")
        await chat.advance(8)  # both runs started and seen running
        await chat.slash("config model=claude-sonnet")  # a default in C1

        await open_home(chat)
        text = home_text(chat)
        assert "*Your recent runs*" in text
        assert "#1000" in text and "#1001" in text
        assert "fix the flaky login test" in text and "tidy up the README" in text
        assert "ACTIVE" in text
        assert "Defaults for runs started in <#C1>" in text and "`claude-sonnet`" in text
        assert "Admin:" not in text  # not an admin
        assert chat.slack.home_of("U2") is None  # Bob never opened it

        await chat.runtime.home.tick()
        assert len(publishes(chat)) == 1  # nothing changed: nothing published

        await chat.run_until_idle()  # both runs complete
        await chat.runtime.home.tick()
        text = home_text(chat)
        assert text.count("COMPLETE") == 2, text
        seen = len(publishes(chat))
        assert seen == 2  # the changes of both runs: one publish

        await open_home(chat, tab="messages")  # the DM tab: nothing to publish
        await chat.runtime.home.tick()
        assert len(publishes(chat)) == seen


async def test_home_follows_a_change_at_most_every_ten_seconds(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await open_home(chat)
        assert "You have not started any Codegen runs" in home_text(chat)
        await chat.slash("add a health check")
        await chat.runtime.home.tick()  # the request was made within 10 s of the publish
        assert len(publishes(chat)) == 1
        chat.clock.advance(10)
        await chat.runtime.home.tick()
        assert len(publishes(chat)) == 2
        assert "add a health check" in home_text(chat)


async def test_admins_see_the_allowlists_and_the_budgets(sqlite_url: str) -> None:
    async with Conversation.start(
        database_url=sqlite_url,
        admin_slack_users=["U2"],
        allowed_slack_channels=["C1"],
    ) as chat:
        await chat.slash("add a health check")
        await chat.advance(3)  # created: one create spent
        await open_home(chat, "U2")
        text = home_text(chat, "U2")
        assert "*Admin: who may ask, and the organization's budgets*" in text
        assert "May start runs: everyone" in text and "In: <#C1>" in text
        assert "Admins (may stop any run and change channel defaults): <@U2>" in text
        assert "Creates: 1 of 10 spent in the last 1 min, 9 left" in text
        assert "Reads:" in text and "Pull request changes: 0 of 30 spent" in text
        await open_home(chat, "U1")
        assert "Admin:" not in home_text(chat, "U1")
        assert "add a health check" in home_text(chat, "U1")


def change_buttons(chat: Conversation, user: str = "U1") -> list[str]:
    """The channels whose defaults have a Change button on the person's Home."""
    view = chat.slack.home_of(user)
    assert view is not None
    return [
        b["accessory"]["value"]
        for b in view["blocks"]
        if b.get("accessory", {}).get("action_id") == "edit_channel_defaults"
    ]


async def test_a_person_changes_a_channels_defaults_from_home(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("config model=claude-sonnet")
        await chat.slash("add a health check")
        await open_home(chat)
        assert change_buttons(chat) == ["C1"]

        await chat.press_on_home("edit_channel_defaults", value="C1")
        form = chat.opened_view()
        assert form["callback_id"] == "codegen_channel_defaults"
        fields = {b["block_id"]: b["element"] for b in form["blocks"] if b["type"] == "input"}
        assert fields["model"]["initial_value"] == "claude-sonnet"
        assert "initial_value" not in fields["repo"]
        assert fields["agent"]["initial_option"]["value"] == "none"

        # A repository Codegen does not know is said under the field; nothing is saved.
        answer = await chat.submit_form(repo="acme/webb")
        assert answer["response_action"] == "errors"
        assert "Closest: acme/web" in answer["errors"]["repo"]
        saved = await chat.runtime.store.channels.defaults("C1")
        assert saved is not None and saved.repo is None and saved.model == "claude-sonnet"

        published = len(publishes(chat))
        assert await chat.submit_form(repo="acme/API", model=None, agent="claude_code") == {}
        saved = await chat.runtime.store.channels.defaults("C1")
        assert saved is not None
        assert (saved.repo, saved.model, saved.agent_type) == ("acme/api", None, "claude_code")
        # Home shows it at once, and the next run takes it.
        assert len(publishes(chat)) == published + 1
        text = home_text(chat)
        assert "`acme/api` (channel default)" in text
        assert "`claude_code` (channel default)" in text
        assert "model `claude-sonnet` → not set" in text  # who changed what, as config says
        await chat.slash("write the changelog")
        await chat.run_until_idle()
        last = chat.emulator.created_bodies()[-1]
        assert last["repo_id"] == 102 and last["agent_type"] == "claude_code"


async def test_only_admins_get_the_change_button_when_there_are_admins(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url, admin_slack_users=["U2"]) as chat:
        await chat.slash("add a health check")
        await chat.slash("add a health check", user="U2")
        await open_home(chat, "U1")
        await open_home(chat, "U2")
        assert change_buttons(chat, "U1") == [] and change_buttons(chat, "U2") == ["C1"]
        # A press Slack would not show (a stale Home): told why, in a form of its own.
        await chat.press_on_home("edit_channel_defaults", value="C1", user="U1")
        notice = chat.opened_view()
        assert "callback_id" not in notice and "Only admins" in str(notice["blocks"])
        assert await chat.runtime.store.channels.defaults("C1") is None
