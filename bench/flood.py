"""A flood of slash commands against the bot over HTTP: nothing lost, nothing twice, never over
a limit.

    make bench                                   # 2,000 commands, 50 at a time
    python bench/flood.py --requests 300 --concurrency 50

The bot (bot.app, SQLite) runs behind uvicorn on loopback with the built-in Codegen emulator
(its documented limits: 10 creates a minute) and the fake Slack (Slack's tiers: chat.update 50
a minute, chat.postMessage about 1 a second per channel), both on one fake clock. The
commands arrive signed over real HTTP, `--concurrency` at a time, spread over `--channels`
channels; then the clock is driven as the scheduler would until every run has ended and been
reported. Printed beside each goal: acked, stored, created, failed after ack (0), 429s at the
emulator and at Slack (0), the most creates in any 60 s (≤ 10), and chat.update and
chat.postMessage per minute against Slack's tiers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/flood.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bot.app import Runtime, build_bolt_app, build_runtime, build_web_app  # noqa: E402
from bot.clock import FakeClock  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.devtools.emulator import EmulatorState, create_emulator_app, most_in_window  # noqa: E402
from bot.devtools.slack import FakeSlack  # noqa: E402
from bot.metrics import Metrics  # noqa: E402
from bot.serving import serve_http  # noqa: E402
from bot.slack.budget import CHANNEL_POST_RATE, METHOD_RATES  # noqa: E402
from bot.slack.cards import FINAL_REPLY_EVENT  # noqa: E402
from bot.store.tables import QueuedRequest, RequestStatus  # noqa: E402

BOT_TOKEN = "xoxb-flood-bench"
SECRET = "flood-bench-signing-secret"
CODEGEN_TOKEN = "flood-bench-codegen-token"
ORG_ID = 7
TEAM = "T0FLOOD"
CREATES_PER_MINUTE = 10


def _slash(text: str, *, channel: str, user: str, response_url: str) -> tuple[str, dict[str, str]]:
    body = urlencode(
        {
            "team_id": TEAM,
            "channel_id": channel,
            "user_id": user,
            "user_name": user.lower(),
            "command": "/codegen",
            "text": text,
            "response_url": response_url,
            "trigger_id": uuid.uuid4().hex,
        }
    )
    ts = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature,
    }
    return body, headers


def _per_minute(times: list, limit: int) -> str:  # type: ignore[type-arg]
    return f"{most_in_window(times, seconds=60):6d} in a minute at most (Slack: {limit})"


@dataclass
class BotOverHttp:
    """The bot behind uvicorn on loopback, the emulator and the fake Slack on one fake clock:
    what the flood and the burst drive."""

    clock: FakeClock
    emulator: EmulatorState
    slack: FakeSlack
    runtime: Runtime
    settings: Settings
    http: httpx.AsyncClient
    channels: list[str]
    acked: int = 0
    refused: int = 0

    async def slash(self, n: int) -> None:
        """Send the n-th slash command (`task n`), signed, as Slack would."""
        body, headers = _slash(
            f"task {n}",
            channel=self.channels[n % len(self.channels)],
            user=_user(n),
            response_url=self.slack.response_url(),
        )
        response = await self.http.post("/slack/events", content=body, headers=headers)
        if response.status_code == 200 and "Queued" in response.text:
            self.acked += 1
        else:
            self.refused += 1

    async def step(self) -> None:
        """One round of the scheduler's ticks, and what they woke."""
        await self.runtime.dispatcher.tick()
        await self.runtime.tracker.tick()
        await self.runtime.settle()

    async def quiet_for(self) -> float:
        """Seconds until some work falls due (at least 1), to jump over quiet stretches."""
        due = await self.runtime.store.next_due(read_every=self.settings.codegen_poll_min_seconds)
        now = self.clock.now()
        if due is not None and due > now:
            return max(1.0, math.ceil((due - now).total_seconds()))
        return 1.0

    async def stored(self) -> int:
        async with self.runtime.store.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(QueuedRequest)) or 0)

    async def outcome(self, requests: int) -> Outcome:
        """What Slack and Codegen saw, and what the store holds, once the clock has run."""
        rows = []
        for user in {_user(n) for n in range(requests)}:
            rows += await self.runtime.store.requests.recent(user_id=user, limit=requests)
        tried_again = [
            t
            for t in (r.body.get("text", "") for r in self.slack.responses)
            if "try again" in str(t)
        ]
        finals = [
            c
            for c in self.slack.calls_to("chat.postMessage")
            if (c.get("metadata") or {}).get("event_type") == FINAL_REPLY_EVENT
        ]
        return Outcome(
            created=[c.at for c in self.emulator.calls("create_run")],
            failed=sum(1 for r in rows if r.status is RequestStatus.FAILED) + len(tried_again),
            final_replies=len(finals),
            codegen_429s=self.emulator.rate_limited_count,
            slack_429s=self.slack.rate_limited(),
        )


