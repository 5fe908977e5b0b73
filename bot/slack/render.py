"""Pure Block Kit: the status card, the final reply, and a slash command's root message.

No I/O and no clock: `now` is an argument. Everything a person typed, and everything the agent
wrote, is escaped before it reaches mrkdwn (bot.slack.text), so a prompt cannot ping
`<!channel>` or forge a link. Every limit Slack enforces is respected here, so a long prompt or
summary never turns into an `invalid_blocks` error at the edge.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from bot.clock import parse_time, utc
from bot.codegen.models import (
    AgentRunResponse,
    GithubPullRequestResponse,
    PullRequestState,
    StatusKind,
    classify_status,
    is_stopped,
)
from bot.requests import ResolvedOption, ResolvedOptions, RunRequest
from bot.slack.text import (
    format_duration,
    markdown_to_mrkdwn,
    mrkdwn_to_text,
    safe_url,
    sentence,
    shorten,
    shorten_mrkdwn,
    slack_escape,
)

__all__ = [
    "BLOCKS_LIMIT",
    "BUTTON_TEXT_LIMIT",
    "CONTEXT_ELEMENTS_LIMIT",
    "HEADER_LIMIT",
    "LOGIN_VIEW_ID",
    "PROGRESS_STEPS",
    "PR_ACTION_STATES",
    "PR_CLOSE_ACTION_ID",
    "PR_DRAFT_ACTION_ID",
    "PR_READY_ACTION_ID",
    "PR_REOPEN_ACTION_ID",
    "SECTION_TEXT_LIMIT",
    "STOP_RUN_ACTION_ID",
    "TEXT_FALLBACK_LIMIT",
    "TRUNCATION_NOTE",
    "VIEW_RUN_ACTION_ID",
    "CardView",
    "Phase",
    "ProgressStep",
    "PullRequestMark",
    "RenderedMessage",
    "parse_pr_button_value",
    "render_card",
    "render_final_reply",
    "render_login_modal",
    "render_request_root",
    "status_emoji",
]

# Slack's limits (https://api.slack.com/reference/block-kit).
SECTION_TEXT_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
CONTEXT_ELEMENTS_LIMIT = 10
BLOCKS_LIMIT = 50
TEXT_FALLBACK_LIMIT = 4000

# Our own budgets, well inside those limits, so a thread stays readable.
PROMPT_PREVIEW_CHARS = 500
ERROR_CHARS = 1500
FINAL_BODY_CHARS = 6000
# Slack counts some characters (emoji) as two; leave room when splitting long text.
_CHUNK_CHARS = SECTION_TEXT_LIMIT - 100

TRUNCATION_NOTE = "… (truncated, see the full run)"
# A running card's latest steps from Codegen's logs: at most this many, each thought on one
# line of at most PROGRESS_THOUGHT_CHARS.
PROGRESS_STEPS = 5
PROGRESS_TITLE = "Latest steps"
PLAN_BLOCK = "plan"
PROGRESS_THOUGHT_CHARS = 140
VIEW_RUN_ACTION_ID = "view_run"
STOP_RUN_ACTION_ID = "stop_run"
# The final reply's buttons on each pull request: the state each one asks Codegen for.
PR_READY_ACTION_ID = "pr_ready_for_review"
PR_DRAFT_ACTION_ID = "pr_draft"
PR_CLOSE_ACTION_ID = "pr_close"
PR_REOPEN_ACTION_ID = "pr_reopen"
PR_ACTION_STATES: dict[str, PullRequestState] = {
    PR_READY_ACTION_ID: "ready_for_review",
    PR_DRAFT_ACTION_ID: "draft",
    PR_CLOSE_ACTION_ID: "closed",
    PR_REOPEN_ACTION_ID: "open",
}
# How a state set from a button reads in the reply.
PR_STATE_LABELS: dict[str, str] = {
    "ready_for_review": "Ready for review",
    "draft": "Draft",
    "closed": "Closed",
    "open": "Reopened",
}
# The buttons that still make sense after each state (None: nobody set one yet).
_PR_BUTTONS: dict[str | None, tuple[str, ...]] = {
    None: (PR_READY_ACTION_ID, PR_DRAFT_ACTION_ID, PR_CLOSE_ACTION_ID),
    "open": (PR_READY_ACTION_ID, PR_DRAFT_ACTION_ID, PR_CLOSE_ACTION_ID),
    "ready_for_review": (PR_DRAFT_ACTION_ID, PR_CLOSE_ACTION_ID),
    "draft": (PR_READY_ACTION_ID, PR_CLOSE_ACTION_ID),
    "closed": (PR_REOPEN_ACTION_ID,),
}
_PR_BUTTON_TEXT = {
    PR_READY_ACTION_ID: "Ready for review",
    PR_DRAFT_ACTION_ID: "Draft",
    PR_CLOSE_ACTION_ID: "Close",
    PR_REOPEN_ACTION_ID: "Reopen",
}
# Pull requests that get buttons of their own (a section and an actions block each); any
# more are listed without.
PR_BUTTONS_LIMIT = 10
# The login modal: its callback id, and the input's block and action ids.
LOGIN_VIEW_ID = "codegen_login"
LOGIN_BLOCK_ID = "token"
LOGIN_INPUT_ID = "token_input"
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{1,20}$")

Phase = Literal[
    "queued",  # committed, waiting for the dispatcher
    "waiting",  # queued behind the create rate limit
    "dispatching",  # create/resume in flight
    "running",
    "paused",  # the agent waits for a reply in the thread
    "complete",
    "failed",
    "stopped",  # STOPPED or CANCELLED: someone ended it
    "error",  # the request failed before or at create (402/403/422 …); `error` says why
    "tracking_stopped",  # watchdog / max age: the bot no longer follows the run
]


class ProgressStep(BaseModel):
    """One step of a run as its card shows it: the tool and what the agent thought (plain
    text, escaped here when rendered)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    tool: str
    thought: str = ""


