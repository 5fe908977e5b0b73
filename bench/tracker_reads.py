"""How the tracker reads Codegen with many runs in flight.

    make bench                      # 1,000 runs, then the naive baseline, same scenario
    python bench/tracker_reads.py --runs 300 --seconds 420 --no-baseline

The scenario: N runs of ours are in progress at the local Codegen emulator, mixed with runs of
other people in the same organization; each of ours completes at a random moment. The bot's
real tracker (bot.app.build_runtime, SQLite, a fake Slack) ticks every second of a fake clock
shared with the emulator, whose strict limiter allows 60 reads per 30 s. Measured at the
emulator: list and get calls, the most reads in any 30 s window, 429s; at the bot: run
observations per read, and how long after a run completed the bot noticed (and posted its
final reply). The baseline is the naive tracker, one GET per due run, run through the same
scenario under the same budget.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/tracker_reads.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.settings import BOT_TOKEN, ORG_ID, TOKEN, bench_settings  # noqa: E402
from bench.stats import percentile  # noqa: E402
from bot.app import Runtime, build_runtime  # noqa: E402
from bot.clock import FakeClock  # noqa: E402
from bot.codegen.models import CreateAgentRunInput  # noqa: E402
from bot.devtools.emulator import (  # noqa: E402
    EmulatorState,
    create_emulator_app,
    most_in_window,
    running_emulator,
)
from bot.devtools.slack import FakeSlack, SlackCall  # noqa: E402
from bot.metrics import Metrics  # noqa: E402
from bot.requests import StoredOptions, Trigger  # noqa: E402
from bot.runs.reading import ListPages, OneGetPerRun  # noqa: E402
from bot.slack.cards import FINAL_REPLY_EVENT, notified_key  # noqa: E402
from bot.store.tables import QueuedRequest, RequestStatus, TrackedRun  # noqa: E402

READ_LIMIT = 60
READ_WINDOW = 30.0
READ_KINDS = ("list_runs", "get_run")
NAIVE_EVERY = 10.0  # the baseline's poll interval: one GET per run every 10 s


@dataclass
class Figures:
    approach: str
    runs: int
    others: int
    simulated_seconds: float = 0.0
    wall_seconds: float = 0.0
    list_calls: int = 0
    get_calls: int = 0
    max_reads_per_window: int = 0
    max_reads_per_minute: int = 0
    rate_limited: int = 0
    observations: int = 0
    completed: int = 0
    latencies: list[float] = field(default_factory=list)  # completion → noticed, seconds
    reply_latencies: list[float] = field(default_factory=list)  # completion → final reply
    final_replies: int = 0
    list_queries: list[dict[str, str]] = field(default_factory=list)  # as the emulator got them

    @property
    def reads(self) -> int:
        return self.list_calls + self.get_calls

    @property
    def noticed(self) -> int:
        return len(self.latencies)

    @property
    def runs_per_read(self) -> float:
        return self.observations / self.reads if self.reads else 0.0

    def latency(self, which: str, *, until: str = "noticed") -> float:
        values = self.latencies if until == "noticed" else self.reply_latencies
        if not values:
            return float("nan")
        if which == "mean":
            return statistics.fmean(values)
        if which == "p95":
            return percentile(values, 0.95)
        return max(values)


def bench_emulator(clock: FakeClock) -> EmulatorState:
    """The emulator of the tracker benches: runs ACTIVE until told, the documented read limit
    (strict), creates unlimited (seeding only; the bot's own creates are not measured)."""
    return EmulatorState(
        token=TOKEN,
        org_id=ORG_ID,
        clock=clock,
        pending_seconds=0,
        active_seconds=10**9,
        create_per_minute=10**9,
        reads_per_30s=READ_LIMIT,
    )


async def _seed(
    runtime: Runtime,
    emulator: EmulatorState,
    slack: FakeSlack,
    *,
    runs: int,
    others: int,
    newer: int,
    rng: random.Random,
    poll_min: float,
    elsewhere: int = 0,
) -> list[int]:
    """N runs of ours (known to the bot) among `others` runs of other people, then `newer`
    runs of other people on top of them all; all ACTIVE."""
    ours_at = set(rng.sample(range(runs + others), runs))
    ours: list[int] = []
    for position in range(runs + others + newer):
        mine = position in ours_at
        metadata = {"source": "slack", "request_id": str(uuid.uuid4())} if mine else None
        run = await runtime.codegen.create_run(
            CreateAgentRunInput(prompt=f"task {position}", metadata=metadata)
        )
        emulator.set_status(run.id, "ACTIVE")
        if mine:
            ours.append(run.id)
        elif elsewhere and rng.random() < elsewhere / (runs + others + newer - len(ours_at)):
            emulator.run(run.id).source_type = "SLACK"  # started in Codegen's own Slack app
    runs_in_slack = []
    for run_id in ours:
        meta = emulator.run(run_id).metadata or {}
        channel = f"C{run_id}"  # one channel each keeps the fake Slack's lookups small
        thread = slack.add_message(channel, f"task for run {run_id}", "U1")
        card = slack.add_message(
            channel, f"run {run_id} card", slack.bot_user_id, thread_ts=thread, bot_id=slack.bot_id
        )
        runs_in_slack.append(
            SeededRun(run_id, meta, emulator.run(run_id).web_url, channel, thread, card)
        )
    await insert_tracked(
        runtime.store.sessions,
        tracked_rows(runs_in_slack, now=runtime.clock.now(), rng=rng, poll_min=poll_min),
    )
    return ours


@dataclass(frozen=True)
class SeededRun:
    """A run in flight at the emulator, with its thread and card in the fake Slack."""

    id: int
    metadata: dict[str, Any]  # as sent at creation: `request_id` among them
    web_url: str
    channel: str
    thread_ts: str
    card_ts: str


def tracked_rows(
    runs: list[SeededRun], *, now: datetime, rng: random.Random, poll_min: float
) -> tuple[list[QueuedRequest], list[TrackedRun]]:
    """The store's rows for runs the bot started and follows: their requests, and the runs
    (due at random moments within the minimum interval, as after a steady state)."""
    requests: list[QueuedRequest] = []
    tracked: list[TrackedRun] = []
    for run in runs:
        request_id = str(run.metadata["request_id"])
        requests.append(
            QueuedRequest(
                id=request_id,
                org_id=ORG_ID,
                status=RequestStatus.DISPATCHED,
                prompt=f"task for run {run.id}",
                images=[],
                skipped_files=[],
                options=StoredOptions(),
                run_metadata=run.metadata,
                request_json={},
                prepared=True,
                team_id="T1",
                channel_id=run.channel,
                user_id="U1",
                trigger=Trigger.SLASH_COMMAND,
                thread_ts=run.thread_ts,
                next_attempt_at=now,
                run_id=run.id,
                created_at=now,
                updated_at=now,
            )
        )
        tracked.append(
            TrackedRun(
                id=run.id,
                org_id=ORG_ID,
                request_id=request_id,
                prompt=f"task for run {run.id}",
                options=StoredOptions(),
                status="ACTIVE",
                web_url=run.web_url,
                pull_requests=[],
                team_id="T1",
                channel_id=run.channel,
                user_id="U1",
                thread_ts=run.thread_ts,
                card_ts=run.card_ts,
                tracking=True,
                next_poll_at=now + timedelta(seconds=rng.uniform(0, poll_min)),
                poll_interval=poll_min,
                notified_status=notified_key("ACTIVE"),
                created_at=now,
                started_at=now,
                last_change_at=now,
            )
        )
    return requests, tracked


async def insert_tracked(
    sessions: async_sessionmaker[AsyncSession],
    rows: tuple[list[QueuedRequest], list[TrackedRun]],
) -> None:
    requests, tracked = rows
    async with sessions.begin() as session:  # the requests first: runs refer to them
        session.add_all(requests)
    async with sessions.begin() as session:
        session.add_all(tracked)


async def simulate(
    runs: int = 1000,
    *,
    use_list: bool = True,
    seconds: float = 900.0,
    others: int = 200,
    newer: int = 0,
    seed: int = 7,
    tick: float = 1.0,
    grace: float = 900.0,
    workdir: Path | None = None,
    in_process: bool = False,
    await_replies: bool = True,
    others_elsewhere: int = 0,
) -> Figures:
    """Run the scenario once; completions fall in [60 s, seconds - 120 s].

    `use_list=False` is the naive baseline: one GET per run every 10 s, within the whole
    budget. `in_process`: reach the emulator without a socket (httpx.ASGITransport), for
    tests that count reads, not HTTP costs. `await_replies`: go on until every final reply
    is out (card edits may still be waiting for Slack's room then), not only until every
    completion is noticed. `others_elsewhere`: runs of other
    people started outside the API (Codegen's own Slack app, GitHub), mixed in too."""
    rng = random.Random(seed)
    figures = Figures(approach="list" if use_list else "get", runs=runs, others=others)
    wall = time.perf_counter()
    clock = FakeClock()
    emulator = bench_emulator(clock)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        async with contextlib.AsyncExitStack() as stack:
            slack = await stack.enter_async_context(
                FakeSlack.running(bot_token=BOT_TOKEN, clock=clock)
            )
            transport = None
            if in_process:
                transport = httpx.ASGITransport(app=create_emulator_app(emulator))
                codegen_url = "http://emulator.invalid"
            else:
                codegen_url = await stack.enter_async_context(running_emulator(emulator))
            settings = bench_settings(
                slack_api_url=slack.api_url,
                codegen_url=codegen_url,
                database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
                codegen_poll_min_seconds=5.0 if use_list else NAIVE_EVERY,
                codegen_poll_max_seconds=60.0 if use_list else NAIVE_EVERY,
            )
            runtime = await build_runtime(
                settings,
                clock=clock,
                replica_id="bench",
                metrics=Metrics(),
                read_plan=ListPages() if use_list else OneGetPerRun(),
                poll_rand=rng.random,
                codegen_transport=transport,
            )
            if not use_list:  # the naive way knows no pacing: the whole budget, per run
                runtime.tracker.pace.rate = READ_LIMIT / READ_WINDOW
            try:
                tracker = runtime.tracker
                ours = await _seed(
                    runtime,
                    emulator,
                    slack,
                    runs=runs,
                    others=others,
                    newer=newer,
                    rng=rng,
                    poll_min=settings.codegen_poll_min_seconds,
                    elsewhere=others_elsewhere,
                )
                seeded = len(emulator.received)
                finish = {rid: rng.uniform(60.0, max(61.0, seconds - 120.0)) for rid in ours}
                schedule = sorted(ours, key=finish.__getitem__)
                completed_at: dict[int, float] = {}
                noticed: dict[int, float] = {}
                replied: set[str] = set()

                def count_reply(call: SlackCall, answer: dict[str, object]) -> None:
                    meta = call.get("metadata") or {}
                    final = isinstance(meta, dict) and meta.get("event_type") == FINAL_REPLY_EVENT
                    if call.method == "chat.postMessage" and final:
                        replied.add(str(call.get("channel")))

                slack.observe(count_reply)
                start = clock.now()
                while True:
                    now = (clock.now() - start).total_seconds()
                    while schedule and finish[schedule[0]] <= now:
                        run_id = schedule.pop(0)
                        emulator.set_status(run_id, "COMPLETE")
                        completed_at[run_id] = now
                    report = await tracker.tick()
                    figures.observations += report.refreshed
                    for run_id in report.changed:
                        if run_id in completed_at and run_id not in noticed:
                            noticed[run_id] = now
                    done = not schedule and len(noticed) == len(ours)
                    if done and await_replies:
                        done = len(replied) >= len(ours)
                    if done or now >= seconds + grace:
                        break
                    clock.advance(tick)
                figures.simulated_seconds = (clock.now() - start).total_seconds()
                reads = [c for c in emulator.received[seeded:] if c.kind in READ_KINDS]
                figures.list_queries = [c.query for c in reads if c.kind == "list_runs"]
                figures.list_calls = len(figures.list_queries)
                figures.get_calls = sum(1 for c in reads if c.kind == "get_run")
                figures.max_reads_per_window = most_in_window(
                    [c.at for c in reads], seconds=READ_WINDOW
                )
                figures.max_reads_per_minute = most_in_window([c.at for c in reads], seconds=60)
                figures.rate_limited = emulator.rate_limited_count
                figures.completed = len(completed_at)
                figures.latencies = [noticed[r] - completed_at[r] for r in noticed]
                replies = [
                    call
                    for call in slack.calls_to("chat.postMessage")
                    if (call.get("metadata") or {}).get("event_type") == FINAL_REPLY_EVENT
                ]
                figures.final_replies = len(replies)
                for call in replies:
                    run_id = int(str(call["channel"])[1:])
                    if run_id in completed_at and call.at is not None:
                        replied = (call.at - start).total_seconds()
                        figures.reply_latencies.append(replied - completed_at[run_id])
            finally:
                await runtime.close()
    figures.wall_seconds = time.perf_counter() - wall
    return figures


def report(figures: Figures) -> str:
    name = {
        "list": "batched (list pages, GET for the rest)",
        "get": "naive (one GET per due run)",
    }[figures.approach]
    return "\n".join(
        [
            f"{name}: {figures.runs} runs of ours among {figures.runs + figures.others}",
            f"  simulated        {figures.simulated_seconds:8.0f} s "
            f"(wall {figures.wall_seconds:.1f} s)",
            f"  list calls       {figures.list_calls:8d}",
            f"  get calls        {figures.get_calls:8d}",
            f"  reads / 30 s max {figures.max_reads_per_window:8d}   (budget {READ_LIMIT})",
            f"  429s answered    {figures.rate_limited:8d}",
            f"  observations     {figures.observations:8d}   "
            f"({figures.runs_per_read:.1f} runs per read)",
            f"  completions      {figures.completed:8d}   noticed {figures.noticed}, "
            f"final replies {figures.final_replies}",
            f"  time to notice   mean {figures.latency('mean'):6.1f} s   "
            f"p95 {figures.latency('p95'):6.1f} s   max {figures.latency('max'):6.1f} s",
        ]
    )


async def amain(args: argparse.Namespace) -> int:
    batched = await simulate(args.runs, seconds=args.seconds, others=args.others, seed=args.seed)
    print(report(batched), flush=True)
    ok = (
        batched.max_reads_per_window <= READ_LIMIT
        and batched.rate_limited == 0
        and batched.noticed == batched.completed == args.runs
    )
    if args.baseline:
        naive = await simulate(
            args.runs, use_list=False, seconds=args.seconds, others=args.others, seed=args.seed
        )
        print()
        print(report(naive))
        print()
        print("batched vs naive, same scenario and budget:")
        print(
            f"  runs per read      {batched.runs_per_read:6.1f} vs {naive.runs_per_read:6.1f}"
            f"   ×{batched.runs_per_read / max(naive.runs_per_read, 1e-9):.0f}"
        )
        slower = naive.latency("mean") / batched.latency("mean")
        print(
            f"  mean time to notice {batched.latency('mean'):6.1f} s vs "
            f"{naive.latency('mean'):6.1f} s   ×{slower:.1f} slower the naive way"
        )
        needed = batched.observations * READ_WINDOW / batched.simulated_seconds
        print(
            f"  the batched observations one GET each would take {needed:.0f} reads per 30 s,"
            f" {needed / READ_LIMIT:.1f}× the budget"
        )
    print()
    print(
        "OK: within the read budget, every completion noticed" if ok else "BUDGET OR NOTICE FAILED"
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--others", type=int, default=200, help="other people's runs mixed in")
    parser.add_argument("--seconds", type=float, default=900.0, help="simulated duration")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
