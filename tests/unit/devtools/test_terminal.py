"""The terminal view of Block Kit: what the console prints for a card or a reply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.devtools.terminal import render_text
from bot.intake.options import resolve_options
from bot.requests import RunOptions
from bot.slack.render import CardView, ProgressStep, RenderedMessage, render_card

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WEB_URL = "https://codegen.com/agent/trace/123"


def running_view() -> CardView:
    return CardView(
        phase="running",
        status="RUNNING",
        run_id=123,
        web_url=WEB_URL,
        prompt="fix <this> & that",
        requester_id="U123",
        options=resolve_options(
            RunOptions(repo="42"), RunOptions(agent_type="claude_code"), RunOptions()
        ),
        repo_label="acme/web",
        created_at=NOW - timedelta(minutes=3),
        started_at=NOW - timedelta(seconds=130),
    )


def test_render_text_of_a_card_is_readable() -> None:
    text = render_text(render_card(running_view(), now=NOW))
    lines = text.splitlines()
    assert lines[0] == f"🏃 *Running*: running for 2 min · run #123 ({WEB_URL})"
    assert ">fix <this> & that" in lines
    assert "Requested by @U123 · repo `acme/web` (inline)" in text
    assert f"[View run] {WEB_URL}" in lines
    assert "&lt;" not in text and "&amp;" not in text


def test_render_text_shows_a_cards_latest_steps_as_a_plan_or_as_lines() -> None:
    steps = (
        ProgressStep(tool="file_edit", thought="Updating the login handler"),
        ProgressStep(tool="ripgrep_search", thought="Looking for the session cookie"),
    )
    as_plan = render_text(
        render_card(running_view().model_copy(update={"progress": steps}), now=NOW)
    )
    lines = as_plan.splitlines()
    start = lines.index("Latest steps")
    assert lines[start + 1 : start + 3] == [
        "  ▸ file_edit — Updating the login handler",
        "  ✓ ripgrep_search — Looking for the session cookie",
    ]
    plain = running_view().model_copy(update={"progress": steps, "plan_blocks": False})
    as_lines = render_text(render_card(plain, now=NOW))
    assert "*Latest steps*" in as_lines
    assert "`file_edit` — Updating the login handler" in as_lines


def test_render_text_of_fields_header_divider_and_fallback() -> None:
    message = RenderedMessage(
        text="fallback",
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "Title"}},
            {"type": "divider"},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Repo*\n<https://github.com/a/b|a/b>"},
                    {"type": "plain_text", "text": "two"},
                ],
                "accessory": {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open"},
                    "url": "https://x.example",
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "<!here> <#C1|general>"}]},
        ],
    )
    text = render_text(message)
    assert "Title\n=====" in text
    assert "-" * 40 in text
    assert "a/b (https://github.com/a/b)" in text
    assert "  two" in text
    assert "[Open] https://x.example" in text
    assert "@here #general" in text
    assert render_text(RenderedMessage(text="just &lt;text&gt;", blocks=[])) == "just <text>"