class CardView(BaseModel):
    """Everything the status card shows; built by bot.slack.cards from the stored request or
    run."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    phase: Phase
    status: str | None = None  # the raw Codegen status, shown as-is when unknown
    prompt: str
    requester_id: str
    # Whose message was sent to Codegen, when not the requester's (the message shortcut).
    author_id: str | None = None
    run_id: int | None = None
    web_url: str | None = None
    options: ResolvedOptions = ResolvedOptions()
    repo_label: str | None = None  # "acme/web" when `options.repo` is an id
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue_ahead: int | None = None
    eta_seconds: float | None = None
    error: str | None = None
    note: str | None = None
    # A note that stays with the run for good (a follow-up that became a new run).
    follow_note: str | None = None
    # Who asked Codegen to stop it (accepted): shown until it ends, then as who stopped it.
    stop_requested_by: str | None = None
    # Offer the Stop button (the run is going, and Codegen has not refused a stop here).
    stoppable: bool = False
    # In a DM every message is a request; elsewhere only a mention (or an answer to a pause).
    in_dm: bool = False
    # The run's newest steps, newest first (shown only while it runs).
    progress: tuple[ProgressStep, ...] = ()
    # Show them as Slack's plan block (a task card each) rather than context lines: False
    # where the workspace refused plan blocks (bot.slack.cards).
    plan_blocks: bool = True


class PullRequestMark(BaseModel):
    """A state someone set a pull request to from the final reply, and who."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    state: str
    set_by: str


