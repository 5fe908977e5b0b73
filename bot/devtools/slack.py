"""A fake Slack Web API on 127.0.0.1: the tests' Slack and the terminal console's.

Like errbot's text and test backends, one stand-in serves both: the console prints what it
sees through an observer, the tests read its records. A Starlette app, served through
bot.serving inside the caller's event loop, records every call and answers the way Slack
documents it. slack_sdk's ``AsyncWebClient(base_url=slack.api_url)`` (and slack-bolt on top of
it) works against it unchanged; so does anything that downloads ``url_private`` files.

    async with FakeSlack.running(bot_token="xoxb-test") as slack:
        client = slack.client()                      # AsyncWebClient bound to the fake
        root = slack.add_message("C1", "fix the login page", "U1")
        await client.chat_postMessage(channel="C1", thread_ts=root, text="Queued")
        assert [m["text"] for m in slack.messages("C1", thread_ts=root)] == [...]

What it does, in short:

* ``/api/<method>``: every call is recorded as a :class:`SlackCall` (params merged from query,
  form and JSON bodies; headers without Authorization; the token used). Built-in, stateful
  methods: auth.test, chat.postMessage, chat.update, chat.delete, chat.postEphemeral,
  chat.getPermalink, reactions.add, reactions.remove, conversations.replies,
  conversations.history, conversations.info, conversations.open, users.info, files.info. Any
  other method answers ``{"ok": false, "error": "unknown_method"}`` unless a caller declared a
  response for it with :meth:`FakeSlack.respond`.
* Tokens are checked like Slack does (``not_authed`` / ``invalid_auth``), and so are scopes
  (``missing_scope`` with ``needed``/``provided``); every answer carries ``x-oauth-scopes``.
* Slack's rates, enforced on the fake's clock (``clock=``; the tests pass theirs): each
  method's tier per workspace and chat.postMessage's per channel (bot.slack.budget holds the
  numbers). A call past them is answered HTTP 429 with ``Retry-After`` and not carried out;
  :meth:`rate_limited` counts them, so any test would notice a storm.
* Scripted faults, one-shot and FIFO per method: :meth:`fail_next` (``ok: false``),
  :meth:`rate_limit_next` (HTTP 429 + ``Retry-After``), :meth:`server_error_next` (HTTP 5xx),
  :meth:`server_error_after_storing_next` (carried out, then HTTP 5xx).
  ``slack.faults[(method, kind)]`` counts the ones served.
* Files: :meth:`add_file` serves bytes at ``/files-pri/<team>-<file id>/<name>``, only to
  ``Authorization: Bearer <bot token>``; anyone else gets Slack's HTML sign-in page with a 200.
* Response URLs for slash commands: :meth:`response_url`; POSTs land in ``slack.responses``.
* Observers (:meth:`observe`) hear every call a built-in method answered ``ok`` and every
  response-URL post, with the answer: the console prints from them.

Everything is deterministic: ids and timestamps come from counters, nothing sleeps (but
calls held on purpose with :meth:`hold`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.clock import Clock, SystemClock
from bot.serving import serve_http
from bot.slack.budget import CHANNEL_POST_RATE, CHANNEL_RATED, METHOD_RATES
from bot.slack.text import ts_key

DEFAULT_SCOPES: tuple[str, ...] = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:read",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "im:write",
    "mpim:history",
    "mpim:read",
    "reactions:read",
    "reactions:write",
    "users:read",
    "users:read.email",
)

# What Slack's sign-in page looks like to a client that fetched a file with a bad token.
LOGIN_PAGE = (
    '<!DOCTYPE html>\n<html lang="en-US" class="">\n<head>\n'
    '<meta charset="utf-8">\n<title>Slack</title>\n</head>\n'
    '<body class="sign_in">\n<h1>Sign in to Fake Team</h1>\n'
    '<form id="signin_form" action="/" method="post"></form>\n</body>\n</html>\n'
)

_JSON_FIELDS = ("blocks", "attachments", "metadata", "unfurl_links", "unfurl_media")
_BASE_TS = 1_700_000_000


@dataclass(frozen=True)
class SlackCall:
    """One request to ``/api/<method>`` as the fake received it."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    token: str | None
    http_method: str = "POST"
    at: datetime | None = None  # on the fake's clock
    peer: str | None = None  # the client's "host:port": one per connection it made

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.params[key]


Observer = Callable[[SlackCall, dict[str, Any]], None]


@dataclass(frozen=True)
class FileDownload:
    """One request for a file's bytes (``/files-pri/...``), whatever the outcome."""

    path: str
    host: str
    token: str | None
    status: int
    served: str  # "file", "login_page", "redirect" or "not_found"


@dataclass(frozen=True)
class ResponseUrlPost:
    """One POST to a slash command's response URL."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def text(self) -> str | None:
        return self.body.get("text")


@dataclass
class _Scripted:
    kind: str  # "response", "error", "ratelimited", "server_error", "stored_then_error"
    status: int
    body: dict[str, Any] | Callable[[SlackCall], dict[str, Any]] | str
    headers: dict[str, str] = field(default_factory=dict)


class SlackApiFailure(Exception):
    """Raised inside a built-in method: answered as ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _check_modal(view: dict[str, Any]) -> None:
    """The limits Slack enforces on a modal that a bot can get wrong (api.slack.com/surfaces/
    modals, block kit reference): its title, private_metadata, block count, and text inputs
    whose initial value is longer than they may hold."""
    title = (view.get("title") or {}).get("text") or ""
    if not title or len(title) > 24:
        raise SlackApiFailure("invalid_arguments", detail="title must be 1–24 characters")
    if len(view.get("private_metadata") or "") > 3000:
        raise SlackApiFailure("invalid_arguments", detail="private_metadata over 3000 chars")
    blocks = view.get("blocks") or []
    if len(blocks) > 100:
        raise SlackApiFailure("invalid_blocks")
    for block in blocks:
        element = block.get("element") or {}
        if element.get("type") == "plain_text_input":
            limit = min(int(element.get("max_length") or 3000), 3000)
            if len(element.get("initial_value") or "") > limit:
                raise SlackApiFailure("invalid_blocks", detail="initial_value over max_length")


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True", "TRUE")


