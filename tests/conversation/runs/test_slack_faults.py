"""Slack's faults on the way out: 429s waited out on the clock, 5xx retried, permanent errors
logged with the run id while tracking goes on, and the final reply posted exactly once."""

from __future__ import annotations

import logging

import pytest

from tests.harness import Conversation, card_text, card_ts, edits, final_replies, headline, roots


async def _until_active(chat: Conversation) -> str:
    """A run that the bot has shown as Starting; returns its card's ts."""
    await chat.slash("fix the login page")
    [root] = roots(chat)
    card = card_ts(chat, root)
    assert [headline(t) for t in edits(chat.slack, card)] == ["Starting"]
    return card


def _calls(chat: Conversation, method: str, outcome: str) -> float:
    """codegen_bot_slack_calls_total{method, outcome} as /metrics shows it."""
    labels = {"method": method, "outcome": outcome}
    found = chat.runtime.metrics.registry.get_sample_value("codegen_bot_slack_calls_total", labels)
    return found or 0.0


async def test_a_429_on_the_card_edit_blocks_that_method_for_its_retry_after(
    sqlite_url: str,
) -> None:
    # Status edits only (no progress edits among them).
    async with Conversation.start(database_url=sqlite_url, codegen_logs_per_minute=0) as chat:
        card = await _until_active(chat)
        chat.slack.rate_limit_next("chat.update", retry_after=7)
        await chat.run_until_idle()
        assert chat.slack.faults[("chat.update", "ratelimited")] == 1
        assert _calls(chat, "chat.update", "ratelimited") == 1
        _starting, refused, again, *_ = [
            c for c in chat.slack.calls_to("chat.update") if c.get("ts") == card
        ]
        # Nobody slept on it (no wall time, no fake time either): the edit was made again on a
        # later tick, once the block (in the store, for every replica) had ended.
        assert chat.clock.slept == []
        assert refused.at is not None and again.at is not None
        assert (again.at - refused.at).total_seconds() >= 7
        assert chat.slack.rate_limited() == 0  # and the fake's own rates were never crossed
        # The refused edit was sent again after the wait, and nothing was shown twice.
        assert [headline(t) for t in edits(chat.slack, card)] == [
            "Starting",
            "Running",
            "Running",
            "Complete",
        ]
        [root] = roots(chat)
        assert "✅ *Complete*" in card_text(chat, root)
        assert len(final_replies(chat, root)) == 1


async def test_a_5xx_on_the_card_edit_is_retried(sqlite_url: str) -> None:
    # Status edits only (no progress edits among them).
    async with Conversation.start(database_url=sqlite_url, codegen_logs_per_minute=0) as chat:
        card = await _until_active(chat)
        chat.slack.server_error_next("chat.update", 503, times=2)
        await chat.run_until_idle()
        assert chat.slack.faults[("chat.update", "server_error")] == 2
        assert _calls(chat, "chat.update", "server_error") == 2
        assert chat.clock.slept[:2] == [2.0, 4.0]  # back-off between the tries
        assert [headline(t) for t in edits(chat.slack, card)].count("Running") == 3
        [root] = roots(chat)
        assert "✅ *Complete*" in card_text(chat, root)
        assert len(final_replies(chat, root)) == 1


