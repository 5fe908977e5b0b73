"""`codegen-bot console`: the bot in a terminal, no Slack needed.

The console runs the bot exactly as in production (build_runtime, the Bolt app with the real
listeners, intake, dispatcher, tracker, the scheduler's ticks) and replaces only Slack itself:

* What you type becomes the payload Slack would send (a slash command, an app_mention, a DM
  message), dispatched to Bolt the way Socket Mode does (`AsyncBoltRequest(mode="socket_mode")`).
* The bot's Web API calls go to a small "terminal Slack" served on 127.0.0.1 (SLACK_API_URL
  points there). It keeps messages, threads and files, and prints every message the bot posts
  or edits as text (bot.render.render_text), so the status card and the final reply show up
  as they would in the thread.
* Codegen is the built-in emulator unless CODEGEN_API_TOKEN is set.
* The database is a throwaway SQLite file: the conversation lives only in this terminal, so
  nothing it leaves behind would mean anything to a later run of the bot.

Lines are read from standard input, so a session can be scripted:

    echo '/codegen write a hello world script' | codegen-bot console

At the end of input the console waits (up to `--wait` seconds) for the runs it started to
finish, then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import mimetypes
import re
import shlex
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import parse_qsl

from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.codegen.emulator import EmulatorState, running_emulator, running_on_loopback
from bot.codegen.models import StatusKind, classify_status
from bot.config import Settings
from bot.render import RenderedMessage, mrkdwn_to_text, render_text, slack_escape
from bot.store.tables import QueuedRequest, RequestStatus, TrackedRun

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)

TEAM_ID = "T0CONSOLE"
TEAM_NAME = "Console"
APP_ID = "A0CONSOLE"
CHANNEL_ID = "C0CONSOLE"
CHANNEL_NAME = "console"
DM_ID = "D0CONSOLE"
USER_ID = "U0YOU"
USER_NAME = "you"
BOT_USER_ID = "U0CODEGEN"
BOT_ID = "B0CODEGEN"
BOT_NAME = "codegen"
# The bot token the terminal Slack accepts (only ever sent to 127.0.0.1).
CONSOLE_BOT_TOKEN = "xoxb-console-terminal-only"

# Emulated runs are short in the console so a whole run fits in a few seconds.
DEFAULT_PENDING_SECONDS = 2.0
DEFAULT_ACTIVE_SECONDS = 4.0
DEFAULT_WAIT_SECONDS = 120.0
EMULATOR_POLL_MIN_SECONDS = 1.0
EMULATOR_POLL_MAX_SECONDS = 5.0

RULE = "=" * 78
REACTION_EMOJI = {
    "eyes": "👀",
    "hourglass_flowing_sand": "⏳",
    "white_check_mark": "✅",
    "x": "❌",
}

HELP = f"""\
Type what you would type in Slack:
  /codegen <request> [repo=… model=… agent=…]   slash command in #{CHANNEL_NAME}
  /codegen help | status <run id> | list | config …
  @codegen <request> [--image shot.png …]       mention in #{CHANNEL_NAME} (starts a thread)
  > <text> [--image shot.png]                   reply in the latest thread (@codegen there)
  reply <n> <text>                              reply in thread n
  dm <text>                                     direct message to the bot
  wait [seconds]                                wait for the runs so far to finish
  help                                          this text
  quit                                          leave now (end of input waits for runs)"""


# -- the terminal's stand-in for Slack ----------------------------------------------------------


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)

    def as_slack(self, *, include_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user}
        out["text"] = self.text
        if self.user == BOT_USER_ID:
            out["bot_id"] = BOT_ID
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.files:
            out["files"] = self.files
        if include_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


class TerminalSlack:
    """The part of the Slack Web API the bot calls, printing what a person would see."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.base_url = ""  # set once served
        self.messages: dict[tuple[str, str], Message] = {}
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.threads: dict[tuple[str, str], int] = {}
        self.latest_thread: tuple[str, str] | None = None
        self.reactions: dict[tuple[str, str], list[str]] = {}
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/files/{file_id}/{name}", self._file, methods=["GET"]),
                Route("/response/{n}", self._response_url, methods=["POST"]),
            ]
        )

    # -- what the console does for the person at the keyboard --------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def post_user_message(
        self, channel: str, text: str, *, thread_ts: str | None, files: list[dict[str, Any]]
    ) -> str:
        ts = self.next_ts()
        self.messages[(channel, ts)] = Message(
            channel=channel, ts=ts, user=USER_ID, text=text, thread_ts=thread_ts, files=files
        )
        self._touch_thread(channel, thread_ts or ts)
        return ts

    def add_file(self, path: Path) -> dict[str, Any]:
        data = path.read_bytes()
        file_id = f"F{next(self._ids):08d}"
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        url = f"{self.base_url}/files/{file_id}/{path.name}"
        info = {
            "id": file_id,
            "name": path.name,
            "title": path.name,
            "mimetype": mimetype,
            "filetype": path.suffix.lstrip(".").lower() or "binary",
            "size": len(data),
            "url_private": url,
            "url_private_download": url,
        }
        self.files[file_id] = (info, data)
        return dict(info)

    def thread_number(self, channel: str, root_ts: str) -> int | None:
        return self.threads.get((channel, root_ts))

    def thread_by_number(self, number: int) -> tuple[str, str] | None:
        return next((key for key, n in self.threads.items() if n == number), None)

    def _touch_thread(self, channel: str, root_ts: str) -> int:
        key = (channel, root_ts)
        if key not in self.threads:
            self.threads[key] = len(self.threads) + 1
        self.latest_thread = key
        return self.threads[key]

    # -- printing ----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def show(self, header: str, body: str) -> None:
        lines = [f"── {header} " + "─" * max(3, 74 - len(header))]
        lines += [f"   {line}" if line else "" for line in body.splitlines()]
        self.say("\n".join(lines))

    def where(self, channel: str, thread_ts: str | None) -> str:
        place = f"#{CHANNEL_NAME}" if channel == CHANNEL_ID else "DM"
        if thread_ts:
            number = self.threads.get((channel, thread_ts))
            return f"{place} · thread {number}" if number else place
        return place

    # -- HTTP endpoints ----------------------------------------------------------------------

    async def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query_params)
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if body and "application/json" in content_type:
            parsed = json.loads(body)
            if isinstance(parsed, dict):
                params.update(parsed)
        elif body:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        for key in ("blocks", "metadata", "attachments"):
            value = params.get(key)
            if isinstance(value, str) and value[:1] in ("[", "{"):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(value)
        return params

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and token.strip() == CONSOLE_BOT_TOKEN

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        params = await self._params(request)
        if not self._authorized(request) and params.pop("token", None) != CONSOLE_BOT_TOKEN:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown_method"})
        try:
            answer = handler(params)
        except _Refused as refused:
            return JSONResponse({"ok": False, "error": refused.error})
        return JSONResponse({"ok": True, **answer}, headers={"x-oauth-scopes": "console"})

    async def _file(self, request: Request) -> Response:
        stored = self.files.get(request.path_params["file_id"])
        if stored is None or not self._authorized(request):
            return Response("not found", status_code=404, media_type="text/plain")
        info, data = stored
        return Response(data, media_type=info["mimetype"])

    async def _response_url(self, request: Request) -> Response:
        body = await self._params(request)
        if body.get("text"):
            self.show(f"{BOT_NAME} · only visible to you", self.plain(str(body["text"])))
        return Response("ok", media_type="text/plain")

    # -- Web API methods ---------------------------------------------------------------------

    def _message(self, params: dict[str, Any]) -> Message:
        message = self.messages.get((str(params.get("channel")), str(params.get("ts"))))
        if message is None:
            raise _Refused("message_not_found")
        return message

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "http://console.invalid/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if channel not in (CHANNEL_ID, DM_ID):
            raise _Refused("channel_not_found")
        thread_ts = params.get("thread_ts") or None
        message = Message(
            channel=channel,
            ts=self.next_ts(),
            user=BOT_USER_ID,
            text=str(params.get("text") or ""),
            blocks=params.get("blocks") or None,
            thread_ts=thread_ts,
            metadata=params.get("metadata") or None,
        )
        self.messages[(channel, message.ts)] = message
        number = self._touch_thread(channel, thread_ts or message.ts)
        header = f"{BOT_NAME} · {self.where(channel, thread_ts)}"
        if not thread_ts:
            header += f" · starts thread {number}"
        self.show(header, self.render(message))
        return {
            "channel": channel,
            "ts": message.ts,
            "message": message.as_slack(include_metadata=False),
        }

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message(params)
        if message.user != BOT_USER_ID:
            raise _Refused("cant_update_message")
        message.text = str(params.get("text") or message.text)
        if "blocks" in params:
            message.blocks = params.get("blocks") or None
        header = f"{BOT_NAME} · {self.where(message.channel, message.thread_ts)} · card updated"
        self.show(header, self.render(message))
        return {"channel": message.channel, "ts": message.ts, "text": message.text}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self.show(f"{BOT_NAME} · only visible to you", self.plain(str(params.get("text") or "")))
        return {"message_ts": self.next_ts()}

    def _m_chat_getPermalink(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message({"channel": params.get("channel"), "ts": params.get("message_ts")})
        stamp = message.ts.replace(".", "")
        return {
            "channel": message.channel,
            "permalink": f"{self.base_url}/archives/{message.channel}/p{stamp}",
        }

    def _m_reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message({"channel": params.get("channel"), "ts": params.get("timestamp")})
        name = str(params.get("name") or "")
        present = self.reactions.setdefault((message.channel, message.ts), [])
        if name in present:
            raise _Refused("already_reacted")
        present.append(name)
        emoji = REACTION_EMOJI.get(name, f":{name}:")
        whose = "your message" if message.user == USER_ID else "the thread's first message"
        self.say(f"   ({BOT_NAME} reacted {emoji} to {whose} in {self.where_of(message)})")
        return {}

    def _m_reactions_remove(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message({"channel": params.get("channel"), "ts": params.get("timestamp")})
        present = self.reactions.get((message.channel, message.ts), [])
        name = str(params.get("name") or "")
        if name not in present:
            raise _Refused("no_reaction")
        present.remove(name)
        return {}

    def where_of(self, message: Message) -> str:
        return self.where(message.channel, message.thread_ts or message.ts)

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, root = str(params.get("channel")), str(params.get("ts"))
        if (channel, root) not in self.messages:
            raise _Refused("thread_not_found")
        include = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        found = [
            m.as_slack(include_metadata=include)
            for m in sorted(self.messages.values(), key=lambda m: _ts_key(m.ts))
            if m.channel == channel and (m.ts == root or m.thread_ts == root)
        ]
        return {"messages": found, "has_more": False}

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel"))
        found = [
            m.as_slack(include_metadata=False)
            for m in sorted(self.messages.values(), key=lambda m: _ts_key(m.ts), reverse=True)
            if m.channel == channel and not m.thread_ts
        ]
        return {"messages": found, "has_more": False}

    def _m_conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel"))
        if channel == CHANNEL_ID:
            return {
                "channel": {
                    "id": CHANNEL_ID,
                    "name": CHANNEL_NAME,
                    "is_channel": True,
                    "is_private": False,
                    "is_member": True,
                }
            }
        if channel == DM_ID:
            return {"channel": {"id": DM_ID, "is_im": True, "user": USER_ID, "is_member": True}}
        raise _Refused("channel_not_found")

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"channel": {"id": DM_ID}}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = str(params.get("user"))
        name = {USER_ID: USER_NAME, BOT_USER_ID: BOT_NAME}.get(user)
        if name is None:
            raise _Refused("user_not_found")
        return {
            "user": {
                "id": user,
                "name": name,
                "real_name": name,
                "is_bot": user == BOT_USER_ID,
                "profile": {"display_name": name, "real_name": name},
            }
        }

    def _m_files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(str(params.get("file")))
        if stored is None:
            raise _Refused("file_not_found")
        return {"file": dict(stored[0])}

    # -- rendering ---------------------------------------------------------------------------

    def render(self, message: Message) -> str:
        if message.blocks:
            text = render_text(RenderedMessage(text=message.text, blocks=message.blocks))
        else:
            text = mrkdwn_to_text(message.text)
        return _names(text)

    def plain(self, mrkdwn: str) -> str:
        return _names(mrkdwn_to_text(mrkdwn))


class _Refused(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, fraction = ts.partition(".")
    return int(seconds), int(fraction or 0)


_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


def _names(text: str) -> str:
    """Terminal touches on top of mrkdwn_to_text: names for ids, no bold stars, quote bars."""
    text = text.replace(f"@{USER_ID}", f"@{USER_NAME}").replace(f"@{BOT_USER_ID}", f"@{BOT_NAME}")
    lines = []
    for line in text.splitlines():
        if line.startswith("&gt;") or line.startswith(">"):
            line = "│ " + line.removeprefix("&gt;").removeprefix(">").lstrip()
        lines.append(_BOLD.sub(r"\1", line))
    return "\n".join(lines)


# -- typed lines --------------------------------------------------------------------------------

_IMAGE_FLAG = re.compile(r"(?:^|\s)--image(?:=|\s+)(\"[^\"]+\"|'[^']+'|\S+)")
_MENTION = re.compile(r"^@codegen\b[:,]?\s*", re.IGNORECASE)
_REPLY_N = re.compile(r"^reply\s+(\d+)\s*(.*)$", re.IGNORECASE | re.DOTALL)


def split_images(text: str) -> tuple[str, list[str]]:
    """`fix this --image a.png --image "b c.png"` → ("fix this", ["a.png", "b c.png"])."""
    paths = [shlex.split(match)[0] for match in _IMAGE_FLAG.findall(text)]
    rest = _IMAGE_FLAG.sub(" ", text)
    return " ".join(rest.split()), paths


@dataclass(frozen=True)
class Banner:
    codegen: str
    database: str

    def lines(self) -> list[str]:
        return [
            RULE,
            "CODEGEN-BOT CONSOLE: NO SLACK. This terminal stands in for a Slack channel.",
            f"  Slack:    SIMULATED in this terminal (#{CHANNEL_NAME}, you are @{USER_NAME})",
            f"  Codegen:  {self.codegen}",
            f"  Database: {self.database}",
            "  Real:     the bot's handlers, queue, dispatcher, tracker and messages.",
            "",
            *HELP.splitlines(),
            RULE,
        ]


class Console:
    """One console session: the bot's runtime wired to a terminal Slack."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        bolt: AsyncApp,
        slack: TerminalSlack,
        out: TextIO,
        echo: bool,
        emulator: EmulatorState | None,
    ) -> None:
        self.runtime = runtime
        self.bolt = bolt
        self.slack = slack
        self.out = out
        self.echo = echo
        self.emulator = emulator  # None when the real Codegen API is used

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        settings: Settings,
        *,
        database_url: str,
        out: TextIO,
        echo: bool = False,
        pending_seconds: float = DEFAULT_PENDING_SECONDS,
        active_seconds: float = DEFAULT_ACTIVE_SECONDS,
        ticks: bool = True,
    ) -> AsyncIterator[Console]:
        from bot.app import build_bolt_app, build_runtime

        slack = TerminalSlack(out)
        state: EmulatorState | None = None
        async with contextlib.AsyncExitStack() as stack:
            slack.base_url = await stack.enter_async_context(running_on_loopback(slack.app))
            if settings.uses_emulator:
                state = EmulatorState(
                    token=settings.effective_codegen_token,
                    org_id=settings.effective_org_id,
                    pending_seconds=pending_seconds,
                    active_seconds=active_seconds,
                )
                codegen_url = await stack.enter_async_context(running_emulator(state))
                total = pending_seconds + active_seconds
                codegen = (
                    f"BUILT-IN EMULATOR at {codegen_url} (a run takes about {total:g} s).\n"
                    "            Nothing reaches the real Codegen API; set CODEGEN_API_TOKEN "
                    "for that."
                )
            else:
                codegen_url = settings.codegen_api_url
                codegen = (
                    f"THE REAL CODEGEN API at {codegen_url}, organization "
                    f"{settings.effective_org_id}: runs you start here are real."
                )
            console_settings = derive_settings(
                settings, slack_api_url=slack.api_url, database_url=database_url
            )
            banner = Banner(codegen=codegen, database="a throwaway SQLite file (gone at exit)")
            for line in banner.lines():
                slack.say(line)
            runtime = await build_runtime(console_settings, codegen_url=codegen_url)
            stack.push_async_callback(runtime.close)
            bolt = build_bolt_app(runtime)
            if ticks:
                runtime.start_ticks()
            runtime.ready = True
            yield cls(runtime=runtime, bolt=bolt, slack=slack, out=out, echo=echo, emulator=state)

    # -- lines -------------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one typed line; False when the person asked to quit."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        if self.echo:
            self.slack.say(f"\nyou> {text}")
        lowered = text.lower()
        if lowered in ("quit", "exit", ":q"):
            return False
        if lowered in ("help", "?"):
            self.slack.say(HELP)
        elif lowered == "wait" or lowered.startswith("wait "):
            seconds = _number(text[4:].strip(), DEFAULT_WAIT_SECONDS)
            if seconds is None:
                self.slack.say("usage: wait [seconds]")
            else:
                await self.wait_for_runs(seconds)
        elif lowered.startswith("/codegen"):
            await self.slash(text[len("/codegen") :].strip())
        elif _MENTION.match(text):
            await self.message(_MENTION.sub("", text, count=1), channel=CHANNEL_ID)
        elif text.startswith(">"):
            if self.slack.latest_thread is None:
                self.slack.say("There is no thread yet: start one with /codegen or @codegen.")
            else:
                channel, root = self.slack.latest_thread
                await self.message(text[1:].strip(), channel=channel, thread_ts=root)
        elif match := _REPLY_N.match(text):
            thread = self.slack.thread_by_number(int(match.group(1)))
            if thread is None:
                self.slack.say(f"There is no thread {match.group(1)}.")
            else:
                await self.message(match.group(2).strip(), channel=thread[0], thread_ts=thread[1])
        elif lowered.startswith("dm ") or lowered == "dm":
            await self.message(text[2:].strip(), channel=DM_ID)
        else:
            self.slack.say(
                "Not understood. Start with /codegen, @codegen, > (reply), dm; or type help."
            )
        await self.settle()
        return True

    async def settle(self) -> None:
        """Let intake and the dispatch it wakes finish, so the next line sees their effects."""
        await self.runtime.intake.idle()
        await self.runtime.dispatcher.idle()

    async def slash(self, text: str) -> None:
        if "--image" in text:
            self.slack.say("A slash command cannot carry files; use @codegen … --image <file>.")
            return
        payload = {
            "token": "",
            "team_id": TEAM_ID,
            "team_domain": "console",
            "channel_id": CHANNEL_ID,
            "channel_name": CHANNEL_NAME,
            "user_id": USER_ID,
            "user_name": USER_NAME,
            "command": "/codegen",
            "text": slack_escape(text),  # Slack escapes &, < and > as in messages
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": f"{self.slack.base_url}/response/{uuid.uuid4().hex}",
            "trigger_id": uuid.uuid4().hex,
        }
        response = await self.bolt.async_dispatch(
            AsyncBoltRequest(body=payload, mode="socket_mode")
        )
        ack = _ack_text(response.body)
        if ack:
            self.slack.show(f"{BOT_NAME} · only visible to you", self.slack.plain(ack))
        elif response.status >= 400:
            self.slack.say(f"(the bot answered {response.status}: {response.body})")

    async def message(self, text: str, *, channel: str, thread_ts: str | None = None) -> str | None:
        """A message from you: a mention in the channel, or a DM; returns its ts."""
        prompt, paths = split_images(text)
        files = self._attach(paths)
        if files is None:
            return None
        is_dm = channel == DM_ID
        escaped = slack_escape(prompt)  # as Slack sends message text
        slack_text = escaped if is_dm else f"<@{BOT_USER_ID}> {escaped}".rstrip()
        ts = self.slack.post_user_message(channel, slack_text, thread_ts=thread_ts, files=files)
        if not thread_ts and not self.echo:
            number = self.slack.thread_number(channel, ts)
            self.slack.say(f"   (your message starts thread {number})")
        event: dict[str, Any] = {
            "type": "message" if is_dm else "app_mention",
            "user": USER_ID,
            "text": slack_text,
            "ts": ts,
            "channel": channel,
            "team": TEAM_ID,
            "event_ts": ts,
        }
        if is_dm:
            event["channel_type"] = "im"
        if thread_ts:
            event["thread_ts"] = thread_ts
        if files:
            event["files"] = files
            if is_dm:
                event["subtype"] = "file_share"
        body = {
            "token": "",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }
        response = await self.bolt.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        if response.status >= 400:
            self.slack.say(f"(the bot answered {response.status}: {response.body})")
        return ts

    def _attach(self, names: list[str]) -> list[dict[str, Any]] | None:
        """Host the files named with --image; None (and a note) if one does not exist."""
        files = []
        for name in names:
            path = Path(name).expanduser()
            if not path.is_file():
                self.slack.say(f"No such file: {name} (nothing was sent)")
                return None
            files.append(self.slack.add_file(path))
        return files

    # -- waiting -----------------------------------------------------------------------------

    async def unfinished(self) -> int:
        """Requests not yet sent, plus runs still in progress (a PAUSED run waits for you)."""
        store = self.runtime.store
        async with store.sessions() as session:
            queued = await session.scalars(
                select(QueuedRequest.id).where(QueuedRequest.status == RequestStatus.PENDING)
            )
            statuses = await session.scalars(
                select(TrackedRun.status).where(TrackedRun.tracking.is_(True))
            )
            waiting = len(queued.all())
            running = [
                s for s in statuses.all() if classify_status(s) is not StatusKind.WAITING_FOR_INPUT
            ]
        return waiting + len(running)

    async def wait_for_runs(self, seconds: float, *, step: float = 0.2) -> bool:
        """Wait until every request is sent and every run has ended (or is PAUSED)."""
        await self.settle()
        count = await self.unfinished()
        if count == 0:
            return True
        self.slack.say(f"(waiting up to {seconds:g} s for {count} unfinished request(s)/run(s))")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(step)
            if await self.unfinished() == 0:
                await self.settle()
                return True
        left = await self.unfinished()
        self.slack.say(f"(gave up waiting after {seconds:g} s; {left} still unfinished)")
        return False


def _ack_text(body: Any) -> str:
    if not body:
        return ""
    if isinstance(body, dict):
        return str(body.get("text") or "")
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return str(body)
    return str(parsed.get("text") or "") if isinstance(parsed, dict) else str(parsed)


def _number(text: str, default: float) -> float | None:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def derive_settings(settings: Settings, *, slack_api_url: str, database_url: str) -> Settings:
    """The settings the console runs the bot with: Slack is the terminal, no allow-lists."""
    update: dict[str, Any] = {
        "slack_bot_token": SecretStr(CONSOLE_BOT_TOKEN),
        "slack_app_token": None,
        "slack_signing_secret": None,
        "slack_api_url": slack_api_url,
        "database_url": database_url,
        "bot_mode": "console",
        "allowed_slack_users": [],
        "allowed_slack_channels": [],
    }
    if settings.uses_emulator:
        given = settings.model_fields_set
        if "codegen_poll_min_seconds" not in given:
            update["codegen_poll_min_seconds"] = EMULATOR_POLL_MIN_SECONDS
        if "codegen_poll_max_seconds" not in given:
            update["codegen_poll_max_seconds"] = max(
                EMULATOR_POLL_MAX_SECONDS,
                update.get("codegen_poll_min_seconds", settings.codegen_poll_min_seconds),
            )
    return settings.model_copy(update=update)


# -- reading lines -------------------------------------------------------------------------------


async def stream_lines(stream: TextIO) -> AsyncIterator[str]:
    """Lines of a blocking stream (stdin), read in a daemon thread so the loop never blocks
    and an interactive `quit` does not wait for a pending read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def put(item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def reader() -> None:
        try:
            for line in iter(stream.readline, ""):
                put(line)
        except (OSError, ValueError):
            pass
        finally:
            put(None)

    threading.Thread(target=reader, name="console-stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


async def converse(
    console: Console, lines: AsyncIterator[str] | Iterable[str], *, wait: float
) -> int:
    """Feed lines to the console; at the end of input wait for the runs. Exit status."""
    if isinstance(lines, Iterable):
        source: AsyncIterator[str] = _aiter(lines)
    else:
        source = lines
    async for line in source:
        if not await console.handle(line):
            return 0
    console.slack.say("\n(end of input)")
    return 0 if await console.wait_for_runs(wait) else 1


async def _aiter(lines: Iterable[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


def run_console(
    settings: Settings,
    *,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    pending_seconds: float = DEFAULT_PENDING_SECONDS,
    active_seconds: float = DEFAULT_ACTIVE_SECONDS,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    """The `codegen-bot console` command (and `run` in a terminal without Slack settings)."""
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    echo = not stdin.isatty()

    async def main(database_url: str) -> int:
        async with Console.start(
            settings,
            database_url=database_url,
            out=stdout,
            echo=echo,
            pending_seconds=pending_seconds,
            active_seconds=active_seconds,
        ) as console:
            return await converse(console, stream_lines(stdin), wait=wait_seconds)

    with tempfile.TemporaryDirectory(prefix="codegen-bot-console-") as scratch:
        return asyncio.run(main(f"sqlite+aiosqlite:///{Path(scratch) / 'console.db'}"))