class RenderedMessage(BaseModel):
    """What chat.postMessage / chat.update take: `text` is the notification fallback."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    text: str
    blocks: list[dict[str, Any]]


# -- helpers ---------------------------------------------------------------------------------


_STATUS_EMOJI = {
    "PENDING": "⏳",
    "ACTIVE": "🏃",
    "RUNNING": "🏃",
    "EVALUATION": "⚙️",
    "PAUSED": "⏸️",
    "COMPLETE": "✅",
    "STOPPED": "⏹️",
    "CANCELLED": "⏹️",
}


def status_emoji(status: str | None) -> str:
    """The emoji for a raw Codegen status; ⚠️ for a value we do not know."""
    if status is None or not status.strip():
        return "⏳"
    known = _STATUS_EMOJI.get(status.strip().upper())
    if known is not None:
        return known
    kind = classify_status(status)
    return "❌" if kind is StatusKind.FAILURE else "⚠️"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (utc(end) - utc(start)).total_seconds())


def _code(text: str) -> str:
    """Inline code for a short value (status, branch, option) that cannot break out of it."""
    cleaned = slack_escape(text.replace("`", "'").replace("\n", " ").strip())
    return f"`{shorten(cleaned, 200)}`"


def _link(url: str | None, text: str) -> str:
    """mrkdwn link; `text` must already be escaped."""
    safe = safe_url(url)
    return f"<{safe}|{text}>" if safe else text


def _quote(text: str) -> str:
    """A block quote of user text (escaped, shortened)."""
    body = slack_escape(shorten(text.strip(), PROMPT_PREVIEW_CHARS)) or "_(no prompt)_"
    return "\n".join(f">{line}" if line else ">" for line in body.split("\n"))


# mrkdwn tokens that must not be cut in half.
_TOKEN_START = re.compile(r"<[^>]*$|&[a-z#0-9]{0,6}$")


def _cut_point(text: str, limit: int) -> int:
    """Where to cut mrkdwn text to fit `limit`: a paragraph, line or word boundary, never inside a
    `<…>` token or an `&…;` entity."""
    if len(text) <= limit:
        return len(text)
    window = text[:limit]
    cut = limit
    for boundary in ("\n\n", "\n", " "):
        found = window.rfind(boundary)
        if found >= limit * 0.6:
            cut = found
            break
    token = _TOKEN_START.search(text[:cut])
    if token is not None and token.start() > 0:
        cut = token.start()
    return cut


def _fit(text: str, limit: int) -> str:
    """Cut mrkdwn text to `limit` (a last guard; callers budget well below it)."""
    if len(text) <= limit:
        return text
    cut = _cut_point(text, limit - 1)
    return text[:cut].rstrip() + "…"


def _split(text: str, size: int) -> list[str]:
    """Split mrkdwn into pieces of at most `size`, keeping ``` fences balanced in each piece."""
    pieces: list[str] = []
    reopen = False
    rest = text
    while rest:
        prefix = "```\n" if reopen else ""
        room = size - len(prefix) - len("\n```")
        cut = _cut_point(rest, room)
        if cut <= 0:
            cut = room
        piece, rest = prefix + rest[:cut].rstrip(), rest[cut:].lstrip("\n")
        reopen = piece.count("```") % 2 == 1
        if reopen:
            piece += "\n```"
        if piece.strip():
            pieces.append(piece)
    return pieces


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _fit(text, SECTION_TEXT_LIMIT)}}


def _context(parts: list[str]) -> dict[str, Any]:
    parts = [p for p in parts if p][:CONTEXT_ELEMENTS_LIMIT]
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _fit(p, SECTION_TEXT_LIMIT)} for p in parts],
    }


def _mention(user_id: str | None) -> str:
    """`<@U…>` for a Slack user id; anything else is escaped text, never markup."""
    if user_id and _SLACK_ID.match(user_id):
        return f"<@{user_id}>"
    return slack_escape(user_id or "someone")


def _view_button(web_url: str | None) -> dict[str, Any] | None:
    if not web_url or safe_url(web_url) is None:
        return None
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": "View run", "emoji": True},
        "url": web_url.strip(),
        "action_id": VIEW_RUN_ACTION_ID,
    }


def _stop_button(run_id: int) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": "Stop", "emoji": True},
        "style": "danger",
        "value": str(run_id),
        "action_id": STOP_RUN_ACTION_ID,
        "confirm": {
            "title": {"type": "plain_text", "text": "Stop this run?"},
            "text": {
                "type": "mrkdwn",
                "text": f"Codegen will be asked to stop run #{run_id}. Work it has pushed stays.",
            },
            "confirm": {"type": "plain_text", "text": "Stop it"},
            "deny": {"type": "plain_text", "text": "Keep it running"},
        },
    }