@pytest.mark.parametrize("error", ["channel_not_found", "is_archived", "not_in_channel"])
async def test_a_permanent_error_is_logged_with_the_run_and_tracking_goes_on(
    sqlite_url: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Status edits only (no progress edits among them).
    async with Conversation.start(database_url=sqlite_url, codegen_logs_per_minute=0) as chat:
        card = await _until_active(chat)
        chat.slack.fail_next("chat.update", error)
        with caplog.at_level(logging.WARNING, logger="bot.slack.gateway"):
            await chat.run_until_idle()
        [record] = [r for r in caplog.records if error in r.getMessage()]
        assert "run=1000" in record.getMessage()
        # Not retried (it would fail again), not a crash: the run went on to its end.
        assert [headline(t) for t in edits(chat.slack, card)] == [
            "Starting",
            "Running",
            "Complete",
        ]
        [root] = roots(chat)
        assert len(final_replies(chat, root)) == 1
        assert await chat.runtime.store.runs.count_tracking(org_id=7) == 0


async def test_the_final_reply_is_posted_once_when_the_last_card_edit_fails(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        card = await _until_active(chat)
        await chat.advance(20)  # Running
        chat.slack.fail_next("chat.update", "message_not_found")
        await chat.run_until_idle()
        assert headline(edits(chat.slack, card)[-1]) == "Complete"  # tried, refused for good
        [root] = roots(chat)
        assert len(final_replies(chat, root)) == 1


async def test_slack_down_at_the_end_gets_the_card_and_the_reply_out_later_once(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await _until_active(chat)
        await chat.advance(20)
        # Slack answers 503 to everything the bot writes when the run completes: four tries
        # each for the card edit and the reply, then they wait for a later poll.
        chat.slack.server_error_next("chat.update", 503, times=8)
        chat.slack.server_error_next("chat.postMessage", 503, times=4)
        await chat.run_until_idle()
        [root] = roots(chat)
        assert chat.slack.pending_faults("chat.postMessage") == 0
        assert "✅ *Complete*" in card_text(chat, root)
        assert len(final_replies(chat, root)) == 1
        # Before posting again, the bot looked in the thread for a reply it may have made.
        assert chat.slack.calls_to("conversations.replies")


async def test_a_crash_between_posting_the_reply_and_recording_it_does_not_post_twice(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        store = chat.runtime.store
        real_finish = store.runs.finish_reply
        crashes = []

        async def crash_once(*args: object, **kwargs: object) -> bool:
            if not crashes and kwargs.get("kind") == "final":
                crashes.append(kwargs)
                raise RuntimeError("killed after posting")
            return await real_finish(*args, **kwargs)  # type: ignore[arg-type]

        store.runs.finish_reply = crash_once  # type: ignore[method-assign]
        await chat.slash("fix the login page")
        await chat.run_until_idle()
        assert crashes  # the reply went out, and its record did not
        [root] = roots(chat)
        assert len(final_replies(chat, root)) == 1
        run = await store.runs.get(1000)
        assert run is not None and run.final_reply_state == "posted" and not run.tracking
        assert run.final_reply_ts == final_replies(chat, root)[0]["ts"]


# -- Slack stored it, then answered 5xx: looked up before it is posted again ----------------


async def test_a_root_message_slack_stored_despite_a_500_is_not_posted_again(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.server_error_after_storing_next("chat.postMessage")  # the root
        await chat.slash("fix the login page")
        await chat.run_until_idle()
        assert chat.slack.faults[("chat.postMessage", "stored_then_error")] == 1
        [root] = roots(chat)  # one root, found in the channel's history
        assert chat.slack.calls_to("conversations.history")
        assert "✅ *Complete*" in card_text(chat, root)
        assert len(final_replies(chat, root)) == 1
        assert len(chat.emulator.created_bodies()) == 1


async def test_a_card_slack_stored_despite_a_500_is_not_posted_again(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.server_error_after_storing_next("chat.postMessage")  # a mention: the card
        ts = await chat.mention("fix the login page")
        await chat.run_until_idle()
        cards = [t for t in chat.bot_texts("C1", ts) if "Codegen run #1000:" in t]
        assert len(cards) == 1, chat.bot_texts("C1", ts)
        assert "Complete" in cards[0]
        assert chat.slack.calls_to("conversations.replies")


async def test_a_final_reply_slack_stored_despite_a_500_is_shown_once(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await _until_active(chat)
        await chat.advance(20)  # Running
        chat.slack.server_error_after_storing_next("chat.postMessage")  # the final reply
        await chat.run_until_idle()
        assert chat.slack.faults[("chat.postMessage", "stored_then_error")] == 1
        [root] = roots(chat)
        assert len(final_replies(chat, root)) == 1
        assert await chat.runtime.store.runs.count_tracking(org_id=7) == 0
