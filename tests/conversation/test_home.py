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
