"""`codegen-bot console`: the bot in a terminal, no Slack needed.

The console runs the bot exactly as in production (build_runtime, the Bolt app with the real
listeners, intake, dispatcher, tracker, the scheduler's ticks) and replaces only Slack itself:

* What you type becomes the payload Slack would send (a slash command, an app_mention, a DM
  message), dispatched to Bolt the way Socket Mode does (`AsyncBoltRequest(mode="socket_mode")`).
* The bot's Web API calls go to the fake Slack the tests use too (bot.devtools.slack), served
  on 127.0.0.1 (SLACK_API_URL points there). It keeps messages, threads and files; a terminal
  view (bot.devtools.terminal) prints every message the bot posts or edits as text, so the
  status card and the final reply show up as they would in the thread.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.config import Settings
from bot.devtools.emulator import EmulatorState, running_emulator
from bot.devtools.slack import FakeSlack
from bot.devtools.terminal import TerminalView
from bot.slack.text import plural, slack_escape

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

HELP = f"""\
Type what you would type in Slack:
  /codegen <request> [repo=… model=… agent=…]   slash command in #{CHANNEL_NAME}
  /codegen help | status <run id> | list | config …
  /codegen                                      open the run form (then: submit <request>)
  @codegen <request> [--image shot.png …]       mention in #{CHANNEL_NAME} (starts a thread)
  > <text> [--image shot.png]                   plain reply in the latest thread (answers
                                                a paused run; `> @codegen …` follows up)
  reply <n> <text>                              the same in thread n
  dm <text>                                     direct message to the bot
  codegen pause|fail|finish|cancel <run id>     make the emulated run do that now
  codegen refuse-stop                           the emulator refuses stops from now on
  press <button>                                press the newest button with that label
                                                (stop, ready for review, draft, close, …)
  codegen person <name>                         someone with their own Codegen token (printed)
  submit <text>                                 fill in the form's first field and submit it
                                                (/codegen alone opens the run form;
                                                /codegen login a token form: BOT_SECRET_KEY)
  as <name> <line>                              type one line as someone else (for admins,
                                                allow-lists, membership: <name>@example.com;
                                                the emulator's members are you and teammate)
  home                                          open the bot's App Home tab and show it
  wait [seconds]                                wait for the runs so far to finish
  help                                          this text
  quit                                          leave now (end of input waits for runs)"""


# -- typed lines --------------------------------------------------------------------------------

_IMAGE_FLAG = re.compile(r"(?:^|\s)--image(?:=|\s+)(\"[^\"]+\"|'[^']+'|\S+)")
_MENTION = re.compile(r"^@codegen\b[:,]?\s*", re.IGNORECASE)
_REPLY_N = re.compile(r"^reply\s+(\d+)\s*(.*)$", re.IGNORECASE | re.DOTALL)
_PERSON = re.compile(r"^codegen\s+person\s+([a-z][a-z0-9._-]{0,30})\s*$", re.IGNORECASE)
_SUBMIT = re.compile(r"^submit\s+(.+)$", re.IGNORECASE | re.DOTALL)
_PRESS = re.compile(r"^press\s+\[?([^\]]+?)\]?\s*$", re.IGNORECASE)
_AS = re.compile(r"^as\s+@?([a-z][a-z0-9._-]{0,30})\s+(.+)$", re.IGNORECASE | re.DOTALL)
# The console's own person has the emulator's token owner's email, so membership matches.
USER_EMAIL = "dev@example.com"
_EMULATE = re.compile(r"^codegen\s+(pause|fail|finish|cancel)\s+#?(\d+)\s*$", re.IGNORECASE)
# What `codegen <verb> <run id>` makes the emulated run's status.
EMULATED_STATUS = {
    "pause": "PAUSED",
    "fail": "FAILED",
    "finish": "COMPLETE",
    "cancel": "CANCELLED",
}


def split_images(text: str) -> tuple[str, list[str]]:
    """`fix this --image a.png --image "b c.png"` → ("fix this", ["a.png", "b c.png"])."""
    paths = [shlex.split(match)[0] for match in _IMAGE_FLAG.findall(text)]
    rest = _IMAGE_FLAG.sub(" ", text)
    return " ".join(rest.split()), paths


@dataclass(frozen=True)
class Banner:
    codegen: str
    database: str
    log: str = "on stderr"
    allowlists: str = ""

    def lines(self) -> list[str]:
        return [
            RULE,
            "CODEGEN-BOT CONSOLE: NO SLACK. This terminal stands in for a Slack channel.",
            f"  Slack:    SIMULATED in this terminal (#{CHANNEL_NAME} is {CHANNEL_ID}; you are "
            f"@{USER_NAME}, {USER_ID})",
            f"  Codegen:  {self.codegen}",
            f"  Database: {self.database}",
            f"  Log:      {self.log}",
            *([f"  Allowed:  {self.allowlists}"] if self.allowlists else []),
            "  Real:     the bot's handlers, queue, dispatcher, tracker and messages.",
            "",
            *HELP.splitlines(),
            RULE,
        ]


def describe_allowlists(settings: Settings) -> str:
    """What the allow-lists mean for the console's one person and channel ("" when unset)."""
    parts = []
    if settings.allowed_slack_users:
        verdict = "you may" if USER_ID in settings.allowed_slack_users else "you may NOT"
        parts.append(f"ALLOWED_SLACK_USERS is set: {verdict} start runs")
    if settings.allowed_slack_channels:
        here = CHANNEL_ID in settings.allowed_slack_channels
        parts.append(
            f"ALLOWED_SLACK_CHANNELS is set: #{CHANNEL_NAME} is {'' if here else 'NOT '}allowed "
            "(DMs always are)"
        )
    return "; ".join(parts)


class RunningBot(Protocol):
    """What the console needs of the bot it runs (bot.app builds it)."""

    async def settle(self) -> None: ...

    async def unfinished(self) -> int: ...


class Console:
    """One console session: the bot wired to the fake Slack, shown in a terminal."""

    def __init__(
        self,
        *,
        bot: RunningBot,
        bolt: AsyncApp,
        slack: FakeSlack,
        view: TerminalView,
        echo: bool,
        emulator: EmulatorState | None,
    ) -> None:
        self.bot = bot
        self.bolt = bolt
        self.slack = slack
        self.view = view
        self.echo = echo
        self.emulator = emulator  # None when the real Codegen API is used
        self.user_id = USER_ID  # who is typing (`as <name> …` changes it for one line)

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
        log: str = "on stderr",
    ) -> AsyncIterator[Console]:
        from bot.app import build_bolt_app, build_runtime  # the wiring, entered once

        state: EmulatorState | None = None
        async with contextlib.AsyncExitStack() as stack:
            slack = await stack.enter_async_context(
                FakeSlack.running(
                    bot_token=CONSOLE_BOT_TOKEN,
                    team_id=TEAM_ID,
                    team_name=TEAM_NAME,
                    team_domain="console",
                    bot_user_id=BOT_USER_ID,
                    bot_id=BOT_ID,
                    app_id=APP_ID,
                    bot_name=BOT_NAME,
                )
            )
            slack.add_channel(CHANNEL_ID, name=CHANNEL_NAME)
            slack.add_channel(DM_ID, is_im=True, user=USER_ID)
            slack.add_user(USER_ID, USER_NAME, real_name=USER_NAME, email=USER_EMAIL)
            view = TerminalView(
                out,
                slack,
                channel_id=CHANNEL_ID,
                channel_name=CHANNEL_NAME,
                user_id=USER_ID,
                user_name=USER_NAME,
                bot_name=BOT_NAME,
            )
            slack.observe(view)
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
            banner = Banner(
                codegen=codegen,
                database="a throwaway SQLite file (gone at exit)",
                log=log,
                allowlists=describe_allowlists(console_settings),
            )
            for line in banner.lines():
                view.say(line)
            runtime = await build_runtime(console_settings, codegen_url=codegen_url)
            stack.push_async_callback(runtime.close)
            bolt = build_bolt_app(runtime)
            if ticks:
                runtime.start_ticks()
            runtime.mark_ready()
            yield cls(bot=runtime, bolt=bolt, slack=slack, view=view, echo=echo, emulator=state)

    # -- lines -------------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one typed line; False when the person asked to quit."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        if self.echo:
            self.view.say(f"\nyou> {text}")
        lowered = text.lower()
        if lowered in ("quit", "exit", ":q"):
            return False
        if match := _AS.match(text):
            return await self.as_person(match.group(1).lower(), match.group(2))
        if lowered in ("help", "?"):
            self.view.say(HELP)
        elif lowered == "wait" or lowered.startswith("wait "):
            seconds = _number(text[4:].strip(), DEFAULT_WAIT_SECONDS)
            if seconds is None:
                self.view.say("usage: wait [seconds]")
            else:
                await self.wait_for_runs(seconds)
        elif lowered.startswith("/codegen"):
            await self.slash(text[len("/codegen") :].strip())
        elif _MENTION.match(text):
            await self.message(_MENTION.sub("", text, count=1), channel=CHANNEL_ID)
        elif text.startswith(">"):
            if self.view.latest_thread is None:
                self.view.say("There is no thread yet: start one with /codegen or @codegen.")
            else:
                channel, root = self.view.latest_thread
                await self.reply(text[1:].strip(), channel=channel, thread_ts=root)
        elif match := _REPLY_N.match(text):
            thread = self.view.thread_by_number(int(match.group(1)))
            if thread is None:
                self.view.say(f"There is no thread {match.group(1)}.")
            else:
                await self.reply(match.group(2).strip(), channel=thread[0], thread_ts=thread[1])
        elif lowered.startswith("dm ") or lowered == "dm":
            await self.message(text[2:].strip(), channel=DM_ID)
        elif match := _EMULATE.match(text):
            self.emulate(match.group(1).lower(), int(match.group(2)))
        elif match := _PERSON.match(text):
            self.person(match.group(1).lower())
        elif match := _SUBMIT.match(text):
            await self.submit(match.group(1).strip())
        elif lowered == "home":
            await self.home()
        elif match := _PRESS.match(text):
            await self.press(match.group(1).strip())
        elif lowered == "codegen refuse-stop":
            if self.emulator is None:
                self.view.say("(the real Codegen API is in use: nothing to script)")
            else:
                self.emulator.stop_supported = False
                self.view.say("(emulator: stops are refused from now on, as an API without one)")
        else:
            self.view.say(
                "Not understood. Start with /codegen, @codegen, > (reply), dm; or type help."
            )
        await self.bot.settle()
        return True

    async def slash(self, text: str) -> None:
        if "--image" in text:
            self.view.say("A slash command cannot carry files; use @codegen … --image <file>.")
            return
        payload = {
            "token": "",
            "team_id": TEAM_ID,
            "team_domain": "console",
            "channel_id": CHANNEL_ID,
            "channel_name": CHANNEL_NAME,
            "user_id": self.user_id,
            "user_name": self.slack.users[self.user_id]["name"],
            "command": "/codegen",
            "text": slack_escape(text),  # Slack escapes &, < and > as in messages
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.slack.response_url(),
            "trigger_id": uuid.uuid4().hex,
        }
        response = await self.bolt.async_dispatch(
            AsyncBoltRequest(body=payload, mode="socket_mode")
        )
        ack = _ack_text(response.body)
        if ack:
            self.view.show(f"{BOT_NAME} · only visible to you", self.view.plain(ack))
        elif response.status >= 400:
            self.view.say(f"(the bot answered {response.status}: {response.body})")

    async def as_person(self, name: str, line: str) -> bool:
        """`as bob /codegen config repo=…`: one line typed by another person of the workspace
        (created on first use, with the email <name>@example.com)."""
        user_id = f"U0{re.sub(r'[^A-Z0-9]', '', name.upper())[:18] or 'SOMEONE'}"
        if user_id not in self.slack.users:
            self.slack.add_user(user_id, name, real_name=name, email=f"{name}@example.com")
        self.view.say(f"   (as @{name}, {user_id})")
        self.user_id = user_id
        try:
            return await self.handle(line)
        finally:
            self.user_id = USER_ID

    def person(self, name: str) -> None:
        """`codegen person erin`: the emulator gets a member with their own API token."""
        if self.emulator is None:
            self.view.say("(the real Codegen API is in use: its people are its own)")
            return
        token = f"cg-console-{name}-token"
        if token not in self.emulator.tokens:
            self.emulator.add_person(token, email=f"{name}@example.com", name=name)
        self.view.say(
            f"(emulator: {name}@example.com's Codegen API token is {token}; "
            f"try `as {name} /codegen login`, then `as {name} submit {token}`)"
        )

    async def submit(self, text: str) -> None:
        """Fill the one field of the form the bot opened last and submit it, as Slack would
        post the view_submission."""
        if not self.slack.views:
            self.view.say("(no form is open: /codegen login opens one)")
            return
        opened = self.slack.views[-1]["view"]
        state: dict[str, Any] = {}
        filled = False
        for block in opened.get("blocks", []):
            if block.get("type") != "input":
                continue
            element = block["element"]
            kind, action = element.get("type"), element["action_id"]
            if kind == "plain_text_input":
                # The first text field takes what was typed; the others stay as opened.
                value = element.get("initial_value") if filled else text
                filled = True
                state[block["block_id"]] = {action: {"type": kind, "value": value}}
            else:
                chosen = element.get("initial_option")
                state[block["block_id"]] = {action: {"type": kind, "selected_option": chosen}}
        body = {
            "type": "view_submission",
            "team": {"id": TEAM_ID},
            "user": {"id": self.user_id},
            "api_app_id": APP_ID,
            "view": {**opened, "state": {"values": state}},
        }
        response = await self.bolt.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        answer = response.body if isinstance(response.body, dict) else _json_or_empty(response.body)
        if answer.get("response_action") == "errors":
            shown = "; ".join(str(v) for v in (answer.get("errors") or {}).values())
            self.view.show(f"{BOT_NAME} · form", f"not accepted: {self.view.plain(shown)}")
        elif answer.get("response_action") == "update":
            view = answer.get("view") or {}
            text = self.view.render({"text": "", "blocks": view.get("blocks") or []})
            self.view.show(f"{BOT_NAME} · form", text)
        else:
            self.view.show(f"{BOT_NAME} · form", "(closed)")

    async def press(self, label: str) -> None:
        """`press ready for review`: the newest of the bot's buttons with that label (in any
        channel), pressed as Slack posts the interaction. Link buttons only open a page."""
        wanted = label.casefold()
        found: tuple[str, dict[str, Any], dict[str, Any]] | None = None
        for channel in (CHANNEL_ID, DM_ID):
            for message in self.slack.bot_messages(channel):
                for block in message.get("blocks") or []:
                    if block.get("type") != "actions":
                        continue
                    for element in block.get("elements") or []:
                        text = str((element.get("text") or {}).get("text", "")).casefold()
                        if element.get("type") == "button" and text == wanted:
                            newest = found is None or float(message["ts"]) > float(found[1]["ts"])
                            if newest:
                                found = (channel, message, element)
        if found is None:
            self.view.say(f"(no button [{label}] on the bot's messages)")
            return
        channel, message, element = found
        if element.get("url"):
            self.view.say(f"(a link: {element['url']})")
            return
        body = {
            "type": "block_actions",
            "team": {"id": TEAM_ID},
            "user": {"id": self.user_id},
            "api_app_id": APP_ID,
            "channel": {"id": channel},
            "container": {
                "type": "message",
                "channel_id": channel,
                "message_ts": message["ts"],
                "thread_ts": message.get("thread_ts"),
            },
            "actions": [
                {
                    "action_id": element.get("action_id"),
                    "type": "button",
                    "value": element.get("value"),
                }
            ],
        }
        response = await self.bolt.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        if response.status >= 400:
            self.view.say(f"(the bot answered {response.status}: {response.body})")

    def emulate(self, verb: str, run_id: int) -> None:
        """`codegen pause 1000`: the emulated run takes that status now (the bot sees it on
        its next read), so pauses, failures and stops can be tried without Slack."""
        if self.emulator is None:
            self.view.say("(the real Codegen API is in use: its runs cannot be scripted)")
            return
        if run_id not in self.emulator.runs:
            self.view.say(f"(the emulator has no run #{run_id})")
            return
        status = EMULATED_STATUS[verb]
        self.emulator.set_status(run_id, status)
        self.view.say(f"(emulator: run #{run_id} is {status} now)")

    async def reply(self, text: str, *, channel: str, thread_ts: str) -> str | None:
        """`> text`: a plain reply in the thread, or a mention when it starts with @codegen."""
        if _MENTION.match(text) or channel == DM_ID:
            return await self.message(
                _MENTION.sub("", text, count=1), channel=channel, thread_ts=thread_ts
            )
        return await self.message(text, channel=channel, thread_ts=thread_ts, mention=False)

    async def message(
        self, text: str, *, channel: str, thread_ts: str | None = None, mention: bool = True
    ) -> str | None:
        """A message from you: a mention in the channel (or a plain reply in a thread), or a
        DM; returns its ts."""
        prompt, paths = split_images(text)
        files = self._attach(paths)
        if files is None:
            return None
        is_dm = channel == DM_ID
        plain = is_dm or not mention
        escaped = slack_escape(prompt)  # as Slack sends message text
        slack_text = escaped if plain else f"<@{BOT_USER_ID}> {escaped}".rstrip()
        ts = self.slack.add_message(
            channel, slack_text, self.user_id, thread_ts=thread_ts, files=files
        )
        number = self.view.touch_thread(channel, thread_ts or ts)
        if not thread_ts and not self.echo:
            self.view.say(f"   (your message starts thread {number})")
        event: dict[str, Any] = {
            "type": "message" if plain else "app_mention",
            "user": self.user_id,
            "text": slack_text,
            "ts": ts,
            "channel": channel,
            "team": TEAM_ID,
            "event_ts": ts,
        }
        if plain:
            event["channel_type"] = "im" if is_dm else "channel"
        if thread_ts:
            event["thread_ts"] = thread_ts
        if files:
            event["files"] = files
            if plain:
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
            self.view.say(f"(the bot answered {response.status}: {response.body})")
        return ts

    async def home(self) -> None:
        """Open the Home tab as Slack would (app_home_opened) and show what the bot published."""
        body = {
            "token": "",
            "team_id": TEAM_ID,
            "api_app_id": APP_ID,
            "event": {
                "type": "app_home_opened",
                "user": self.user_id,
                "channel": DM_ID,
                "tab": "home",
                "event_ts": f"{time.time():.6f}",
            },
            "type": "event_callback",
            "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
        }
        await self.bolt.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        await self.bot.settle()
        view = self.slack.home_of(self.user_id)
        if view is None:
            self.view.say("(the bot published no Home tab: see the log)")
            return
        self.view.show(
            f"{BOT_NAME} · Home", self.view.render({"text": "", "blocks": view["blocks"]})
        )

    def _attach(self, names: list[str]) -> list[dict[str, Any]] | None:
        """Host the files named with --image; None (and a note) if one does not exist."""
        files = []
        for name in names:
            path = Path(name).expanduser()
            if not path.is_file():
                self.view.say(f"No such file: {name} (nothing was sent)")
                return None
            mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files.append(
                self.slack.add_file(path.name, path.read_bytes(), mimetype, user=self.user_id)
            )
        return files

    # -- waiting -----------------------------------------------------------------------------

    async def unfinished(self) -> int:
        """Requests not yet sent, plus runs still in progress (a PAUSED run waits for you)."""
        return await self.bot.unfinished()

    async def wait_for_runs(self, seconds: float, *, step: float = 0.2) -> bool:
        """Wait until every request is sent and every run has ended (or is PAUSED)."""
        await self.bot.settle()
        count = await self.unfinished()
        if count == 0:
            return True
        self.view.say(
            f"(waiting up to {seconds:g} s for "
            f"{plural(count, 'unfinished request or run', 'unfinished requests and runs')})"
        )
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(step)
            if await self.unfinished() == 0:
                await self.bot.settle()
                return True
        left = await self.unfinished()
        self.view.say(f"(gave up waiting after {seconds:g} s; {left} still unfinished)")
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


def _json_or_empty(body: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _number(text: str, default: float) -> float | None:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


def derive_settings(settings: Settings, *, slack_api_url: str, database_url: str) -> Settings:
    """The settings the console runs the bot with: Slack is the terminal. The allow-lists and
    admins stay as set, so they can be tried here (you are USER_ID in CHANNEL_ID)."""
    update: dict[str, Any] = {
        "slack_bot_token": SecretStr(CONSOLE_BOT_TOKEN),
        "slack_app_token": None,
        "slack_signing_secret": None,
        "slack_api_url": slack_api_url,
        "database_url": database_url,
        "bot_mode": "console",
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
    console.view.say("\n(end of input)")
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
    log: str = "on stderr",
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
            log=log,
        ) as console:
            return await converse(console, stream_lines(stdin), wait=wait_seconds)

    with tempfile.TemporaryDirectory(prefix="codegen-bot-console-") as scratch:
        return asyncio.run(main(f"sqlite+aiosqlite:///{Path(scratch) / 'console.db'}"))
