"""People's own Codegen tokens: login through the modal, runs made with them (the emulator
sees whose token made each run), logout, a token Codegen later rejects, and secrecy."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.secret_box import new_key
from bot.slack.render import LOGIN_BLOCK_ID, LOGIN_INPUT_ID, LOGIN_VIEW_ID
from tests.harness import Conversation, ack_text

ERIN_TOKEN = "cg-erin-personal-token-000111"


def dm_texts(chat: Conversation, user: str) -> list[str]:
    """What the bot posted in its DM with `user`."""
    dms = [
        c
        for c, info in chat.slack.channels.items()
        if info.get("is_im") and info.get("user") == user
    ]
    return [str(m.get("text")) for dm in dms for m in chat.slack.bot_messages(dm)]


def db_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite+aiosqlite:///"))


async def log_in(chat: Conversation, token: str, *, user: str = "U2") -> dict[str, object]:
    before = len(chat.slack.views)
    assert ack_text(await chat.slash("login", user=user)) == ""
    [opened] = chat.slack.views[before:]
    assert opened["view"]["callback_id"] == LOGIN_VIEW_ID
    return await chat.submit_view(
        LOGIN_VIEW_ID, values={LOGIN_BLOCK_ID: {LOGIN_INPUT_ID: token}}, user=user
    )


async def test_without_a_secret_key_login_is_off_and_says_why(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        told = ack_text(await chat.slash("login"))
        assert "turned off" in told and "BOT_SECRET_KEY" in told
        assert chat.slack.views == []
        assert "organization's token" in ack_text(await chat.slash("whoami"))


async def test_a_person_logs_in_and_their_runs_are_made_with_their_token(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Conversation.start(database_url=sqlite_url, bot_secret_key=new_key()) as chat:
        erin = chat.emulator.add_person(ERIN_TOKEN, email="erin@example.com", name="Erin")
        bad = await log_in(chat, "cg-not-a-real-token-999")
        assert bad["response_action"] == "errors"
        assert "did not accept this token" in str(bad["errors"])
        assert await chat.runtime.store.tokens.get("U2") is None

        good = await log_in(chat, ERIN_TOKEN)
        assert good["response_action"] == "update"
        assert "Logged in as erin@example.com" in str(good["view"])
        assert "your own Codegen token (erin@example.com" in ack_text(
            await chat.slash("whoami", user="U2")
        )

        await chat.slash("write the docs", user="U2")  # hers
        await chat.slash("fix the build", user="U1")  # the organization's
        creates = [c for c in chat.emulator.calls("create_run") if c.run_id]
        assert [c.caller_id for c in creates] == [erin.id, chat.emulator.me.id]
        assert chat.emulator.run(creates[0].run_id or 0).user_id == erin.id
        # Her run's metadata names her token's owner; the other the email match (alice, 7).
        bodies = chat.emulator.created_bodies()
        assert [b["metadata"]["codegen_user_id"] for b in bodies] == [erin.id, 7]
        await chat.run_until_idle()

        # Logged out, her next run is the organization's again.
        assert "Logged out" in ack_text(await chat.slash("logout", user="U2"))
        await chat.slash("and the changelog", user="U2")
        assert chat.emulator.calls("create_run")[-1].caller_id == chat.emulator.me.id

    # The token is never in the database file, nor in any log line.
    assert ERIN_TOKEN.encode() not in db_path(sqlite_url).read_bytes()
    assert ERIN_TOKEN not in caplog.text


async def test_a_token_codegen_rejects_is_told_once_and_never_silently_replaced(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, bot_secret_key=new_key()) as chat:
        chat.emulator.add_person(ERIN_TOKEN, email="erin@example.com", name="Erin")
        await log_in(chat, ERIN_TOKEN)
        chat.emulator.revoke(ERIN_TOKEN)
        await chat.slash("write the docs", user="U2")
        await chat.slash("and the tests", user="U2")
        await chat.run_until_idle()
        assert chat.emulator.created_bodies() == []  # refused, not made as someone else
        dms = [m for m in dm_texts(chat, "U2") if "rejected your Codegen API token" in m]
        assert len(dms) == 1  # told once
        # Each card says why, naming what to do.
        refusals = [t for t in chat.bot_texts("C1") if "did not start this run with someone" in t]
        assert len(refusals) >= 2, chat.bot_texts("C1")
        assert "rejected" in ack_text(await chat.slash("whoami", user="U2"))


async def test_with_the_org_fallback_a_rejected_token_gives_way_to_the_organizations(
    sqlite_url: str,
) -> None:
    async with Conversation.start(
        database_url=sqlite_url, bot_secret_key=new_key(), personal_token_fallback="org"
    ) as chat:
        chat.emulator.add_person(ERIN_TOKEN, email="erin@example.com", name="Erin")
        await log_in(chat, ERIN_TOKEN)
        chat.emulator.revoke(ERIN_TOKEN)
        await chat.slash("write the docs", user="U2")
        await chat.run_until_idle()
        [create] = [c for c in chat.emulator.calls("create_run") if c.run_id]
        assert create.caller_id == chat.emulator.me.id
        assert any(
            "next runs are made with the organization's token" in m for m in dm_texts(chat, "U2")
        )


async def test_resumes_and_stops_are_made_with_the_persons_token_too(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url, bot_secret_key=new_key()) as chat:
        erin = chat.emulator.add_person(ERIN_TOKEN, email="erin@example.com", name="Erin")
        await log_in(chat, ERIN_TOKEN)
        chat.emulator.script.next_run_ends("PAUSED")
        root = await chat.mention("migrate the settings page", user="U2")
        await chat.advance(30)
        await chat.reply("use main", thread_ts=root, user="U2")  # her answer
        [resume] = [c for c in chat.emulator.calls("resume_run") if c.run_id]
        assert resume.caller_id == erin.id
        await chat.slash("stop 1000", user="U2")
        [stop] = chat.emulator.calls("stop_run")
        assert (stop.caller_id, stop.status) == (erin.id, 200)
        # Her calls were paid from her token's budget, not the organization's.
        async with chat.runtime.store.sessions() as session:
            from sqlalchemy import select

            from bot.store.tables import RateSpend

            buckets = set((await session.scalars(select(RateSpend.bucket))).all())
        assert any(b.startswith("create:") for b in buckets), buckets
        assert any(b.startswith("read:") for b in buckets), buckets
