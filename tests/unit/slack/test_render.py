"""Block Kit rendering: what a person sees on the card and in the final reply, within limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.codegen.models import AgentRunResponse
from bot.intake.options import resolve_options
from bot.requests import ResolvedOptions, RunOptions
from bot.slack.render import (
    BLOCKS_LIMIT,
    BUTTON_TEXT_LIMIT,
    CONTEXT_ELEMENTS_LIMIT,
    PR_BUTTONS_LIMIT,
    SECTION_TEXT_LIMIT,
    TEXT_FALLBACK_LIMIT,
    CardView,
    ProgressStep,
    PullRequestMark,
    RenderedMessage,
    render_card,
    render_final_reply,
    status_emoji,
)
from tests.harness import block_texts

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WEB_URL = "https://codegen.com/agent/trace/123"


def _options() -> ResolvedOptions:
    return resolve_options(
        RunOptions(repo="42"),
        RunOptions(agent_type="claude_code"),
        RunOptions(),
    )


def _view(phase: str, **extra: Any) -> CardView:
    fields: dict[str, Any] = {
        "phase": phase,
        "prompt": "fix the flaky login test",
        "requester_id": "U123",
        "options": _options(),
        "repo_label": "acme/web",
        "created_at": NOW - timedelta(minutes=3),
    }
    fields.update(extra)
    return CardView(**fields)


def _all_text(message: RenderedMessage) -> str:
    """Every piece of text in the blocks, as Slack would show it (mrkdwn, unrendered)."""
    return "\n".join(block_texts(message.blocks))


def _buttons(message: RenderedMessage) -> list[dict[str, Any]]:
    return [
        element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["type"] == "button"
    ]


def _assert_within_limits(message: RenderedMessage) -> None:
    assert len(message.blocks) <= BLOCKS_LIMIT
    assert 0 < len(message.text) <= TEXT_FALLBACK_LIMIT
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_TEXT_LIMIT
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= CONTEXT_ELEMENTS_LIMIT
            for element in block["elements"]:
                assert len(element["text"]) <= SECTION_TEXT_LIMIT
        for button in _buttons(RenderedMessage(text="x", blocks=[block])):
            assert len(button["text"]["text"]) <= BUTTON_TEXT_LIMIT
    json.dumps(message.blocks)  # plain JSON, ready for the Web API


# -- the card, phase by phase ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (_view("queued"), ["⏳", "Queued"]),
        (
            _view("waiting", queue_ahead=3, eta_seconds=40),
            ["🕒", "Waiting", "queued, 3 ahead, starts in about 40 s"],
        ),
        (_view("waiting", queue_ahead=0, eta_seconds=4.2), ["next in line", "starts in about 5 s"]),
        (_view("waiting"), ["queued behind the rate limit", "starts soon"]),
        (_view("dispatching"), ["Starting", "sending the request to Codegen"]),
        (
            _view(
                "running",
                status="RUNNING",
                run_id=123,
                web_url=WEB_URL,
                started_at=NOW - timedelta(seconds=130),
            ),
            ["🏃", "Running", "running for 2 min", f"<{WEB_URL}|#123>"],
        ),
        (_view("running", status="EVALUATION", run_id=123), ["⚙️", "Evaluating"]),
        (_view("running", status="PENDING", run_id=123), ["⏳"]),
        (
            _view("paused", status="PAUSED", run_id=123),
            ["⏸️", "Paused", "waiting for your reply in this thread", "started 3 min ago"],
        ),
        (
            _view(
                "complete",
                status="COMPLETE",
                run_id=123,
                started_at=NOW - timedelta(minutes=65),
                finished_at=NOW - timedelta(minutes=0),
            ),
            ["✅", "Complete", "finished in 1 h 5 min"],
        ),
        (_view("failed", status="TIMEOUT", run_id=123), ["❌", "Failed", "`TIMEOUT`"]),
        (_view("stopped", status="CANCELLED", run_id=123), ["⏹️", "Cancelled", "after"]),
        (
            _view("stopped", status="STOPPED", run_id=123, stop_requested_by="U0BOB"),
            ["⏹️", "Stopped", "by <@U0BOB> after"],
        ),
        (
            _view(
                "error", error="Alloted agent runs for the current billing plan have been reached."
            ),
            ["🚫", "Couldn't start the run", "Alloted agent runs"],
        ),
        (
            _view("tracking_stopped", status="RUNNING", run_id=123, note="Stopped after 24 h."),
            ["🛑", "No longer following this run", "`RUNNING`", "Stopped after 24 h."],
        ),
        (
            _view("tracking_stopped", status="RUNNING", error="the run passed its maximum age"),
            ["🛑", "the run passed its maximum age (last status `RUNNING`)", "Check it in Codegen"],
        ),
        (
            _view("failed", status="FAILED", error="agent crashed <oops>"),
            ["❌", "agent crashed &lt;oops&gt;"],
        ),
    ],
)
def test_card_phases(view: CardView, expected: list[str]) -> None:
    message = render_card(view, now=NOW)
    shown = _all_text(message)
    for part in expected:
        assert part in shown
    # The notification fallback leads with the same emoji as the card.
    assert message.text.split()[0] == message.blocks[0]["text"]["text"].split()[0]
    _assert_within_limits(message)


@pytest.mark.parametrize("phase", ["running", "failed"])
def test_unknown_status_shown_as_it_is(phase: str) -> None:
    message = render_card(_view(phase, status="SOMETHING_NEW", run_id=5), now=NOW)
    shown = _all_text(message)
    assert "⚠️" in shown
    assert "`SOMETHING_NEW`" in shown
    assert message.text.startswith("⚠️")


def test_card_shows_who_asked_options_and_sources() -> None:
    message = render_card(_view("running", status="RUNNING", run_id=1), now=NOW)
    shown = _all_text(message)
    assert "<@U123>" in shown
    assert "repo `acme/web` (inline)" in shown  # the label, not the id 42
    assert "model: org default" in shown
    assert "agent `claude_code` (channel default)" in shown


def test_card_without_repo_label_shows_the_value() -> None:
    view = _view("queued", repo_label=None)
    assert "repo `42` (inline)" in _all_text(render_card(view, now=NOW))


def test_card_org_default_from_settings() -> None:
    options = resolve_options(RunOptions(), None, RunOptions(model="gpt-5"))
    message = render_card(_view("queued", options=options, repo_label=None), now=NOW)
    shown = _all_text(message)
    assert "model `gpt-5` (org default)" in shown
    assert "repo: org default" in shown


def test_view_run_button_only_when_the_url_is_known() -> None:
    with_url = render_card(_view("running", run_id=1, web_url=WEB_URL), now=NOW)
    assert [(b["text"]["text"], b["url"]) for b in _buttons(with_url)] == [("View run", WEB_URL)]
    without = render_card(_view("queued"), now=NOW)
    assert _buttons(without) == []
    # Only http(s) URLs become buttons or links.
    odd = render_card(_view("running", run_id=1, web_url="javascript:alert(1)"), now=NOW)
    assert _buttons(odd) == []
    assert "javascript:" not in _all_text(odd)


def test_prompt_cannot_ping_or_link() -> None:
    prompt = "<!channel> look at <https://evil.example|this> & <@U999>"
    message = render_card(_view("queued", prompt=prompt), now=NOW)
    shown = _all_text(message)
    assert "<!channel>" not in shown
    assert "&lt;!channel&gt;" in shown
    assert "<https://evil.example|this>" not in shown
    assert "<@U999>" not in shown
    assert "&amp;" in shown
    assert "<!channel>" not in message.text
    # The only mention is the requester, added by the bot.
    assert shown.count("<@") == 1


def test_progress_lines_are_escaped_one_line_each_and_only_while_running() -> None:
    steps = (
        ProgressStep(tool="file_edit", thought="Ping <!channel> & <https://evil.example|here>"),
        ProgressStep(tool="run`command", thought="first line\nsecond line " + "x" * 400),
        *(ProgressStep(tool=f"tool_{n}", thought="") for n in range(6)),
    )
    running = render_card(_view("running", run_id=1000, progress=steps, plan_blocks=False), now=NOW)
    [block] = [b for b in running.blocks if "Latest steps" in json.dumps(b)]
    [element] = block["elements"]
    lines = element["text"].split("\n")[1:]
    assert len(lines) == 5  # at most five, in the order given (newest first)
    assert lines[0].startswith("`file_edit` — Ping &lt;!channel&gt; &amp; &lt;https:")
    assert "<!channel>" not in element["text"] and "<https://evil" not in element["text"]
    assert lines[1].startswith("`run'command` — first line second line xxx")
    assert len(lines[1]) < 170 and lines[1].endswith("…")
    assert lines[2] == "`tool_0`"
    for phase in ("paused", "complete", "failed"):
        shown = render_card(_view(phase, run_id=1000, progress=steps), now=NOW)
        assert "Latest steps" not in _all_text(shown)
        assert all(b["type"] != "plan" for b in shown.blocks)


def test_progress_as_a_plan_block_is_plain_text_one_task_card_a_step() -> None:
    steps = (
        ProgressStep(tool="file_edit", thought="Ping <!channel>\nand more " + "y" * 400),
        *(ProgressStep(tool=f"tool_{n}", thought="") for n in range(6)),
    )
    running = render_card(_view("running", run_id=1000, progress=steps), now=NOW)
    [plan] = [b for b in running.blocks if b["type"] == "plan"]
    assert plan["title"] == "Latest steps"
    tasks = plan["tasks"]
    assert [t["task_id"] for t in tasks] == [f"step-{n}" for n in range(5)]
    assert [t["status"] for t in tasks] == ["in_progress", *["complete"] * 4]
    # Plain text: shown as typed, never a ping or a link; one line, shortened.
    assert tasks[0]["title"].startswith("file_edit — Ping <!channel> and more yyy")
    assert tasks[0]["title"].endswith("…") and len(tasks[0]["title"]) < 170
    assert tasks[1]["title"] == "tool_0"
    assert "Latest steps" not in json.dumps([b for b in running.blocks if b["type"] != "plan"])


def test_long_prompt_is_shortened_and_multiline_prompt_quoted() -> None:
    message = render_card(_view("queued", prompt="word " * 5000), now=NOW)
    _assert_within_limits(message)
    assert "…" in _all_text(message)
    quoted = render_card(_view("queued", prompt="one\ntwo"), now=NOW)
    assert ">one\n>two" in _all_text(quoted)


def test_card_error_is_escaped_and_limited() -> None:
    message = render_card(_view("error", error="<!here> " + "x" * 10_000), now=NOW)
    _assert_within_limits(message)
    assert "<!here>" not in _all_text(message)


def test_naive_datetimes_are_treated_as_utc() -> None:
    naive_start = (NOW - timedelta(minutes=2)).replace(tzinfo=None)
    view = _view("running", status="RUNNING", started_at=naive_start)
    assert "running for 2 min" in _all_text(render_card(view, now=NOW))


# -- the final reply ---------------------------------------------------------------------------


def _run(**extra: Any) -> AgentRunResponse:
    fields: dict[str, Any] = {
        "id": 123,
        "organization_id": 1,
        "status": "COMPLETE",
        "created_at": "2026-01-01T11:48:00Z",
        "web_url": WEB_URL,
        "summary": "Fixed the flaky login test by waiting for the session cookie.",
    }
    fields.update(extra)
    return AgentRunResponse.model_validate(fields)


def test_final_reply_success_with_pull_requests() -> None:
    run = _run(
        github_pull_requests=[
            {
                "id": 1,
                "title": "Fix flaky login test",
                "url": "https://github.com/acme/web/pull/7",
                "created_at": "2026-01-01T11:59:00Z",
                "head_branch_name": "codegen/fix-login",
            },
            {
                "id": 2,
                "title": "Docs <b> & more",
                "url": "https://github.com/acme/web/pull/8",
                "created_at": "2026-01-01T11:59:00Z",
                "head_branch_name": None,
            },
            {"id": 3, "title": None, "url": None, "created_at": "x"},
        ]
    )
    message = render_final_reply(run=run, requester_id="U123", now=NOW)
    shown = _all_text(message)
    assert "<@U123>" in shown
    assert "✅" in shown
    assert "complete" in shown
    assert f"<{WEB_URL}|#123>" in shown
    assert "waiting for the session cookie" in shown
    assert (
        "<https://github.com/acme/web/pull/7|Fix flaky login test> · `codegen/fix-login`" in shown
    )
    assert "<https://github.com/acme/web/pull/8|Docs &lt;b&gt; &amp; more>" in shown
    assert "Pull request 3" in shown
    assert "ran for about 12 min" in shown
    assert [b["url"] for b in _buttons(message)] == [WEB_URL]
    assert message.text.startswith("✅ <@U123>")
    assert "3 pull requests" in message.text
    _assert_within_limits(message)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("FAILED", ["❌", "failed", "`FAILED`"]),
        ("CANCELLED", ["⏹️", "was cancelled"]),
        ("STOPPED", ["⏹️", "was stopped"]),
        ("TIMEOUT", ["❌", "`TIMEOUT`"]),
        ("SOMETHING_NEW", ["⚠️", "`SOMETHING_NEW`"]),
        ("PAUSED", ["⏸️", "waiting for your reply in this thread"]),
    ],
)
def test_final_reply_states(status: str, expected: list[str]) -> None:
    message = render_final_reply(run=_run(status=status), requester_id="U1", now=NOW)
    shown = _all_text(message)
    for part in expected:
        assert part in shown


def test_final_reply_failure_explains_with_summary_and_result() -> None:
    run = _run(status="FAILED", summary="Could not push.", result="remote: Permission denied")
    shown = _all_text(render_final_reply(run=run, requester_id="U1", now=NOW))
    assert "Could not push." in shown
    assert "remote: Permission denied" in shown


def test_failure_keeps_its_result_when_the_summary_is_long() -> None:
    run = _run(status="FAILED", summary="word " * 5000, result="remote: Permission denied")
    message = render_final_reply(run=run, requester_id="U1", now=NOW)
    _assert_within_limits(message)
    shown = _all_text(message)
    assert "truncated" in shown
    assert "*Details*\nremote: Permission denied" in shown


def test_final_reply_failure_with_only_a_result() -> None:
    run = _run(status="ERROR", summary=None, result="The sandbox ran out of memory.")
    shown = _all_text(render_final_reply(run=run, requester_id="U1", now=NOW))
    assert "The sandbox ran out of memory." in shown


def test_final_reply_without_summary() -> None:
    run = _run(summary=None, result=None, created_at=None, web_url=None)
    message = render_final_reply(run=run, requester_id="U1", now=NOW)
    assert "no summary" in _all_text(message)
    assert _buttons(message) == []
    _assert_within_limits(message)


def test_long_summary_is_truncated_with_a_link_to_the_run() -> None:
    summary = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 40 for i in range(25))
    assert len(summary) >= 10_000
    message = render_final_reply(run=_run(summary=summary), requester_id="U1", now=NOW)
    _assert_within_limits(message)
    shown = _all_text(message)
    assert "truncated" in shown
    assert f"<{WEB_URL}|see the full run>" in shown
    assert "Paragraph 0:" in shown
    assert "Paragraph 24:" not in shown


def test_long_summary_without_spaces_or_url() -> None:
    message = render_final_reply(
        run=_run(summary="x" * 10_000, web_url=None), requester_id="U1", now=NOW
    )
    _assert_within_limits(message)
    assert "… (truncated, see the full run)" in _all_text(message)


def test_long_code_block_keeps_fences_balanced() -> None:
    summary = "```\n" + "\n".join(f"line {i} <tag> & stuff" for i in range(600)) + "\n```"
    message = render_final_reply(run=_run(summary=summary), requester_id="U1", now=NOW)
    _assert_within_limits(message)
    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    body = sections[1:]
    assert len(body) >= 2
    for text in body:
        assert text.count("```") % 2 == 0
        # never cut inside an entity
        assert not text.rstrip("`\n").endswith(("&lt", "&am", "&g"))


def test_many_pull_requests_stay_within_block_limits() -> None:
    prs = [
        {
            "id": i,
            "title": f"Change number {i} " + "t" * 150,
            "url": f"https://github.com/acme/web/pull/{i}",
            "created_at": "x",
            "head_branch_name": f"codegen/change-{i}",
        }
        for i in range(1000)
    ]
    message = render_final_reply(
        run=_run(github_pull_requests=prs, summary="s" * 9000), requester_id="U1", now=NOW
    )
    _assert_within_limits(message)
    shown = _all_text(message)
    assert "Pull requests (1000)" in shown
    assert "more pull requests" in shown
    assert message.blocks[-1]["type"] == "context"  # nothing important was cut off


def test_pull_request_buttons_stay_within_block_limits_and_the_count_stays_right() -> None:
    prs = [
        {"id": 500 + i, "title": f"Change {i}", "url": f"https://github.com/a/b/pull/{i}"}
        for i in range(40)
    ]
    marks = {501: PullRequestMark(state="closed", set_by="U2")}
    message = render_final_reply(
        run=_run(github_pull_requests=[{**pr, "created_at": "x"} for pr in prs]),
        requester_id="U1",
        now=NOW,
        pr_buttons=True,
        pr_marks=marks,
    )
    _assert_within_limits(message)
    rows = [b for b in message.blocks if str(b.get("block_id", "")).startswith("pr:")]
    assert [b["block_id"] for b in rows] == [f"pr:{500 + i}" for i in range(PR_BUTTONS_LIMIT)]
    assert [e["action_id"] for e in rows[1]["elements"]] == ["pr_reopen"]  # closed by U2
    assert {e["value"] for e in rows[0]["elements"]} == {"123:500"}
    shown = _all_text(message)
    assert "*Closed*, set by <@U2>" in shown
    # Every pull request is listed once, with or without buttons.
    assert all(f"Change {i}>" in shown for i in range(40))
    assert "more pull request" not in shown


def test_summary_markdown_becomes_mrkdwn_and_is_escaped() -> None:
    run = _run(
        summary="## Done\nI **fixed** it, see [the PR](https://x.example/p?a=1&b=2).\n<!channel>"
    )
    shown = _all_text(render_final_reply(run=run, requester_id="U1", now=NOW))
    assert "*Done*" in shown
    assert "*fixed*" in shown
    assert "<https://x.example/p?a=1&amp;b=2|the PR>" in shown
    assert "<!channel>" not in shown


@pytest.mark.parametrize(
    ("status", "emoji"),
    [
        (None, "⏳"),
        ("PENDING", "⏳"),
        ("RUNNING", "🏃"),
        ("ACTIVE", "🏃"),
        ("EVALUATION", "⚙️"),
        ("PAUSED", "⏸️"),
        ("COMPLETE", "✅"),
        ("complete", "✅"),
        ("FAILED", "❌"),
        ("ERROR", "❌"),
        ("SOMETHING_NEW", "⚠️"),
    ],
)
def test_status_emoji(status: str | None, emoji: str) -> None:
    assert status_emoji(status) == emoji
