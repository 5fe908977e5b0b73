"""What a tracker tick costs with many runs tracked: database time per tick, the longest
tick against its 1 s interval, and the bot's memory.

    python bench/tick_cost.py --runs 10000 --ticks 120

Three processes, so that each figure is the bot's own:
- the emulator (its strict limiter: 60 reads per 30 s) and the fake Slack, holding N runs of
  ours in flight, each with its thread and card; one in a hundred completes during the
  measurement;
- this one, which makes the database (SQLite, and PostgreSQL when it answers: a database
  made for the run and dropped after) and fills it as a bot finds it after a restart with N
  runs in flight;
- the bot (bot.app.build_runtime, its real tracker and store), which ticks every second of a
  fake clock shared with the first (bench/shared_clock.py) and reports database time (the
  driver's execute calls on every engine of the process, the store's reader and writer
  threads' too, summed per tick by SQLAlchemy's cursor events), each tick's
  duration, and its resident memory at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/tick_cost.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.shared_clock import SharedClock  # noqa: E402

PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SEED = 7


@dataclass
class TickCost:
    backend: str
    runs: int
    db_ms: list[float] = field(default_factory=list)  # per tick
    tick_ms: list[float] = field(default_factory=list)
    rss_mib: float = 0.0
    reads: int = 0  # Codegen reads the bot made (list pages and GETs)
    finished: int = 0  # runs it saw end, of the one in a hundred that did

    @property
    def db_median(self) -> float:
        return statistics.median(self.db_ms) if self.db_ms else float("nan")

    @property
    def longest_tick(self) -> float:
        return max(self.tick_ms, default=float("nan"))


def rss_mib() -> float:
    """The process's resident memory now (Linux), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _admin(sql: str) -> None:
    from bot.store.db import create_engine

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def postgres_answers() -> bool:
    try:
        await asyncio.wait_for(_admin("SELECT 1"), timeout=5)
    except Exception:
        return False
    return True


@contextlib.asynccontextmanager
async def database(backend: str, workdir: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'ticks.db'}"
        return
    name = f"codegen_bot_bench_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the emulator and the fake Slack, with the runs in flight ------------------------------------


