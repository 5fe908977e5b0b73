"""A burst of slash commands faster than Codegen lets runs start: 100 arriving at 20 a minute
against 10 creates a minute. Every one is created once, never over the limit, none answered
429, and the last create comes as soon as the limit allows.

    make bench                                   # 100 commands at 20 a minute
    python bench/burst.py --requests 40 --per-minute 20

The bot (bot.app, SQLite, over HTTP) with the emulator (10 creates per 60 s, strict) and the
fake Slack on one fake clock, as in bench/flood.py; a command arrives every 60/`--per-minute`
seconds of that clock while the scheduler's ticks run every second. The theoretical minimum
for the last create is the earliest any client could make it within a sliding window of 10
creates a minute: create k no earlier than its arrival, nor than 60 s after create k - 10.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/burst.py` from anywhere
    sys.path.insert(0, str(ROOT))

from bench.flood import CREATES_PER_MINUTE, bot_over_http  # noqa: E402

WINDOW = 60.0


def earliest_creates(arrivals: list[float], *, limit: int, window: float) -> list[float]:
    """The earliest moment of each create when each arrival is created at once unless the
    sliding window is full (then as soon as the create `limit` places back leaves it)."""
    creates: list[float] = []
    for k, arrival in enumerate(sorted(arrivals)):
        at = arrival if k < limit else max(arrival, creates[k - limit] + window)
        creates.append(at)
    return creates


@dataclass(frozen=True)
class BurstFigures:
    requests: int
    acked: int
    stored: int
    created: int
    most_in_a_minute: int
    codegen_429s: int
    lost: bool  # a request failed, went uncreated or got no final reply
    last_create_s: float  # after the first arrival
    theoretical_s: float
    wall_s: float


async def burst(requests: int, *, per_minute: float, channels: int = 10) -> BurstFigures:
    wall = time.perf_counter()
    every = 60.0 / per_minute
    arrivals = [n * every for n in range(requests)]
    async with bot_over_http(channels=channels) as bot:
        began = bot.clock.now()
        sent = 0
        while bot.clock.now() < began + timedelta(hours=6):
            elapsed = (bot.clock.now() - began).total_seconds()
            while sent < requests and arrivals[sent] <= elapsed:
                await bot.slash(sent)
                sent += 1
            await bot.runtime.settle()
            await bot.step()
            if sent == requests and not await bot.runtime.unfinished():
                break
            # While commands arrive, every second; afterwards, over quiet stretches.
            bot.clock.advance(1.0 if sent < requests else await bot.quiet_for())
        stored = await bot.stored()
        outcome = await bot.outcome(requests)
        last = max(outcome.created, default=began)
        figures = BurstFigures(
            requests=requests,
            acked=bot.acked,
            stored=stored,
            created=len(outcome.created),
            most_in_a_minute=outcome.most_creates_in_a_minute,
            codegen_429s=outcome.codegen_429s,
            lost=not outcome.nothing_lost(requests, acked=bot.acked, stored=stored),
            last_create_s=(last - began).total_seconds(),
            theoretical_s=earliest_creates(arrivals, limit=CREATES_PER_MINUTE, window=WINDOW)[-1],
            wall_s=time.perf_counter() - wall,
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--per-minute", type=float, default=20.0)
    args = parser.parse_args()
    f = asyncio.run(burst(args.requests, per_minute=args.per_minute))
    print(
        f"burst: {f.requests} commands at {args.per_minute:g} a minute, "
        f"{CREATES_PER_MINUTE} creates a minute allowed\n"
        f"  acked {f.acked}, stored {f.stored}, created {f.created}, "
        f"most in any 60 s {f.most_in_a_minute}, 429s {f.codegen_429s}, lost: {f.lost}\n"
        f"  last create {f.last_create_s:.0f} s after the first arrival "
        f"(theoretical minimum {f.theoretical_s:.0f} s); wall {f.wall_s:.0f} s"
    )
    return 1 if f.lost else 0


if __name__ == "__main__":
    sys.exit(main())
