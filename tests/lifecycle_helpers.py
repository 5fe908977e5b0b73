"""What the run-lifecycle tests read off the fake Slack: the thread, the card and its edits, the
final replies, the reactions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.notify import FINAL_REPLY_EVENT
from tests.fakes.slack import FakeSlack
from tests.harness import Conversation, _all_text

CHANNEL = "C1"


def roots(chat: Conversation, channel: str = CHANNEL) -> list[str]:
    """The ts of each slash command's root message ("<@U1> asked Codegen: …"), oldest first."""
    return [
        m["ts"]
        for m in chat.slack.bot_messages(channel)
        if "asked Codegen" in str(m.get("text")) and m.get("thread_ts") in (None, m["ts"])
    ]


def card_ts(chat: Conversation, root: str, channel: str = CHANNEL) -> str:
    """The status card: the bot's first message in the thread after the root."""
    cards = [
        m
        for m in chat.slack.bot_messages(channel, thread_ts=root)
        if m["ts"] != root and "Codegen run" in str(m.get("text"))
    ]
    assert cards, f"no card in thread {root}: {chat.bot_texts(channel, root)}"
    return str(cards[0]["ts"])


def card_text(chat: Conversation, root: str, channel: str = CHANNEL) -> str:
    return _all_text(chat.slack.message(channel, card_ts(chat, root, channel)))


def edits(slack: FakeSlack, ts: str) -> list[str]:
    """The fallback text of every chat.update of message `ts`, in order (the fake records
    calls it answered with a scripted fault too)."""
    return [str(call.get("text")) for call in slack.calls_to("chat.update") if call.get("ts") == ts]


def headline(text: str) -> str:
    """ "✅ Codegen run #1000: Complete, finished in 31 s · fix it" → "Complete"."""
    after = text.split(": ", 1)[1] if ": " in text else text
    return after.split(",", 1)[0].strip()


def final_replies(
    chat: Conversation, root: str, *, kind: str = "final", channel: str = CHANNEL
) -> list[dict[str, Any]]:
    """The bot's replies in the thread carrying the run-finished metadata of `kind`."""
    found = []
    for message in chat.slack.bot_messages(channel, thread_ts=root):
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == FINAL_REPLY_EVENT and payload.get("kind") == kind:
            found.append(message)
    return found


def text_of(message: dict[str, Any]) -> str:
    return _all_text(message)


def max_in_window(times: list[Any], *, seconds: float) -> int:
    """The most calls in any window of `seconds` (half-open, as the emulator counts)."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + timedelta(seconds=seconds):
            j += 1
        best = max(best, j - i)
    return best