async def serve_runs(args: argparse.Namespace) -> None:
    """The services process: seed the runs, print them as one JSON line, then pin each ending
    as the shared clock passes it, until SIGTERM."""
    from bench.settings import BOT_TOKEN
    from bench.tracker_reads import bench_emulator
    from bot.devtools.emulator import running_emulator
    from bot.devtools.slack import FakeSlack

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    clock = SharedClock(Path(args.clock_file))
    rng = random.Random(SEED)
    emulator = bench_emulator(clock)
    async with (
        FakeSlack.running(bot_token=BOT_TOKEN, clock=clock) as slack,
        running_emulator(emulator) as codegen_url,
    ):
        runs = []
        for n in range(args.runs):
            metadata = {"source": "slack", "request_id": str(uuid.uuid4())}
            run = emulator.seed_run(
                f"task {n}", metadata=metadata, status="ACTIVE", base_url=codegen_url
            )
            channel = f"C{run.id}"  # one channel each keeps the fake Slack's lookups small
            thread = slack.add_message(channel, f"task for run {run.id}", "U1")
            card = slack.add_message(
                channel, f"run {run.id} card", slack.bot_user_id, thread_ts=thread
            )
            runs.append([run.id, metadata, run.web_url, channel, thread, card])
        ending = rng.sample([r[0] for r in runs], max(1, args.runs // 100))
        ends_at = sorted((float(rng.randrange(args.ticks)), run_id) for run_id in ending)
        line = {"slack_api_url": slack.api_url, "codegen_api_url": codegen_url, "runs": runs}
        print(json.dumps(line), flush=True)
        began = clock.now()
        while not stop.is_set():
            elapsed = (clock.now() - began).total_seconds()
            while ends_at and ends_at[0][0] <= elapsed:
                emulator.set_status(ends_at.pop(0)[1], "COMPLETE")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.001)


@contextlib.asynccontextmanager
async def services(clock_file: Path, *, runs: int, ticks: int) -> AsyncIterator[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-runs",
        f"--runs={runs}",
        f"--ticks={ticks}",
        f"--clock-file={clock_file}",
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 26,  # the runs come as one line
    )
    try:
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError("the emulator and fake Slack process ended before answering")
        yield json.loads(line)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def seed_store(url: str, seeded: dict[str, Any], *, poll_min: float) -> None:
    """The database as a bot finds it when it starts with the runs in flight."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from bench.tracker_reads import SeededRun, insert_tracked, tracked_rows
    from bot.clock import FakeClock
    from bot.store.db import create_engine, migrate

    engine = create_engine(url)
    try:
        await migrate(engine)
        runs = [SeededRun(*fields) for fields in seeded["runs"]]
        rows = tracked_rows(runs, now=FakeClock().now(), rng=random.Random(SEED), poll_min=poll_min)
        await insert_tracked(async_sessionmaker(engine, expire_on_commit=False), rows)
    finally:
        await engine.dispose()


# -- the bot -------------------------------------------------------------------------------------


async def tick_in_process(args: argparse.Namespace) -> dict[str, Any]:
    """The bot's process: build the runtime on the seeded database, tick, report."""
    from sqlalchemy import Engine, event

    from bench.settings import bench_settings
    from bot.app import build_runtime
    from bot.metrics import Metrics

    clock = SharedClock(Path(args.clock_file))
    settings = bench_settings(
        slack_api_url=args.slack_api_url,
        codegen_url=args.codegen_api_url,
        database_url=args.database_url,
    )
    metrics = Metrics()
    runtime = await build_runtime(
        settings,
        clock=clock,
        replica_id="bench",
        metrics=metrics,
        poll_rand=random.Random(SEED).random,
    )
    db_ms: list[float] = []
    tick_ms: list[float] = []
    try:
        spent = [0.0]
        adding = threading.Lock()

        def before(conn: Any, *_args: Any) -> None:
            conn.info["started"] = time.perf_counter()

        def after(conn: Any, *_args: Any) -> None:
            took = time.perf_counter() - conn.info.pop("started", time.perf_counter())
            with adding:
                spent[0] += took

        # Every engine of the process: on a SQLite file the store reads and writes through
        # engines of its own, on its reader and writer threads (bot.store.transactions).
        event.listen(Engine, "before_cursor_execute", before)
        event.listen(Engine, "after_cursor_execute", after)
        for _ in range(args.ticks):
            spent[0] = 0.0
            started = time.perf_counter()
            await runtime.tracker.tick()
            tick_ms.append((time.perf_counter() - started) * 1000)
            db_ms.append(spent[0] * 1000)
            clock.advance(1.0)
        rss = rss_mib()
    finally:
        await runtime.close()
    counted = {
        (sample.name, sample.labels.get("endpoint")): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
    }
    reads = sum(
        value
        for (name, endpoint), value in counted.items()
        if name == "codegen_bot_codegen_calls_total" and endpoint in ("list_runs", "get_run")
    )
    finished = sum(
        value for (name, _), value in counted.items() if name == "codegen_bot_runs_finished_total"
    )
    return {
        "db_ms": db_ms,
        "tick_ms": tick_ms,
        "rss_mib": rss,
        "reads": int(reads),
        "finished": int(finished),
    }


async def measure(backend: str, *, runs: int, ticks: int) -> TickCost:
    from bench.settings import bench_settings

    with tempfile.TemporaryDirectory() as tmp:
        clock_file = Path(tmp) / "clock"
        SharedClock(clock_file, create=True).close()
        async with (
            database(backend, Path(tmp)) as url,
            services(clock_file, runs=runs, ticks=ticks) as seeded,
        ):
            poll_min = bench_settings(
                slack_api_url="", codegen_url="", database_url=url
            ).codegen_poll_min_seconds
            await seed_store(url, seeded, poll_min=poll_min)
            bot = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--bot",
                f"--ticks={ticks}",
                f"--clock-file={clock_file}",
                f"--database-url={url}",
                f"--slack-api-url={seeded['slack_api_url']}",
                f"--codegen-api-url={seeded['codegen_api_url']}",
                stdout=asyncio.subprocess.PIPE,
                env=os.environ.copy(),
            )
            out, _ = await bot.communicate()
            if bot.returncode != 0:
                raise RuntimeError(f"the bot's process failed on {backend} (exit {bot.returncode})")
    return TickCost(backend=backend, runs=runs, **json.loads(out.splitlines()[-1]))


async def amain(args: argparse.Namespace) -> int:
    if args.serve_runs:
        await serve_runs(args)
        return 0
    if args.bot:
        print(json.dumps(await tick_in_process(args)), flush=True)
        return 0
    backends = ["sqlite"] + (["postgres"] if await postgres_answers() else [])
    for backend in backends:
        cost = await measure(backend, runs=args.runs, ticks=args.ticks)
        print(
            f"{backend}: {cost.runs} tracked, tick db median {cost.db_median:.1f} ms, "
            f"longest tick {cost.longest_tick:.0f} ms, RSS {cost.rss_mib:.0f} MiB "
            f"({cost.reads} reads, {cost.finished} runs seen ending)"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=120)
    # The processes this bench starts (not for people):
    parser.add_argument("--serve-runs", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bot", action="store_true", help=argparse.SUPPRESS)
    for name in ("--clock-file", "--database-url", "--slack-api-url", "--codegen-api-url"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
