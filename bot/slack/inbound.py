"""What Slack posts to /slack/events, read before Bolt sees it.

    verdict = read_request(body, headers=headers, signing_secret=secret, now=time.time())
    if isinstance(verdict, Refused): answer verdict.status (401 or 400), log one line

Bolt answers 500 (with a traceback) for much that is not a Slack request: a timestamp that is
not a number, a body that is not UTF-8 or not JSON, JSON that is not an object, nesting deep
enough to exhaust the recursion limit, a slash command without a user. Its form parser also
drops every form whose text merely contains the word "payload" (`/codegen fix the payload
parser` reached no listener). Here the signature is checked first (401), then the body is
decoded and parsed once (400 when it cannot be), and the shapes the listeners rely on are
validated with the models below, so a listener never meets a payload it cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.requests import SlackFile

#: Slack refuses requests older than this, and so do we (replays).
MAX_SKEW_SECONDS = 5 * 60
#: Slack's payloads nest a dozen levels at most (blocks in views in payloads).
MAX_DEPTH = 64
#: Events whose body the message listeners read.
MESSAGE_EVENTS = frozenset({"message", "app_mention"})


class _Lenient(BaseModel):
    """Slack adds fields freely: keep what we do not model, check what we read."""

    model_config = ConfigDict(extra="allow", defer_build=True)


class SlashCommand(_Lenient):
    command: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    channel_id: str = Field(min_length=1)
    team_id: str = ""
    text: str = ""
    response_url: str | None = None
    trigger_id: str | None = None


class MessageEvent(_Lenient):
    """`message` and `app_mention`, as the listeners read them."""

    type: str
    channel: str | None = None
    user: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    text: str | None = None
    team: str | None = None
    subtype: str | None = None
    bot_id: str | None = None
    channel_type: str | None = None
    files: list[SlackFile] | None = None


class _Id(_Lenient):
    id: str = Field(min_length=1)


class _Container(_Lenient):
    channel_id: str | None = None
    message_ts: str | None = None
    thread_ts: str | None = None


class _Action(_Lenient):
    action_id: str
    value: str | None = None


class BlockAction(_Lenient):
    """A button pressed on one of the bot's messages, as the action listeners read it."""

    type: Literal["block_actions"]
    user: _Id
    team: _Id | None = None
    trigger_id: str | None = None
    channel: _Id | None = None
    container: _Container = Field(default_factory=_Container)
    actions: list[_Action] = Field(min_length=1)

    @property
    def channel_id(self) -> str | None:
        return self.channel.id if self.channel is not None else self.container.channel_id


class _ShortcutMessage(_Lenient):
    ts: str = Field(min_length=1)
    user: str | None = None
    text: str | None = None
    thread_ts: str | None = None
    files: list[SlackFile] | None = None


class MessageShortcut(_Lenient):
    """A message shortcut ("Send to Codegen") used on `message`."""

    type: Literal["message_action"]
    callback_id: str
    trigger_id: str = Field(min_length=1)
    user: _Id
    team: _Id | None = None
    channel: _Id
    message: _ShortcutMessage


class _View(_Lenient):
    id: str = Field(min_length=1)
    callback_id: str | None = None
    private_metadata: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)

    @property
    def values(self) -> dict[str, Any]:
        values = self.state.get("values")
        return values if isinstance(values, dict) else {}


class ViewSubmission(_Lenient):
    """A modal submitted."""

    type: Literal["view_submission"]
    user: _Id
    team: _Id | None = None
    view: _View


class BlockSuggestion(_Lenient):
    """A search typed into an external select (the form's repository)."""

    type: Literal["block_suggestion"]
    action_id: str
    value: str = ""


class AnyEvent(_Lenient):
    type: str


class EventCallback(_Lenient):
    type: Literal["event_callback"]
    event: AnyEvent


class Interaction(_Lenient):
    """Block actions, shortcuts, view submissions: Bolt routes on `type`."""

    type: str


_INTERACTIONS: dict[str, type[_Lenient]] = {
    "block_actions": BlockAction,
    "message_action": MessageShortcut,
    "view_submission": ViewSubmission,
    "block_suggestion": BlockSuggestion,
}


@dataclass(frozen=True)
class Refused:
    status: int
    reason: str


@dataclass(frozen=True)
class SlackRequest:
    raw: str
    payload: dict[str, Any]


def read_request(
    body: bytes, *, headers: Mapping[str, str], signing_secret: str, now: float
) -> SlackRequest | Refused:
    """The request, parsed and checked, or why it is refused (`now`: Unix seconds)."""
    refusal = _check_signature(body, headers, signing_secret, now)
    if refusal is not None:
        return refusal
    try:
        raw = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refused(400, "the body is not UTF-8")
    try:
        payload = _parse(raw, headers.get("content-type"))
    except (ValueError, RecursionError):
        return Refused(400, "the body cannot be parsed")
    if not isinstance(payload, dict):
        return Refused(400, "the body is not a JSON object or a form")
    if _depth(payload) > MAX_DEPTH:
        return Refused(400, f"the body nests deeper than {MAX_DEPTH} levels")
    problem = _shape_problem(payload)
    if problem is not None:
        return Refused(400, problem)
    return SlackRequest(raw=raw, payload=payload)


def _check_signature(
    body: bytes, headers: Mapping[str, str], secret: str, now: float
) -> Refused | None:
    timestamp, signature = (
        headers.get("x-slack-request-timestamp"),
        headers.get("x-slack-signature"),
    )
    if not timestamp or not signature:
        return Refused(401, "the request is not signed")
    try:
        sent = int(timestamp)
    except ValueError:
        return Refused(401, "the request timestamp is not a number")
    if abs(now - sent) > MAX_SKEW_SECONDS:
        return Refused(401, "the request timestamp is too far from now")
    # Over the bytes as sent: slack_sdk's verifier decodes them first and fails on bad UTF-8.
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    if not hmac.compare_digest(f"v0={digest.hexdigest()}", signature):
        return Refused(401, "the request signature does not match")
    return None


def _parse(raw: str, content_type: str | None) -> Any:
    """As Slack sends them: JSON for the Events API, forms for commands, a form with a JSON
    `payload` for interactions."""
    if not raw:
        return {}
    if (content_type or "").split(";")[0].strip() == "application/json" or raw.startswith("{"):
        return json.loads(raw)
    form = dict(parse_qsl(raw, keep_blank_values=True))
    if "payload" in form:
        return json.loads(form["payload"])
    return form


def _depth(value: Any) -> int:
    """How deep lists and objects nest, without recursion (that is what is being guarded)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return depth
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _shape_problem(payload: dict[str, Any]) -> str | None:
    if "ssl_check" in payload:  # Slack checking the certificate; Bolt answers it
        return None
    try:
        if "command" in payload:
            SlashCommand.model_validate(payload)
        elif payload.get("type") == "event_callback":
            envelope = EventCallback.model_validate(payload)
            if envelope.event.type in MESSAGE_EVENTS:
                MessageEvent.model_validate(payload["event"])
        elif payload.get("type") == "url_verification":
            if not isinstance(payload.get("challenge"), str):
                return "url_verification without a challenge"
        elif payload.get("type") in _INTERACTIONS:
            _INTERACTIONS[payload["type"]].model_validate(payload)
        elif payload:
            Interaction.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return f"{where}: {first['msg']}"
    return None
