"""When Codegen refuses or fails: what the card says, what is retried, and that an ambiguous
failure never makes a second run."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.harness import (
    CHANNEL,
    Conversation,
    card_text,
    final_replies,
    roots,
    text_of,
)

CROSS = "x"


async def _refused(chat: Conversation, text: str) -> str:
    await chat.slash(text)
    await chat.advance(120, step=30)  # a retry would have come within seconds
    [root] = roots(chat)
    assert chat.slack.bot_reactions(CHANNEL, root) == [CROSS]
    assert final_replies(chat, root) == []
    [request] = await chat.queued_requests()
    assert request.status == "failed"
    return card_text(chat, root)


@pytest.mark.parametrize(
    ("setup", "prompt", "expected"),
    [
        pytest.param(
            lambda e: e.script.fail_next_create(402),
            "fix it",
            "Codegen's plan limit is reached: Alloted agent runs for the current billing plan "
            "have been reached. Please upgrade your plan to continue.",
            id="402-plan-limit",
        ),
        pytest.param(
            lambda e: e.script.fail_next_create(403),
            "fix it",
            "The bot's Codegen token has no access to this organization (check "
            "CODEGEN_API_TOKEN and CODEGEN_ORG_ID): You do not have access to this organization.",
            id="403-no-access",
        ),
        pytest.param(
            lambda e: setattr(e, "repos", []),
            "fix it",
            "The Codegen organization has no repositories: No repos found in the organization. "
            "Please add some repos and try again.",
            id="404-no-repos",
        ),
        pytest.param(
            lambda e: None,
            "fix it repo=999",
            "Codegen refused repo_id: Repository 999 not found in organization 7",
            id="422-field",
        ),
    ],
)
async def test_a_refusal_puts_codegens_own_message_on_the_card_and_is_not_retried(
    sqlite_url: str, setup: Any, prompt: str, expected: str
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        setup(chat.emulator)
        shown = await _refused(chat, prompt)
        assert "🚫 *Couldn't start the run*" in shown
        assert expected in shown
        assert len(chat.emulator.calls("create_run")) == 1
        assert chat.emulator.created_bodies() == []


async def test_a_422_names_every_refused_field(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.fail_next_create(
            422,
            detail=[
                {"loc": ["body", "model"], "msg": "Unknown model 'gpt-0'", "type": "value_error"},
                {"loc": ["body", "images", 2], "msg": "Not a data URI", "type": "value_error"},
            ],
        )
        shown = await _refused(chat, "fix it")
        assert "Codegen refused model, images.2: Unknown model 'gpt-0'; Not a data URI" in shown


async def test_5xx_is_retried_with_growing_back_off_and_then_succeeds(sqlite_url: str) -> None:
    # The top of each full-jitter range.
    top = {"retry_rand": lambda: 0.99}
    async with Conversation.start(database_url=sqlite_url, runtime_options=top) as chat:
        chat.emulator.script.fail_next_create(503, times=3)
        await chat.slash("fix the login page")
        await chat.run_until_idle()
        creates = chat.emulator.calls("create_run")
        assert [c.status for c in creates] == [503, 503, 503, 200]
        gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(creates)]
        # Full jitter with base 2 s: under 2, 4, 8 s, rounded up to the next 1 s tick.
        assert [round(g) for g in gaps] == [2, 4, 8]
        # Each 5xx may have created the run: the dispatcher looked before sending again.
        assert len(chat.emulator.calls("list_runs")) >= 3
        assert len(chat.emulator.created_bodies()) == 1
        [root] = roots(chat)
        assert "✅ *Complete*" in card_text(chat, root)
        assert len(final_replies(chat, root)) == 1


async def test_5xx_until_the_attempts_run_out_is_reported_on_the_card(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.fail_next_create(500, times=6)
        await chat.slash("fix the login page")
        await chat.run_until_idle()
        assert [c.status for c in chat.emulator.calls("create_run")] == [500] * 6
        assert chat.emulator.created_bodies() == []
        [root] = roots(chat)
        shown = card_text(chat, root)
        assert "🚫 *Couldn't start the run*" in shown
        assert "Codegen could not be reached after 6 tries: Codegen API answered 500" in shown
        assert chat.slack.bot_reactions(CHANNEL, root) == [CROSS]
        await chat.advance(600, step=30)
        assert len(chat.emulator.calls("create_run")) == 6


async def test_a_5xx_after_the_run_was_created_makes_exactly_one_run(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.fail_next_create(500, after_creating=True)
        await chat.slash("fix the login page")
        await chat.run_until_idle()
        assert len(chat.emulator.calls("create_run")) == 1  # found, not sent again
        [body] = chat.emulator.created_bodies()
        [request] = await chat.queued_requests()
        assert body["metadata"]["request_id"] == request.id
        assert (request.status, request.run_id) == ("dispatched", 1000)
        [root] = roots(chat)
        assert "✅ *Complete*" in card_text(chat, root)
        assert len(final_replies(chat, root)) == 1


async def test_a_create_that_times_out_after_creating_the_run_makes_exactly_one_run(
    sqlite_url: str,
) -> None:
    impatient = {"codegen_timeout": 0.3}
    async with Conversation.start(
        database_url=sqlite_url, runtime_options=impatient, emulator_socket=True
    ) as chat:
        chat.emulator.script.create_then_hang(5)
        await chat.slash("fix the login page")
        [request] = await chat.queued_requests()
        assert request.ambiguous and request.attempts == 1
        assert "timed out" in (request.error or "")
        await chat.run_until_idle()
        assert len(chat.emulator.calls("create_run")) == 1
        assert len(chat.emulator.created_bodies()) == 1
        [request] = await chat.queued_requests()
        assert (request.status, request.run_id) == ("dispatched", 1000)
        [root] = roots(chat)
        [final] = final_replies(chat, root)
        assert "#1000 is complete" in text_of(final)


async def test_a_codegen_429_blocks_creates_until_its_retry_after(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.emulator.script.fail_next_create(429, retry_after=30)
        start = chat.clock.now()
        await chat.slash("first")
        await chat.advance(5)
        await chat.slash("second")  # queued behind the block, in order
        [first_root, second_root] = roots(chat)
        assert "next in line, starts in about 30 s" in card_text(chat, first_root)
        assert "queued, 1 ahead, starts in about 30 s" in card_text(chat, second_root)
        await chat.advance(24)
        assert [c.status for c in chat.emulator.calls("create_run")] == [429]
        await chat.advance(2)
        creates = chat.emulator.calls("create_run")
        assert [c.status for c in creates] == [429, 200, 200]
        assert all((c.at - start).total_seconds() >= 30 for c in creates[1:])
        prompts = [b["prompt"] for b in chat.emulator.created_bodies()]
        assert prompts == ["first", "second"]
        assert chat.emulator.rate_limited_count == 1  # only the scripted one
        await chat.run_until_idle()
        assert all(len(final_replies(chat, root)) == 1 for root in roots(chat))