@dataclass(frozen=True)
class Outcome:
    created: list[datetime]  # when each create reached the emulator
    failed: int  # requests failed after their ack, or answered "try again"
    final_replies: int
    codegen_429s: int
    slack_429s: int

    @property
    def most_creates_in_a_minute(self) -> int:
        return most_in_window(self.created, seconds=60)

    def nothing_lost(self, requests: int, *, acked: int, stored: int) -> bool:
        return (
            acked == stored == len(self.created) == requests
            and self.failed == 0
            and self.codegen_429s == 0
            and self.slack_429s == 0
            and self.most_creates_in_a_minute <= CREATES_PER_MINUTE
            and self.final_replies == requests
        )


def _user(n: int) -> str:
    return f"U{n % 40:03d}"


@contextlib.asynccontextmanager
async def bot_over_http(*, channels: int) -> AsyncIterator[BotOverHttp]:
    clock = FakeClock()
    emulator = EmulatorState(
        token=CODEGEN_TOKEN, org_id=ORG_ID, clock=clock, pending_seconds=5, active_seconds=20
    )
    names = [f"C{k:03d}" for k in range(channels)]
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as stack:
            slack = await stack.enter_async_context(
                FakeSlack.running(bot_token=BOT_TOKEN, team_id=TEAM, clock=clock)
            )
            for name in names:
                slack.add_channel(name, name=name.lower())
            settings = Settings(
                slack_bot_token=BOT_TOKEN,
                slack_signing_secret=SECRET,
                slack_api_url=slack.api_url,
                codegen_api_token=CODEGEN_TOKEN,
                codegen_org_id=ORG_ID,
                codegen_api_url="http://emulator.invalid",
                codegen_create_per_minute=CREATES_PER_MINUTE,
                database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'flood.db'}",
                bot_mode="http",
                _env_file=None,  # type: ignore[call-arg]
            )
            runtime = await build_runtime(
                settings,
                clock=clock,
                replica_id="flood",
                metrics=Metrics(),
                codegen_transport=httpx.ASGITransport(app=create_emulator_app(emulator)),
            )
            stack.push_async_callback(runtime.close)
            runtime.mark_ready()
            web = build_web_app(runtime, build_bolt_app(runtime))
            port = await stack.enter_async_context(serve_http(web, host="127.0.0.1", port=0))
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
            )
            yield BotOverHttp(clock, emulator, slack, runtime, settings, http, names)


async def flood(requests: int, concurrency: int, channels: int) -> bool:
    wall = time.perf_counter()
    async with bot_over_http(channels=channels) as bot:
        gate = asyncio.Semaphore(concurrency)

        async def send(n: int) -> None:
            async with gate:
                await bot.slash(n)

        sent_at = time.perf_counter()
        await asyncio.gather(*(send(n) for n in range(requests)))
        ack_seconds = time.perf_counter() - sent_at
        stored = await bot.stored()
        await bot.runtime.settle()

        # Drive the clock as the scheduler would, jumping over quiet stretches.
        began = bot.clock.now()
        while bot.clock.now() < began + timedelta(hours=12):
            await bot.step()
            if not await bot.runtime.unfinished():
                break
            bot.clock.advance(await bot.quiet_for())

        outcome = await bot.outcome(requests)
        slack = bot.slack
        updates = [c.at for c in slack.calls_to("chat.update")]
        posts = slack.calls_to("chat.postMessage")
        busiest = max(
            (
                most_in_window([c.at for c in posts if c.get("channel") == n], seconds=10)
                for n in bot.channels
            ),
            default=0,
        )
        simulated = (bot.clock.now() - began).total_seconds()
        acked, refused = bot.acked, bot.refused

    ok = outcome.nothing_lost(requests, acked=acked, stored=stored)
    update_limit = METHOD_RATES["chat.update"].limit
    created = len(outcome.created)
    lines = [
        f"flood: {requests} slash commands, {concurrency} at a time, over {channels} channels",
        f"  acked                 {acked:6d}   (goal {requests}; refused {refused})",
        f"  stored at ack         {stored:6d}   (goal {requests})",
        f"  created               {created:6d}   (goal {requests}, once each)",
        f"  failed after ack      {outcome.failed:6d}   (goal 0)",
        f"  final replies         {outcome.final_replies:6d}   (goal {requests}, once each)",
        f"  429s at the emulator  {outcome.codegen_429s:6d}   (goal 0)",
        f"  429s at Slack         {outcome.slack_429s:6d}   (goal 0)",
        f"  creates in any 60 s   {outcome.most_creates_in_a_minute:6d}"
        f"   (Codegen: {CREATES_PER_MINUTE})",
        f"  chat.update           {_per_minute(updates, update_limit)}",
        f"  chat.postMessage      {busiest:6d} in 10 s in one channel at most"
        f" (Slack: {CHANNEL_POST_RATE.limit})",
        f"  chat.update total     {len(updates):6d}   ({len(updates) / requests:.1f} per request)",
        f"  simulated {simulated:.0f} s; acks took {ack_seconds:.1f} s of wall time; "
        f"wall {time.perf_counter() - wall:.0f} s",
        "",
        "OK: nothing lost, nothing twice, never over a limit" if ok else "FLOOD FAILED",
    ]
    print("\n".join(lines), flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--channels", type=int, default=20)
    args = parser.parse_args()
    return 0 if asyncio.run(flood(args.requests, args.concurrency, args.channels)) else 1


if __name__ == "__main__":
    sys.exit(main())