def _split_ids(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


class FakeSlack:
    """The fake. Build it with :meth:`running`; everything else is plain attributes/methods."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",
        scopes: Iterable[str] | None = None,
        team_id: str = "T0FAKETEAM",
        team_name: str = "Fake Team",
        team_domain: str = "fake-team",
        bot_user_id: str = "U0FAKEBOT",
        bot_id: str = "B0FAKEBOT",
        app_id: str = "A0FAKEAPP",
        bot_name: str = "codegen",
        clock: Clock | None = None,
        enforce_rates: bool = True,
    ) -> None:
        self.bot_token = bot_token
        # Slack's per-method rates (and chat.postMessage's per channel), on this clock.
        self.clock: Clock = clock or SystemClock()
        self.enforce_rates = enforce_rates
        self._rate_log: dict[str, deque[datetime]] = {}
        self.scopes: list[str] = list(DEFAULT_SCOPES if scopes is None else scopes)
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.bot_name = bot_name

        # Records.
        self.calls: list[SlackCall] = []
        self.downloads: list[FileDownload] = []
        self.responses: list[ResponseUrlPost] = []
        self.ephemerals: list[dict[str, Any]] = []
        self.views: list[dict[str, Any]] = []  # modals opened (views.open), oldest first
        # Agent sessions (agents.sessions.*): (channel, thread_ts) → status, title, initiator
        # and every status set, oldest first. `sessions_error`: answer every session call
        # with that error, as a workspace or app without sessions does (e.g. feature_disabled).
        self.agent_sessions: dict[tuple[str, str], dict[str, Any]] = {}
        self.sessions_error: str | None = None
        # Block types this workspace does not render: a message carrying one is refused with
        # invalid_blocks, as Slack refuses blocks it does not know (plan, task_card: 2026).
        self.unrendered_blocks: set[str] = set()
        # App Home tabs published (views.publish): user id → each view published, oldest first.
        self.homes: dict[str, list[dict[str, Any]]] = {}
        self.faults: Counter[tuple[str, str]] = Counter()

        # State.
        self.channels: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self._file_bytes: dict[str, bytes] = {}
        self._file_redirects: dict[str, str] = {}
        self._messages: dict[str, dict[str, dict[str, Any]]] = {}
        self._reactions: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self._dms: dict[str, str] = {}
        self._response_uses: dict[int, int] = {}
        self._expired_responses: set[int] = set()
        self._queued: dict[str, deque[_Scripted]] = {}
        self._declared: dict[str, _Scripted] = {}
        self._ts_counter = 0
        self._id_counter = 0
        self._gates: dict[str, asyncio.Event] = {}
        self._held: Counter[str] = Counter()
        self._held_changed = asyncio.Condition()

        self._handlers: dict[str, Callable[[SlackCall], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "conversations.replies": self._conversations_replies,
            "conversations.history": self._conversations_history,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "files.info": self._files_info,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
            "agents.sessions.setStatus": self._sessions_set_status,
            "agents.sessions.rename": self._sessions_rename,
        }

        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api_endpoint, methods=["GET", "POST"]),
                Route("/files-pri/{key}/{rest:path}", self._file_endpoint, methods=["GET"]),
                Route("/files-tmb/{key}/{rest:path}", self._file_endpoint, methods=["GET"]),
                Route("/response/{n:int}", self._response_endpoint, methods=["POST"]),
            ]
        )
        self._serving: AsyncExitStack | None = None
        self.port: int = 0
        self._observers: list[Observer] = []

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def running(cls, **kwargs: Any) -> AsyncIterator[FakeSlack]:
        """Serve a new fake on 127.0.0.1 (free port) for the duration of the block."""
        slack = cls(**kwargs)
        await slack.start()
        try:
            yield slack
        finally:
            await slack.stop()

    async def start(self) -> None:
        stack = AsyncExitStack()
        self.port = await stack.enter_async_context(
            serve_http(self.app, host="127.0.0.1", port=0, grace=2.0)
        )
        self._serving = stack

    async def stop(self) -> None:
        """Stop serving (a test may call it to make Slack unreachable)."""
        serving, self._serving = self._serving, None
        if serving is not None:
            await serving.aclose()

    def observe(self, observer: Observer) -> None:
        """Call `observer(call, answer)` after every call a built-in method answered ok, and
        `observer(call, {})` for every response-URL post (its method is "response_url")."""
        self._observers.append(observer)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def client(self, token: str | None = None, **kwargs: Any) -> AsyncWebClient:
        """An AsyncWebClient pointed at the fake (the bot token unless told otherwise)."""
        return AsyncWebClient(
            token=self.bot_token if token is None else token, base_url=self.api_url, **kwargs
        )

    # -- declaring answers and faults ---------------------------------------------------------

    def respond(
        self,
        method: str,
        body: dict[str, Any] | Callable[[SlackCall], dict[str, Any]],
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        once: bool = False,
    ) -> None:
        """Answer `method` with `body` (or `body(call)`), before any built-in behaviour.

        ``once=True`` queues a single answer (FIFO with the scripted faults); otherwise the
        answer stands until :meth:`forget` is called."""
        scripted = _Scripted("response", status, body, dict(headers or {}))
        if once:
            self._queued.setdefault(method, deque()).append(scripted)
        else:
            self._declared[method] = scripted

    def forget(self, method: str) -> None:
        """Drop declared and queued answers for `method`."""
        self._declared.pop(method, None)
        self._queued.pop(method, None)

    def fail_next(
        self, method: str, error: str = "channel_not_found", *, times: int = 1, **extra: Any
    ) -> None:
        """The next `times` calls to `method` answer ``{"ok": false, "error": error, **extra}``."""
        body = {"ok": False, "error": error, **extra}
        for _ in range(times):
            self._queued.setdefault(method, deque()).append(_Scripted("error", 200, body))

    def rate_limit_next(self, method: str, retry_after: int = 1, *, times: int = 1) -> None:
        """The next `times` calls answer HTTP 429 with ``Retry-After`` (as Slack does)."""
        body = {"ok": False, "error": "ratelimited"}
        headers = {"Retry-After": str(retry_after)}
        for _ in range(times):
            self._queued.setdefault(method, deque()).append(
                _Scripted("ratelimited", 429, body, headers)
            )

    def server_error_next(self, method: str, status: int = 500, *, times: int = 1) -> None:
        """The next `times` calls answer HTTP `status` with a plain-text body."""
        for _ in range(times):
            self._queued.setdefault(method, deque()).append(
                _Scripted("server_error", status, "Internal Server Error")
            )

    def hold(self, method: str) -> None:
        """Calls to `method` wait, unanswered, until :meth:`release` (to see how many pile up)."""
        self._gates.setdefault(method, asyncio.Event())

    def release(self, method: str) -> None:
        gate = self._gates.pop(method, None)
        if gate is not None:
            gate.set()

    def held(self, method: str) -> int:
        """How many calls to `method` are waiting at its :meth:`hold`."""
        return self._held[method]

    async def until_held(self, method: str, count: int) -> None:
        """Return once `count` calls to `method` wait at its hold."""
        async with self._held_changed:
            await self._held_changed.wait_for(lambda: self._held[method] >= count)

    async def _pass_gate(self, method: str) -> None:
        gate = self._gates.get(method)
        if gate is None:
            return
        async with self._held_changed:
            self._held[method] += 1
            self._held_changed.notify_all()
        try:
            await gate.wait()
        finally:
            self._held[method] -= 1

    def server_error_after_storing_next(
        self, method: str, status: int = 500, *, times: int = 1
    ) -> None:
        """The next `times` calls are carried out (a message is stored, a reaction added) and
        then answered HTTP `status`: the caller cannot tell it worked."""
        for _ in range(times):
            self._queued.setdefault(method, deque()).append(
                _Scripted("stored_then_error", status, "Internal Server Error")
            )

    def pending_faults(self, method: str) -> int:
        """How many scripted answers for `method` have not been served yet."""
        return len(self._queued.get(method, ()))

    # -- building the workspace --------------------------------------------------------------

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str | None = None,
        is_private: bool | None = None,
        is_im: bool | None = None,
        is_member: bool = True,
        is_archived: bool = False,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Declare a channel (unknown ids get defaults from their prefix: C public, G private,
        D direct message)."""
        channel = self._default_channel(channel_id)
        channel.update(is_member=is_member, is_archived=is_archived)
        if name is not None:
            channel["name"] = name
        if is_im is not None:
            channel["is_im"] = is_im
        if is_private is not None:
            channel["is_private"] = is_private
        if channel["is_im"]:
            channel.update(is_private=True, is_channel=False, is_group=False, name=None)
        else:
            channel.update(is_channel=not channel["is_private"], is_group=channel["is_private"])
        if user is not None:
            channel["user"] = user
            if channel["is_im"]:
                self._dms.setdefault(user, channel_id)  # conversations.open finds this DM
        self.channels[channel_id] = channel
        return copy.deepcopy(channel)

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        display_name: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        tz: str = "Europe/London",
        email: str | None = None,
    ) -> dict[str, Any]:
        real = real_name if real_name is not None else name.title()
        profile: dict[str, Any] = {
            "real_name": real,
            "display_name": display_name if display_name is not None else name,
            "team": self.team_id,
        }
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "real_name": real,
            "tz": tz,
            "is_bot": is_bot,
            "is_app_user": False,
            "profile": profile,
        }
        if email is not None:
            profile["email"] = email
        self.users[user_id] = user
        return copy.deepcopy(user)

    def add_message(
        self,
        channel: str,
        text: str,
        user: str,
        thread_ts: str | None = None,
        files: Sequence[Mapping[str, Any]] | None = None,
        *,
        blocks: list[dict[str, Any]] | None = None,
        bot_id: str | None = None,
    ) -> str:
        """A message posted by someone other than the bot (to build threads); returns its ts."""
        if thread_ts is not None and thread_ts not in self._messages.get(channel, {}):
            raise ValueError(f"no message {thread_ts} in {channel} to reply to")
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": user,
            "text": text,
            "ts": ts,
            "team": self.team_id,
        }
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
            message["parent_user_id"] = self._messages[channel][thread_ts].get("user")
        if files:
            message["files"] = [dict(f) for f in files]
            message["upload"] = False
        if blocks is not None:
            message["blocks"] = blocks
        if bot_id is not None:
            message["bot_id"] = bot_id
        self._store(channel, message)
        return ts

    def add_reaction(self, channel: str, ts: str, name: str, user: str) -> None:
        """Someone (not the bot) reacted."""
        self._reactions.setdefault((channel, ts), []).append((name, user))

    def add_file(
        self,
        name: str,
        content: bytes,
        mimetype: str,
        *,
        file_access: str | None = None,
        redirect: bool | str = False,
        user: str = "U0FILEOWNER",
        file_id: str | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """Host a file; returns the file object as a message event would carry it.

        The full object (what files.info answers) is ``slack.files[id]``. With
        ``file_access="check_file_info"`` (Slack Connect) the returned event object has only
        ``id`` and ``file_access``, as Slack sends it. ``redirect=True`` makes the download
        URLs answer 302 to another path on this server; a string redirects to that URL or
        path instead (e.g. another host, to test host checks)."""
        fid = file_id or f"F{self._next_id():08d}"
        key = f"{self.team_id}-{fid}"
        filetype = name.rsplit(".", 1)[-1].lower() if "." in name else "binary"
        full: dict[str, Any] = {
            "id": fid,
            "created": _BASE_TS,
            "timestamp": _BASE_TS,
            "name": name,
            "title": title if title is not None else name,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": filetype.upper(),
            "user": user,
            "user_team": self.team_id,
            "mode": "hosted",
            "editable": False,
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "size": len(content),
            "url_private": f"{self.base_url}/files-pri/{key}/{name}",
            "url_private_download": f"{self.base_url}/files-pri/{key}/download/{name}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{user}/{fid}/{name}",
        }
        if file_access is not None:
            full["file_access"] = file_access
        self.files[fid] = full
        self._file_bytes[fid] = content
        if redirect is True:
            self._file_redirects[fid] = f"/files-tmb/{key}/{name}"
        elif isinstance(redirect, str) and redirect:
            self._file_redirects[fid] = redirect
        if file_access == "check_file_info":
            return {"id": fid, "file_access": file_access}
        return copy.deepcopy(full)

    def remove_file(self, file_id: str) -> None:
        """The file was deleted: files.info says file_deleted, downloads get 404."""
        self.files[file_id]["_deleted"] = True

    def response_url(self) -> str:
        """A fresh response URL, as a slash command payload would carry it."""
        n = self._next_id()
        self._response_uses[n] = 0
        return f"{self.base_url}/response/{n}"

    def expire_response_urls(self) -> None:
        """Every response URL given out so far answers 404 `expired_url` from now on, as Slack's
        do 30 minutes after their command (a request prepared later cannot use its own)."""
        self._expired_responses.update(self._response_uses)

    # -- reading what happened ---------------------------------------------------------------

    def calls_to(self, method: str) -> list[SlackCall]:
        return [call for call in self.calls if call.method == method]

    def last_call(self, method: str) -> SlackCall:
        calls = self.calls_to(method)
        if not calls:
            seen = sorted({call.method for call in self.calls})
            raise AssertionError(f"no call to {method}; calls seen: {seen}")
        return calls[-1]

    def clear_calls(self) -> None:
        self.calls.clear()

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages as stored (current version), oldest first: the whole channel including
        thread replies, or with `thread_ts` the root and its replies."""
        stored = self._messages.get(channel, {})
        if thread_ts is None:
            chosen = list(stored.values())
        else:
            chosen = [
                m
                for m in stored.values()
                if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts
            ]
        chosen.sort(key=lambda m: ts_key(m["ts"]))
        return [self._render(channel, m, include_metadata=True) for m in chosen]

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        return [m for m in self.messages(channel, thread_ts) if m.get("user") == self.bot_user_id]

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        try:
            return self._render(channel, self._messages[channel][ts], include_metadata=True)
        except KeyError:
            raise KeyError(f"no message {ts} in {channel}") from None

    def reactions(self, channel: str, ts: str, *, user: str | None = None) -> list[str]:
        """Reaction names on a message, in the order added (only `user`'s if given)."""
        return [
            name
            for name, who in self._reactions.get((channel, ts), [])
            if user is None or who == user
        ]

    def bot_reactions(self, channel: str, ts: str) -> list[str]:
        return self.reactions(channel, ts, user=self.bot_user_id)

    # -- internals: ids and storage -----------------------------------------------------------

    def _next_ts(self) -> str:
        self._ts_counter += 1
        micro = self._ts_counter * 100
        return f"{_BASE_TS + micro // 1_000_000}.{micro % 1_000_000:06d}"

    def _next_id(self) -> int:
        self._id_counter += 1
        return self._id_counter

    def _default_channel(self, channel_id: str) -> dict[str, Any]:
        if channel_id in self.channels:
            return copy.deepcopy(self.channels[channel_id])
        is_im = channel_id.startswith("D")
        is_private = channel_id.startswith("G") or is_im
        return {
            "id": channel_id,
            "name": None if is_im else f"channel-{channel_id.lower()}",
            "is_channel": not is_private,
            "is_group": channel_id.startswith("G"),
            "is_im": is_im,
            "is_mpim": False,
            "is_private": is_private,
            "is_archived": False,
            "is_general": False,
            "is_member": True,
            "is_ext_shared": False,
            "is_org_shared": False,
            "created": _BASE_TS,
            "context_team_id": self.team_id,
        }

    def _channel(self, channel_id: str) -> dict[str, Any]:
        if channel_id not in self.channels:
            self.channels[channel_id] = self._default_channel(channel_id)
        return self.channels[channel_id]

    def _store(self, channel: str, message: dict[str, Any]) -> None:
        self._channel(channel)
        self._messages.setdefault(channel, {})[message["ts"]] = message

    def _find(self, channel: str, ts: str) -> dict[str, Any]:
        message = self._messages.get(channel, {}).get(ts)
        if message is None:
            raise SlackApiFailure("message_not_found")
        return message

    def _render(
        self, channel: str, message: dict[str, Any], *, include_metadata: bool
    ) -> dict[str, Any]:
        out = copy.deepcopy(message)
        if not include_metadata:
            out.pop("metadata", None)
        replies = [
            m
            for m in self._messages.get(channel, {}).values()
            if m.get("thread_ts") == message["ts"] and m["ts"] != message["ts"]
        ]
        if replies:
            replies.sort(key=lambda m: ts_key(m["ts"]))
            users = list(dict.fromkeys(m.get("user") for m in replies if m.get("user")))
            out.update(
                thread_ts=message["ts"],
                reply_count=len(replies),
                reply_users_count=len(users),
                reply_users=users,
                latest_reply=replies[-1]["ts"],
            )
        grouped: dict[str, list[str]] = {}
        for name, user in self._reactions.get((channel, message["ts"]), []):
            grouped.setdefault(name, []).append(user)
        if grouped:
            out["reactions"] = [
                {"name": name, "users": users, "count": len(users)}
                for name, users in grouped.items()
            ]
        return out

    # -- internals: HTTP endpoints ------------------------------------------------------------

    async def _api_endpoint(self, request: Request) -> Response:
        method = request.path_params["method"]
        params: dict[str, Any] = dict(request.query_params)
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        if body and "application/json" in content_type:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                params.update(parsed)
        elif body and "application/x-www-form-urlencoded" in content_type:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        elif body:
            params["_raw_body_bytes"] = len(body)
        for key in _JSON_FIELDS:
            value = params.get(key)
            if isinstance(value, str) and value[:1] in ("[", "{"):
                with suppress(ValueError):
                    params[key] = json.loads(value)
        token: str | None = None
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
        if "token" in params:
            token = str(params.pop("token"))
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        await self._pass_gate(method)
        peer = f"{request.client.host}:{request.client.port}" if request.client else None
        call = SlackCall(method, params, headers, token, request.method, self.clock.now(), peer)
        self.calls.append(call)
        return self._answer(call)

    def _answer(self, call: SlackCall) -> Response:
        queue = self._queued.get(call.method)
        if queue:
            scripted = queue.popleft()
            if scripted.kind != "response":
                self.faults[(call.method, scripted.kind)] += 1
            if scripted.kind == "stored_then_error":
                self._builtin(call)
            return self._scripted_response(scripted, call)
        if call.method in self._declared:
            return self._scripted_response(self._declared[call.method], call)
        limited = self._over_rate(call)
        if limited is not None:
            self.faults[(call.method, "rate_limit")] += 1
            return JSONResponse(
                {"ok": False, "error": "ratelimited"},
                status_code=429,
                headers={"Retry-After": str(limited), "x-oauth-scopes": ",".join(self.scopes)},
            )
        return self._builtin(call)

    def rate_limited(self, method: str | None = None) -> int:
        """How many calls (to `method`) were answered 429 for going over Slack's rates."""
        return sum(
            n
            for (m, kind), n in self.faults.items()
            if kind == "rate_limit" and method in (None, m)
        )

    def _over_rate(self, call: SlackCall) -> int | None:
        """Retry-After seconds when this call goes over its method's rate (or, for
        chat.postMessage, its channel's); None when it fits, and then it is counted."""
        if not self.enforce_rates:
            return None
        rates = []
        rate = METHOD_RATES.get(call.method)
        if rate is not None:
            rates.append((call.method, rate))
        channel = call.get("channel")
        if call.method in CHANNEL_RATED and isinstance(channel, str) and channel:
            rates.append((f"{call.method}:{channel}", CHANNEL_POST_RATE))
        now = self.clock.now()
        for key, limit in rates:
            log = self._rate_log.setdefault(key, deque())
            while log and log[0] <= now - timedelta(seconds=limit.window):
                log.popleft()
            if len(log) >= limit.limit:
                wait = (log[0] + timedelta(seconds=limit.window) - now).total_seconds()
                return max(1, math.ceil(wait))
        for key, _limit in rates:
            self._rate_log[key].append(now)
        return None

    def _builtin(self, call: SlackCall) -> Response:

        handler = self._handlers.get(call.method)
        if handler is None:
            return self._json({"ok": False, "error": "unknown_method"})
        if call.token is None:
            return self._json({"ok": False, "error": "not_authed"})
        if call.token != self.bot_token:
            return self._json({"ok": False, "error": "invalid_auth"})
        needed = self._needed_scope(call)
        if needed is not None and needed not in self.scopes:
            return self._json(
                {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": needed,
                    "provided": ",".join(self.scopes),
                },
                needed=needed,
            )
        try:
            body = handler(call)
        except SlackApiFailure as failure:
            body = {"ok": False, "error": failure.error, **failure.extra}
        if body.get("ok"):
            for observer in self._observers:
                observer(call, body)
        return self._json(body, needed=needed)

    def _json(
        self, body: dict[str, Any], *, status: int = 200, needed: str | None = None
    ) -> Response:
        headers = {"x-oauth-scopes": ",".join(self.scopes)}
        if needed:
            headers["x-accepted-oauth-scopes"] = needed
        return JSONResponse(body, status_code=status, headers=headers)

    def _scripted_response(self, scripted: _Scripted, call: SlackCall) -> Response:
        headers = {"x-oauth-scopes": ",".join(self.scopes), **scripted.headers}
        if isinstance(scripted.body, str):
            return Response(
                scripted.body, status_code=scripted.status, headers=headers, media_type="text/plain"
            )
        body = scripted.body(call) if callable(scripted.body) else copy.deepcopy(scripted.body)
        return JSONResponse(body, status_code=scripted.status, headers=headers)

    async def _file_endpoint(self, request: Request) -> Response:
        key = request.path_params["key"]
        fid = key.rsplit("-", 1)[-1]
        authorization = request.headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else None
        host = request.headers.get("host", "")

        def record(status: int, served: str) -> None:
            self.downloads.append(FileDownload(request.url.path, host, token, status, served))

        file = self.files.get(fid)
        if file is None or file.get("_deleted") or not key.startswith(f"{self.team_id}-"):
            record(404, "not_found")
            return Response(
                "<!DOCTYPE html><html><body>Not found</body></html>", 404, media_type="text/html"
            )
        if token != self.bot_token:
            record(200, "login_page")
            return Response(LOGIN_PAGE, 200, media_type="text/html; charset=utf-8")
        target = self._file_redirects.get(fid)
        if target is not None and request.url.path.startswith("/files-pri/"):
            record(302, "redirect")
            return Response(status_code=302, headers={"location": target})
        record(200, "file")
        return Response(self._file_bytes[fid], 200, media_type=file["mimetype"])

    async def _response_endpoint(self, request: Request) -> Response:
        n = request.path_params["n"]
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        body: dict[str, Any]
        if "application/json" in content_type:
            body = json.loads(raw or b"{}")
        else:
            form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
            body = json.loads(form["payload"]) if "payload" in form else form
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        self.responses.append(ResponseUrlPost(str(request.url), body, headers))
        for observer in self._observers:
            observer(SlackCall("response_url", body, headers, None), {})
        if n not in self._response_uses:
            return JSONResponse({"ok": False, "error": "no_service"}, status_code=404)
        if n in self._expired_responses:
            return JSONResponse({"ok": False, "error": "expired_url"}, status_code=404)
        self._response_uses[n] += 1
        if self._response_uses[n] > 5:  # Slack allows five uses of a response URL
            return JSONResponse({"ok": False, "error": "used_url"}, status_code=404)
        return JSONResponse({"ok": True})

    # -- internals: scopes --------------------------------------------------------------------

    def _needed_scope(self, call: SlackCall) -> str | None:
        simple = {
            "chat.postMessage": "chat:write",
            "chat.update": "chat:write",
            "chat.delete": "chat:write",
            "chat.postEphemeral": "chat:write",
            "reactions.add": "reactions:write",
            "reactions.remove": "reactions:write",
            "users.info": "users:read",
            "files.info": "files:read",
            "conversations.open": "im:write",
        }
        if call.method in simple:
            return simple[call.method]
        if call.method in ("conversations.replies", "conversations.history", "conversations.info"):
            channel = self._channel_kind(str(call.get("channel", "")))
            suffix = "read" if call.method == "conversations.info" else "history"
            return f"{channel}:{suffix}"
        return None

    def _channel_kind(self, channel_id: str) -> str:
        info = self.channels.get(channel_id) or self._default_channel(channel_id)
        if info.get("is_im"):
            return "im"
        if info.get("is_mpim"):
            return "mpim"
        return "groups" if info.get("is_private") else "channels"

    # -- internals: the methods ---------------------------------------------------------------

    def _auth_test(self, call: SlackCall) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _resolve_channel(self, value: Any) -> str:
        channel = str(value or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        if channel[0] in "UW":  # posting to a user id opens (or reuses) the DM
            channel = self._open_dm(channel)[0]
        info = self._channel(channel)
        if info.get("is_archived"):
            raise SlackApiFailure("is_archived")
        return channel

    def _bot_message(self, call: SlackCall, ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": call.get("text") or "",
            "ts": ts,
            "team": self.team_id,
            "bot_profile": {"id": self.bot_id, "app_id": self.app_id, "name": self.bot_name},
        }
        for key in ("blocks", "attachments", "metadata"):
            if call.get(key) is not None:
                message[key] = call.get(key)
        return message

    def _check_blocks(self, call: SlackCall) -> None:
        blocks = call.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        kinds = {b.get("type") for b in blocks or [] if isinstance(b, dict)}
        if kinds & self.unrendered_blocks:
            raise SlackApiFailure("invalid_blocks")

    def _chat_post_message(self, call: SlackCall) -> dict[str, Any]:
        self._check_blocks(call)
        channel = self._resolve_channel(call.get("channel"))
        self._check_member(channel)
        if not (call.get("text") or call.get("blocks") or call.get("attachments")):
            raise SlackApiFailure("no_text")
        thread_ts = call.get("thread_ts") or None
        message = self._bot_message(call, self._next_ts())
        if thread_ts:
            root = self._messages.get(channel, {}).get(str(thread_ts))
            if root is not None and root.get("thread_ts") not in (None, root["ts"]):
                thread_ts = root["thread_ts"]  # replying to a reply lands in its thread
            message["thread_ts"] = str(thread_ts)
            if root is not None:
                message["parent_user_id"] = root.get("user")
            if _truthy(call.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        self._store(channel, message)
        echoed = self._render(channel, message, include_metadata=True)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": echoed}

    def _chat_update(self, call: SlackCall) -> dict[str, Any]:
        self._check_blocks(call)
        channel = self._resolve_channel(call.get("channel"))
        ts = str(call.get("ts") or "")
        message = self._find(channel, ts)
        if message.get("user") != self.bot_user_id:
            raise SlackApiFailure("cant_update_message")
        if (
            call.get("text") is None
            and call.get("blocks") is None
            and call.get("attachments") is None
        ):
            raise SlackApiFailure("no_text")
        for key in ("text", "blocks", "attachments", "metadata"):
            if call.get(key) is not None:
                message[key] = call.get(key)
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        echoed = self._render(channel, message, include_metadata=True)
        return {
            "ok": True,
            "channel": channel,
            "ts": ts,
            "text": message.get("text", ""),
            "message": echoed,
        }

    def _chat_delete(self, call: SlackCall) -> dict[str, Any]:
        channel = self._resolve_channel(call.get("channel"))
        ts = str(call.get("ts") or "")
        message = self._find(channel, ts)
        if message.get("user") != self.bot_user_id:
            raise SlackApiFailure("cant_delete_message")
        del self._messages[channel][ts]
        return {"ok": True, "channel": channel, "ts": ts}

    def _chat_post_ephemeral(self, call: SlackCall) -> dict[str, Any]:
        channel = self._resolve_channel(call.get("channel"))
        user = str(call.get("user") or "")
        if not user:
            raise SlackApiFailure("user_not_found")
        if not (call.get("text") or call.get("blocks") or call.get("attachments")):
            raise SlackApiFailure("no_text")
        ts = self._next_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": call.get("text") or "",
                "blocks": call.get("blocks"),
                "thread_ts": call.get("thread_ts"),
                "ts": ts,
            }
        )
        return {"ok": True, "message_ts": ts}

    def _chat_get_permalink(self, call: SlackCall) -> dict[str, Any]:
        channel = str(call.get("channel") or "")
        ts = str(call.get("message_ts") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        message = self._find(channel, ts)
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    def _reaction_target(self, call: SlackCall) -> tuple[str, str, str]:
        channel = str(call.get("channel") or "")
        ts = str(call.get("timestamp") or "")
        name = str(call.get("name") or "").strip(":")
        if not name:
            raise SlackApiFailure("invalid_name")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        self._find(channel, ts)
        return channel, ts, name

    def _reactions_add(self, call: SlackCall) -> dict[str, Any]:
        channel, ts, name = self._reaction_target(call)
        reactions = self._reactions.setdefault((channel, ts), [])
        if (name, self.bot_user_id) in reactions:
            raise SlackApiFailure("already_reacted")
        reactions.append((name, self.bot_user_id))
        return {"ok": True}

    def _reactions_remove(self, call: SlackCall) -> dict[str, Any]:
        channel, ts, name = self._reaction_target(call)
        reactions = self._reactions.get((channel, ts), [])
        if (name, self.bot_user_id) not in reactions:
            raise SlackApiFailure("no_reaction")
        reactions.remove((name, self.bot_user_id))
        return {"ok": True}

    def _readable_channel(self, call: SlackCall) -> str:
        channel = str(call.get("channel") or "")
        if not channel or (channel not in self.channels and channel[0] not in "CDG"):
            raise SlackApiFailure("channel_not_found")
        self._check_member(channel)
        return channel

    def _check_member(self, channel: str) -> None:
        """Slack's answer to a bot outside a conversation: a public channel says so, a private
        one or a DM between others is hidden from it."""
        info = self._channel(channel)
        if not info.get("is_member", True):
            hidden = info.get("is_private") or info.get("is_im") or info.get("is_mpim")
            raise SlackApiFailure("channel_not_found" if hidden else "not_in_channel")

    @staticmethod
    def _page(
        items: list[dict[str, Any]], call: SlackCall, default_limit: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        limit = int(call.get("limit") or default_limit)
        cursor = str(call.get("cursor") or "")
        start = int(cursor.removeprefix("offset:")) if cursor.startswith("offset:") else 0
        page = items[start : start + limit]
        more = start + limit < len(items)
        meta = {
            "has_more": more,
            "response_metadata": {"next_cursor": f"offset:{start + limit}" if more else ""},
        }
        return page, meta

    @staticmethod
    def _in_window(ts: str, call: SlackCall) -> bool:
        inclusive = _truthy(call.get("inclusive"))
        oldest, latest = call.get("oldest"), call.get("latest")
        key = ts_key(ts)
        if oldest:
            lo = ts_key(str(oldest))
            if key < lo or (key == lo and not inclusive):
                return False
        if latest:
            hi = ts_key(str(latest))
            if key > hi or (key == hi and not inclusive):
                return False
        return True

    def _conversations_replies(self, call: SlackCall) -> dict[str, Any]:
        channel = self._readable_channel(call)
        ts = str(call.get("ts") or "")
        stored = self._messages.get(channel, {})
        message = stored.get(ts)
        if message is None:
            raise SlackApiFailure("thread_not_found")
        root_ts = message.get("thread_ts") or ts
        root = stored.get(root_ts, message)
        thread = [
            root,
            *sorted(
                (
                    m
                    for m in stored.values()
                    if m.get("thread_ts") == root_ts and m["ts"] != root_ts
                ),
                key=lambda m: ts_key(m["ts"]),
            ),
        ]
        thread = [m for i, m in enumerate(thread) if i == 0 or self._in_window(m["ts"], call)]
        include = _truthy(call.get("include_all_metadata"))
        page, meta = self._page(thread, call, 1000)
        return {
            "ok": True,
            "messages": [self._render(channel, m, include_metadata=include) for m in page],
            **meta,
        }

    def _conversations_history(self, call: SlackCall) -> dict[str, Any]:
        channel = self._readable_channel(call)
        stored = self._messages.get(channel, {}).values()
        top = [
            m
            for m in stored
            if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
        ]
        top = [m for m in top if self._in_window(m["ts"], call)]
        top.sort(key=lambda m: ts_key(m["ts"]), reverse=True)
        include = _truthy(call.get("include_all_metadata"))
        page, meta = self._page(top, call, 100)
        return {
            "ok": True,
            "messages": [self._render(channel, m, include_metadata=include) for m in page],
            "pin_count": 0,
            **meta,
        }

    def _conversations_info(self, call: SlackCall) -> dict[str, Any]:
        channel = str(call.get("channel") or "")
        if not channel or (channel not in self.channels and channel[0] not in "CDG"):
            raise SlackApiFailure("channel_not_found")
        return {"ok": True, "channel": copy.deepcopy(self._channel(channel))}

    def _open_dm(self, user: str) -> tuple[str, bool]:
        existing = self._dms.get(user)
        if existing is not None:
            return existing, True
        channel = f"D{self._next_id():08d}"
        self._dms[user] = channel
        self.add_channel(channel, is_im=True, user=user)
        return channel, False

    def _conversations_open(self, call: SlackCall) -> dict[str, Any]:
        if call.get("channel"):
            channel = str(call.get("channel"))
            if channel not in self.channels:
                raise SlackApiFailure("channel_not_found")
            return {"ok": True, "channel": {"id": channel}, "no_op": True, "already_open": True}
        users = _split_ids(call.get("users"))
        if not users:
            raise SlackApiFailure("users_list_not_supplied")
        if len(users) > 1:
            key = ",".join(sorted(users))
            if key not in self._dms:
                self._dms[key] = f"G{self._next_id():08d}"
                self.add_channel(self._dms[key], is_private=True)
                self.channels[self._dms[key]]["is_mpim"] = True
            channel, already = self._dms[key], False
        else:
            channel, already = self._open_dm(users[0])
        info = (
            copy.deepcopy(self.channels[channel])
            if _truthy(call.get("return_im"))
            else {"id": channel}
        )
        return {"ok": True, "channel": info, "no_op": already, "already_open": already}

    def _users_info(self, call: SlackCall) -> dict[str, Any]:
        user_id = str(call.get("user") or "")
        if user_id == self.bot_user_id and user_id not in self.users:
            self.add_user(user_id, self.bot_name, is_bot=True)
        if user_id not in self.users:
            # Any well-formed user id exists, with a predictable name, unless declared.
            if not user_id or user_id[0] not in "UW":
                raise SlackApiFailure("user_not_found")
            self.add_user(user_id, f"user-{user_id.lower()}", real_name=f"User {user_id}")
        user = copy.deepcopy(self.users[user_id])
        if "users:read.email" not in self.scopes:
            user["profile"].pop("email", None)  # as Slack: the email only with that scope
        return {"ok": True, "user": user}

    def _views_open(self, call: SlackCall) -> dict[str, Any]:
        trigger = str(call.get("trigger_id") or "")
        if not trigger or trigger in {v["trigger_id"] for v in self.views}:
            raise SlackApiFailure("invalid_trigger_id")  # each trigger opens one view
        view = call.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or view.get("type") != "modal":
            raise SlackApiFailure("invalid_arguments")
        _check_modal(view)
        opened = {"id": f"V{self._next_id():08d}", **view}
        self.views.append({"trigger_id": trigger, "view": opened})
        return {"ok": True, "view": opened}

    def _views_publish(self, call: SlackCall) -> dict[str, Any]:
        user = str(call.get("user_id") or "")
        if not user:
            raise SlackApiFailure("invalid_arguments")
        if user not in self.users and not user.startswith(("U", "W")):
            raise SlackApiFailure("user_not_found")
        view = call.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackApiFailure("invalid_arguments")
        if len(view.get("blocks") or []) > 100:
            raise SlackApiFailure("invalid_blocks")
        published = {"id": f"V{self._next_id():08d}", **view}
        self.homes.setdefault(user, []).append(published)
        return {"ok": True, "view": published}

    def _sessions_set_status(self, call: SlackCall) -> dict[str, Any]:
        if self.sessions_error:
            raise SlackApiFailure(self.sessions_error)
        channel = str(call.get("channel_id") or "")
        status = call.get("status")
        if not channel or status not in ("active", "processing", "suspended", "closed"):
            raise SlackApiFailure("invalid_arguments")
        thread = str(call.get("thread_ts") or "")
        if not thread:
            raise SlackApiFailure("thread_ts_required")
        title = call.get("title")
        if title is not None and not 1 <= len(str(title)) <= 200:
            raise SlackApiFailure("invalid_title")
        session = self.agent_sessions.get((channel, thread))
        if session is None:  # created by the first call; title and initiator only then
            session = {
                "title": title,
                "initiator_user_id": call.get("initiator_user_id"),
                "statuses": [],
            }
            self.agent_sessions[(channel, thread)] = session
        session["status"] = status
        session["statuses"].append(status)
        return {"ok": True}

    def _sessions_rename(self, call: SlackCall) -> dict[str, Any]:
        if self.sessions_error:
            raise SlackApiFailure(self.sessions_error)
        key = (str(call.get("channel_id") or ""), str(call.get("thread_ts") or ""))
        title = str(call.get("title") or "")
        if key not in self.agent_sessions:
            raise SlackApiFailure("session_not_found")
        if not 1 <= len(title) <= 200:
            raise SlackApiFailure("invalid_title")
        self.agent_sessions[key]["title"] = title
        return {"ok": True}

    def session_statuses(self, channel: str, thread_ts: str) -> list[str]:
        """Every status the thread's agent session was given, oldest first ([] if none)."""
        session = self.agent_sessions.get((channel, thread_ts))
        return list(session["statuses"]) if session else []

    def home_of(self, user: str) -> dict[str, Any] | None:
        """The App Home tab `user` sees now (the last one published), None if never."""
        published = self.homes.get(user)
        return published[-1] if published else None

    def _files_info(self, call: SlackCall) -> dict[str, Any]:
        fid = str(call.get("file") or "")
        file = self.files.get(fid)
        if file is None:
            raise SlackApiFailure("file_not_found")
        if file.get("_deleted"):
            raise SlackApiFailure("file_deleted")
        return {
            "ok": True,
            "file": copy.deepcopy(file),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }
