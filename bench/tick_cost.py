"""What a tracker tick costs with many runs tracked: database time per tick, the longest
tick against its 1 s interval, and the process's memory.

    python bench/tick_cost.py --runs 10000 --ticks 120

N runs of ours are in progress at the in-process Codegen emulator (its strict limiter: 60
reads per 30 s); the bot's real tracker (bot.app.build_runtime) ticks every second of a fake
clock on SQLite and, when it answers, on PostgreSQL (a database made for the run and dropped
after). One run in a hundred completes during the measurement. Database time is the time
spent in the driver's execute calls, summed per tick (SQLAlchemy's cursor events).
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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/tick_cost.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.tracker_reads import BOT_TOKEN, _seed, bench_emulator, bench_settings  # noqa: E402
from bot.app import build_runtime  # noqa: E402
from bot.clock import FakeClock  # noqa: E402
from bot.devtools.emulator import create_emulator_app  # noqa: E402
from bot.devtools.slack import FakeSlack  # noqa: E402
from bot.metrics import Metrics  # noqa: E402
from bot.store.db import create_engine  # noqa: E402

PG_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@dataclass
class TickCost:
    backend: str
    runs: int
    db_ms: list[float] = field(default_factory=list)  # per tick
    tick_ms: list[float] = field(default_factory=list)
    rss_mib: float = 0.0

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


async def measure(backend: str, *, runs: int, ticks: int, seed: int = 7) -> TickCost:
    rng = random.Random(seed)
    clock = FakeClock()
    emulator = bench_emulator(clock)
    cost = TickCost(backend=backend, runs=runs)
    with tempfile.TemporaryDirectory() as tmp:
        async with contextlib.AsyncExitStack() as stack:
            url = await stack.enter_async_context(database(backend, Path(tmp)))
            slack = await stack.enter_async_context(
                FakeSlack.running(bot_token=BOT_TOKEN, clock=clock)
            )
            settings = bench_settings(
                slack_api_url=slack.api_url,
                codegen_url="http://emulator.invalid",
                database_url=url,
            )
            runtime = await build_runtime(
                settings,
                clock=clock,
                replica_id="bench",
                metrics=Metrics(),
                poll_rand=rng.random,
                codegen_transport=httpx.ASGITransport(app=create_emulator_app(emulator)),
            )
            try:
                ours = await _seed(
                    runtime,
                    emulator,
                    slack,
                    runs=runs,
                    others=0,
                    newer=0,
                    rng=rng,
                    poll_min=settings.codegen_poll_min_seconds,
                )
                spent = [0.0]

                def before(conn: Any, *_args: Any) -> None:
                    conn.info["started"] = time.perf_counter()

                def after(conn: Any, *_args: Any) -> None:
                    spent[0] += time.perf_counter() - conn.info.pop("started", time.perf_counter())

                sync_engine = runtime.store.engine.sync_engine
                event.listen(sync_engine, "before_cursor_execute", before)
                event.listen(sync_engine, "after_cursor_execute", after)
                # What the bot's optimize job does every 10 minutes (the runs were seeded
                # after the start, when the tables were empty).
                await runtime.store.optimize()
                ending = set(rng.sample(ours, max(1, runs // 100)))
                at = {rid: rng.randrange(ticks) for rid in ending}
                for n in range(ticks):
                    for rid in [r for r, t in at.items() if t == n]:
                        emulator.set_status(rid, "COMPLETE")
                    spent[0] = 0.0
                    started = time.perf_counter()
                    await runtime.tracker.tick()
                    cost.tick_ms.append((time.perf_counter() - started) * 1000)
                    cost.db_ms.append(spent[0] * 1000)
                    clock.advance(1.0)
                cost.rss_mib = rss_mib()
            finally:
                await runtime.close()
    return cost


async def amain(args: argparse.Namespace) -> int:
    backends = ["sqlite"] + (["postgres"] if await postgres_answers() else [])
    for backend in backends:
        cost = await measure(backend, runs=args.runs, ticks=args.ticks)
        print(
            f"{backend}: {cost.runs} tracked, tick db median {cost.db_median:.1f} ms, "
            f"longest tick {cost.longest_tick:.0f} ms, RSS {cost.rss_mib:.0f} MiB"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=120)
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
