"""Slack text helpers: durations, shortening, escaping, markdown → mrkdwn → plain text."""

from __future__ import annotations

import pytest

from bot.slack.text import (
    format_duration,
    markdown_to_mrkdwn,
    mrkdwn_to_text,
    plural,
    sentence,
    shorten,
    shorten_mrkdwn,
    slack_escape,
    slack_unescape,
    ts_key,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (-5, "0 s"),
        (40, "40 s"),
        (59.9, "59 s"),
        (60, "1 min"),
        (130, "2 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
        (97200, "1 d 3 h"),
        (86400 * 2, "2 d"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_shorten() -> None:
    assert shorten("short", 10) == "short"
    assert shorten("hello wonderful world", 16) == "hello wonderful…"
    assert len(shorten("x" * 100, 10)) == 10
    assert shorten("anything", 0) == ""


def test_slack_escape() -> None:
    assert slack_escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"


def test_markdown_code_is_left_alone() -> None:
    assert markdown_to_mrkdwn("`**x**` and **y**") == "`**x**` and *y*"
    assert markdown_to_mrkdwn("- a\n- b") == "• a\n• b"
    assert markdown_to_mrkdwn("*it*") == "_it_"


def test_mrkdwn_to_text() -> None:
    assert mrkdwn_to_text("Usage: `/codegen status &lt;run id&gt;`") == (
        "Usage: `/codegen status <run id>`"
    )
    assert mrkdwn_to_text("<@U1> see <https://x.example>") == "@U1 see https://x.example"


def test_unescape_is_the_inverse_of_escape() -> None:
    typed = "a <b> & <@U1> &amp; c"
    assert slack_unescape(slack_escape(typed)) == typed


def test_timestamps_order_without_float_rounding() -> None:
    assert ts_key("1700000000.000100") < ts_key("1700000000.000101") < ts_key("1700000001.0")
    assert ts_key("1700000000.1") == (1700000000, 100000)
    assert ts_key("not a ts") == (0, 0)


def test_plural_counts_without_parentheses() -> None:
    assert plural(1, "attachment") == "1 attachment"
    assert plural(3, "attachment") == "3 attachments"
    assert plural(0, "run") == "0 runs"
    assert plural(2, "repository", "repositories") == "2 repositories"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Codegen refused repo_id", "Codegen refused repo_id."),
        ("Done.", "Done."),
        ("Which run?", "Which run?"),
        ("see `x`", "see `x`"),
        ("", ""),
    ],
)
def test_sentence_ends_with_its_period(text: str, expected: str) -> None:
    assert sentence(text) == expected


def test_shorten_mrkdwn_never_cuts_inside_markup() -> None:
    reason = (
        "No repository `acme/webbbbbbbbbbbbbbb` in this Codegen organization. Closest: `acme/web`"
    )
    cut = shorten_mrkdwn(reason, 40)
    assert cut.count("`") % 2 == 0 and cut.endswith("…") and len(cut) <= 40
    assert cut == "No repository `acme/webbbbbbbbbbbbbbb`…"
    linked = shorten_mrkdwn("see <https://example.com/a/very/long/path|the run> for more", 30)
    assert "<" not in linked and linked.endswith("…")
    assert shorten_mrkdwn("short `code`", 80) == "short `code`"