def _actions(buttons: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    elements = [b for b in buttons if b is not None]
    return {"type": "actions", "elements": elements} if elements else None


def _fallback(text: str) -> str:
    return _fit(text, TEXT_FALLBACK_LIMIT)


# -- the status card -------------------------------------------------------------------------


def _describe_option(name: str, option: ResolvedOption, label: str | None = None) -> str:
    if option.value is None:
        return f"{name}: org default"
    shown = _code(label or option.value)
    return f"{name} {shown} ({option.source})" if option.source else f"{name} {shown}"


def _headline(view: CardView, now: datetime) -> tuple[str, str, str]:
    """(emoji, label, detail) for the top line of the card."""
    since_created = _seconds(view.created_at, now) or 0.0
    running_for = _seconds(view.started_at or view.created_at, view.finished_at or now) or 0.0
    status = (view.status or "").strip()
    kind = classify_status(status or None)
    shown_status = _code(status) if status else ""

    if view.phase == "queued":
        return "⏳", "Queued", f"waiting to start (queued {format_duration(since_created)} ago)"
    if view.phase == "waiting":
        if view.queue_ahead is None:
            position = "queued behind the rate limit"
        elif view.queue_ahead <= 0:
            position = "queued, next in line"
        else:
            position = f"queued, {view.queue_ahead} ahead"
        if view.eta_seconds is None:
            starts = "starts soon"
        elif view.eta_seconds < 1:
            starts = "starts in a moment"
        else:
            starts = f"starts in about {format_duration(math.ceil(view.eta_seconds))}"
        return "🕒", "Waiting", f"{position}, {starts}"
    if view.phase == "dispatching":
        return "🚀", "Starting", "sending the request to Codegen"
    if view.phase == "error":
        reason = slack_escape(shorten((view.error or "").strip(), ERROR_CHARS))
        return "🚫", "Couldn't start the run", sentence(reason) or "the request failed."
    if kind is StatusKind.UNKNOWN and view.phase in ("running", "failed", "complete"):
        return "⚠️", "Unknown status", f"{shown_status} after {format_duration(running_for)}"
    if view.phase == "running":
        label = {"PENDING": "Starting", "EVALUATION": "Evaluating"}.get(status.upper(), "Running")
        return (
            status_emoji(status or "RUNNING"),
            label,
            f"running for {format_duration(running_for)}",
        )
    if view.phase == "paused":
        return "⏸️", "Paused", "waiting for your reply in this thread"
    if view.phase == "complete":
        return "✅", "Complete", f"finished in {format_duration(running_for)}"
    if view.phase == "failed":
        detail = f"status {shown_status} " if status else ""
        return "❌", "Failed", f"{detail}after {format_duration(running_for)}"
    if view.phase == "stopped":
        label = "Cancelled" if status.upper() == "CANCELLED" else "Stopped"
        by = f"by {_mention(view.stop_requested_by)} " if view.stop_requested_by else ""
        return "⏹️", label, f"{by}after {format_duration(running_for)}"
    # tracking_stopped: `error` says why (watchdog, maximum age) when the caller knows
    last = f" (last status {shown_status})" if status else ""
    reason = slack_escape(shorten((view.error or "").strip(), ERROR_CHARS)).rstrip(".")
    if not reason:
        reason = f"it was still going after {format_duration(running_for)}"
    return "🛑", "No longer following this run", f"{reason}{last}. Check it in Codegen."


def _follow_up_hint(view: CardView) -> str:
    """How to go on in this thread, where the card's phase allows it."""
    if view.run_id is None or view.phase in ("queued", "waiting", "dispatching", "error"):
        return ""
    if view.phase == "paused":
        return "To answer, reply in this thread."
    if view.in_dm:
        return "To follow up, reply in this thread."
    return "To follow up, mention @Codegen in this thread."


def _time_note(view: CardView, now: datetime) -> str:
    """How long the run has been going, where the headline does not already say it."""
    if view.phase != "paused":
        return ""
    start = view.started_at or view.created_at
    return f"started {format_duration(_seconds(start, now) or 0.0)} ago"


def _progress_line(step: ProgressStep) -> str:
    """ "`file_edit` — Updating the login handler": the thought on one line, shortened."""
    tool = _code(step.tool or "step")
    thought = shorten_mrkdwn(slack_escape(" ".join(step.thought.split())), PROGRESS_THOUGHT_CHARS)
    return f"{tool} — {thought}" if thought else tool


def _task_card(number: int, step: ProgressStep) -> dict[str, Any]:
    """One step as a plan's task card: plain text, the newest one in progress."""
    thought = shorten(" ".join(step.thought.split()), PROGRESS_THOUGHT_CHARS)
    tool = step.tool or "step"
    return {
        "type": "task_card",
        "task_id": f"step-{number}",
        "title": f"{tool} — {thought}" if thought else tool,
        "status": "in_progress" if number == 0 else "complete",
    }


def _progress(view: CardView) -> dict[str, Any] | None:
    """The latest steps, most recent first (a running card only): Slack's plan block where
    the workspace renders it, context lines otherwise."""
    if view.phase != "running" or not view.progress:
        return None
    steps = view.progress[:PROGRESS_STEPS]
    if view.plan_blocks:
        tasks = [_task_card(n, step) for n, step in enumerate(steps)]
        return {"type": PLAN_BLOCK, "title": PROGRESS_TITLE, "tasks": tasks}
    lines = [_progress_line(step) for step in steps]
    return _context([f"*{PROGRESS_TITLE}*\n" + "\n".join(lines)])


def has_plan_block(message: RenderedMessage) -> bool:
    return any(block.get("type") == PLAN_BLOCK for block in message.blocks)


def _requested_by(view: CardView) -> str:
    """Who asked, and whose message they sent when it was someone else's."""
    asked = f"Requested by {_mention(view.requester_id)}"
    if view.author_id and view.author_id != view.requester_id:
        return f"{asked} from {_mention(view.author_id)}'s message"
    return asked


def render_card(view: CardView, *, now: datetime) -> RenderedMessage:
    """The one status card of a request, edited in place as the run moves on."""
    emoji, label, detail = _headline(view, now)
    title = f"{emoji} *{label}*: {detail}"
    if view.run_id is not None:
        title += f" · run {_link(view.web_url, f'#{view.run_id}')}"

    blocks: list[dict[str, Any]] = [_section(title), _section(_quote(view.prompt))]
    extra = [view.follow_note or "", view.note or ""]
    if view.error and view.phase not in ("error", "tracking_stopped"):
        extra.append(view.error)
    extra = [slack_escape(shorten(e.strip(), ERROR_CHARS)) for e in extra if e.strip()]
    going = view.phase in ("running", "paused")
    if view.stop_requested_by and going:
        extra.insert(0, f"⏹️ Stop requested by {_mention(view.stop_requested_by)}.")
    if extra:
        blocks.append(_context(extra))
    progress = _progress(view)
    if progress is not None:
        blocks.append(progress)
    blocks.append(
        _context(
            [
                _requested_by(view),
                _describe_option("repo", view.options.repo, view.repo_label),
                _describe_option("model", view.options.model),
                _describe_option("agent", view.options.agent_type),
                _time_note(view, now),
                _follow_up_hint(view),
            ]
        )
    )
    stop = None
    if view.stoppable and going and view.run_id is not None and not view.stop_requested_by:
        stop = _stop_button(view.run_id)
    actions = _actions([_view_button(view.web_url), stop])
    if actions is not None:
        blocks.append(actions)

    run = f" #{view.run_id}" if view.run_id is not None else ""
    preview = slack_escape(shorten(" ".join(view.prompt.split()), 150))
    text = f"{emoji} Codegen run{run}: {label}, {detail} · {preview}"
    return RenderedMessage(text=_fallback(text), blocks=blocks[:BLOCKS_LIMIT])


# -- the final reply -------------------------------------------------------------------------


def _final_state(run: AgentRunResponse) -> tuple[str, str, StatusKind]:
    status = (run.status or "").strip()
    kind = classify_status(status or None)
    shown = _code(status) if status else "unknown"
    if kind is StatusKind.SUCCESS:
        return "✅", "is complete", kind
    if is_stopped(status):
        return "⏹️", "was cancelled" if status.upper() == "CANCELLED" else "was stopped", kind
    if kind is StatusKind.FAILURE:
        return "❌", f"failed (status {shown})", kind
    if kind is StatusKind.WAITING_FOR_INPUT:
        return "⏸️", "is paused: it is waiting for your reply in this thread", kind
    if kind is StatusKind.IN_PROGRESS:
        return status_emoji(status), f"is still running (status {shown})", kind
    return "⚠️", f"ended with status {shown}", kind


def _body_parts(run: AgentRunResponse, kind: StatusKind) -> list[tuple[str, int]]:
    """(markdown, budget) pieces of the reply's body; a failure keeps room for its result."""
    summary = (run.summary or "").strip()
    result = (run.result or "").strip()
    failed = kind in (StatusKind.FAILURE, StatusKind.UNKNOWN)
    if failed and summary and result and result != summary:
        details = FINAL_BODY_CHARS // 3
        return [(summary, FINAL_BODY_CHARS - details), (f"**Details**\n{result}", details)]
    body = summary or result
    return [(body, FINAL_BODY_CHARS)] if body else []


def _truncate(mrkdwn: str, budget: int, web_url: str | None) -> str:
    """Cut mrkdwn to `budget`, ending with a note that links to the full run."""
    if len(mrkdwn) <= budget:
        return mrkdwn
    note = TRUNCATION_NOTE
    if safe_url(web_url):
        note = f"… (truncated, {_link(web_url, 'see the full run')})"
    cut = _cut_point(mrkdwn, max(0, budget - len(note) - 10))
    kept = mrkdwn[:cut].rstrip()
    if kept.count("```") % 2:
        kept += "\n```"
    return f"{kept}\n{note}"


def _pr_line(pr: GithubPullRequestResponse, mark: PullRequestMark | None = None) -> str:
    title = " ".join((pr.title or "").split()) or f"Pull request {pr.id}"
    title = slack_escape(shorten(title, 200))
    line = f"• {_link(pr.url, title)}"
    if pr.head_branch_name:
        line += f" · {_code(pr.head_branch_name)}"
    if mark is not None:
        label = PR_STATE_LABELS.get(mark.state, _code(mark.state))
        line += f" · *{label}*, set by {_mention(mark.set_by)}"
    return line


def pr_button_value(run_id: int, pr_id: int) -> str:
    return f"{run_id}:{pr_id}"


def parse_pr_button_value(value: str | None) -> tuple[int, int] | None:
    """(run id, pull request id) from a pull request button's value; None if it is not one."""
    run, _, pr = (value or "").partition(":")
    try:
        return int(run), int(pr)
    except ValueError:
        return None


def _pr_buttons(
    run_id: int, pr: GithubPullRequestResponse, mark: PullRequestMark | None
) -> dict[str, Any]:
    elements: list[dict[str, Any]] = []
    for action_id in _PR_BUTTONS.get(mark.state if mark else None, _PR_BUTTONS[None]):
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": _PR_BUTTON_TEXT[action_id], "emoji": True},
            "value": pr_button_value(run_id, pr.id),
            "action_id": action_id,
        }
        if action_id == PR_CLOSE_ACTION_ID:
            button["confirm"] = {
                "title": {"type": "plain_text", "text": "Close this pull request?"},
                "text": {
                    "type": "mrkdwn",
                    "text": "Codegen will close it on GitHub. It can be reopened from here.",
                },
                "confirm": {"type": "plain_text", "text": "Close it"},
                "deny": {"type": "plain_text", "text": "Keep it open"},
            }
        elements.append(button)
    # One actions block per pull request: its id keeps the action ids apart in the message.
    return {"type": "actions", "block_id": f"pr:{pr.id}", "elements": elements}


def render_final_reply(
    *,
    run: AgentRunResponse,
    requester_id: str,
    now: datetime,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    stopped_by: str | None = None,
    pr_buttons: bool = False,
    pr_marks: dict[int, PullRequestMark] | None = None,
) -> RenderedMessage:
    """The reply posted in the thread when a run ends: state, summary and pull requests.
    How long it ran is `started_at` → `ended_at` (else the run's `created_at` → `now`).
    `pr_buttons`: each pull request gets Ready for review / Draft / Close buttons (those that
    still make sense after its mark in `pr_marks`, the state someone set and who)."""
    emoji, state, kind = _final_state(run)
    run_ref = _link(run.web_url, f"#{run.id}")
    blocks: list[dict[str, Any]] = [
        _section(f"{emoji} <@{requester_id}> Codegen run {run_ref} {state}.")
    ]

    parts = _body_parts(run, kind)
    for markdown, budget in parts:
        mrkdwn = _truncate(markdown_to_mrkdwn(markdown), budget, run.web_url)
        blocks.extend(_section(piece) for piece in _split(mrkdwn, _CHUNK_CHARS))
    if not parts and kind is StatusKind.SUCCESS:
        blocks.append(_section("_The agent left no summary._"))

    prs = run.github_pull_requests or []
    marks = pr_marks or {}
    reserved = 3  # actions, context, and a "more pull requests" line
    if prs:
        heading = "*Pull request*" if len(prs) == 1 else f"*Pull requests ({len(prs)})*"
        buttoned = 0
        if pr_buttons:
            # Each of the first pull requests: its line, then its own buttons.
            for pr in prs[:PR_BUTTONS_LIMIT]:
                if len(blocks) + 2 > BLOCKS_LIMIT - reserved:
                    break
                line = _pr_line(pr, marks.get(pr.id))
                blocks.append(_section(f"{heading}\n{line}" if buttoned == 0 else line))
                blocks.append(_pr_buttons(run.id, pr, marks.get(pr.id)))
                buttoned += 1
        # (text, how many pull requests it lists), each section within Slack's limit.
        pr_sections: list[tuple[str, int]] = []
        current, count = (heading if buttoned == 0 else ""), 0
        for pr in prs[buttoned:]:
            line = _pr_line(pr, marks.get(pr.id))
            if count and len(current) + 1 + len(line) > _CHUNK_CHARS:
                pr_sections.append((current, count))
                current, count = line, 0
            else:
                current = f"{current}\n{line}" if current else line
            count += 1
        if count:
            pr_sections.append((current, count))
        room = max(1, BLOCKS_LIMIT - len(blocks) - reserved)
        shown_sections = pr_sections[:room]
        blocks.extend(_section(text) for text, _ in shown_sections)
        hidden = len(prs) - buttoned - sum(n for _, n in shown_sections)
        if hidden > 0:
            more = f"…and {hidden} more pull request{'s' if hidden != 1 else ''}"
            blocks.append(_section(f"{more}: {_link(run.web_url, 'see the run')}"))

    context = [f"Requested by {_mention(requester_id)}"]
    if stopped_by and is_stopped(run.status):
        context.append(f"stopped by {_mention(stopped_by)}")
    started = started_at or parse_time(run.created_at)
    if started is not None:
        ran = _seconds(started, ended_at or now) or 0.0
        verb = "paused after" if kind is StatusKind.WAITING_FOR_INPUT else "ran for about"
        context.append(f"{verb} {format_duration(ran)}")
    actions = _actions([_view_button(run.web_url)])
    if actions is not None:
        blocks.append(actions)
    blocks.append(_context(context))

    hint = mrkdwn_to_text(markdown_to_mrkdwn(parts[0][0])).replace("```", " ") if parts else ""
    summary_hint = shorten(" ".join(hint.split()), 300)
    text = f"{emoji} <@{requester_id}> Codegen run #{run.id} {_plain_state(state)}"
    if summary_hint:
        text += f": {slack_escape(summary_hint)}"
    if prs:
        text += f" ({len(prs)} pull request{'s' if len(prs) != 1 else ''})"
    return RenderedMessage(text=_fallback(text), blocks=blocks[:BLOCKS_LIMIT])


def _plain_state(state: str) -> str:
    return state.replace("`", "")


def render_request_root(request: RunRequest) -> RenderedMessage:
    """The channel message a slash command's run is threaded on: who asked, what, shortened."""
    prompt = shorten(slack_escape(request.prompt), 300)
    text = f"<@{request.slack.user_id}> asked Codegen: {prompt}"
    return RenderedMessage(
        text=text,
        blocks=[
            _section(text),
            _context(["Status updates follow in this thread."]),
        ],
    )


def render_login_modal(*, org_id: int) -> dict[str, Any]:
    """The modal `/codegen login` opens: one field for the person's Codegen API token."""
    return {
        "type": "modal",
        "callback_id": LOGIN_VIEW_ID,
        "title": {"type": "plain_text", "text": "Codegen login"},
        "submit": {"type": "plain_text", "text": "Log in"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _section(
                "Paste your own Codegen API token (from <https://codegen.com/token|"
                f"codegen.com/token>), made in organization {org_id}. Your runs are then made "
                "with it, so Codegen records you as their author. It is kept encrypted; "
                "`/codegen logout` deletes it."
            ),
            {
                "type": "input",
                "block_id": LOGIN_BLOCK_ID,
                "label": {"type": "plain_text", "text": "Codegen API token"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": LOGIN_INPUT_ID,
                    "placeholder": {"type": "plain_text", "text": "your API token"},
                },
            },
        ],
    }


def render_logged_in_modal(*, who: str) -> dict[str, Any]:
    """What the modal shows once the token is checked and kept."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Codegen login"},
        "close": {"type": "plain_text", "text": "Done"},
        "blocks": [
            _section(
                f"Logged in as {slack_escape(who)}. Your runs are now made with your own "
                "token. `/codegen whoami` shows it; `/codegen logout` deletes it."
            )
        ],
    }
