"""`make bench`: every performance goal of the tracker in one table, each figure beside its
goal with PASS or FALLS SHORT, baselines measured in the same run.

    make bench          # 100 and 1,000 runs; tick cost at 10,000 tracked
    make bench-quick    # the same table at smaller sizes, in a few minutes

Freshness (bench/tracker_reads.py): completion → final reply and reads per minute, the bot
against the naive tracker (one GET per run every 10 s, within the same budget). Tick cost
(bench/tick_cost.py): database time per tick, the longest tick and RSS with many runs tracked,
on SQLite and on PostgreSQL when it answers. The burst (bench/burst.py): 100 commands at 20 a
minute against 10 creates a minute. Acks and start-up (bench/acks.py): the bot as a process
against a bare Bolt app.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.acks import measure as measure_acks  # noqa: E402
from bench.burst import burst  # noqa: E402
from bench.tick_cost import measure, postgres_answers  # noqa: E402
from bench.tracker_reads import Figures, simulate  # noqa: E402


@dataclass(frozen=True)
class Row:
    figure: str
    value: float
    goal: str
    ok: bool | None  # None: shown for comparison, no goal
    baseline: float | None = None
    unit: str = ""
    digits: int = 1

    def line(self) -> str:
        def fmt(x: float | None) -> str:
            if x is None:
                return ""
            return "nan" if math.isnan(x) else f"{x:,.{self.digits}f}{self.unit}"

        verdict = "" if self.ok is None else ("PASS" if self.ok else "FALLS SHORT")
        return (
            f"{self.figure:<44} {fmt(self.value):>10} {fmt(self.baseline):>12}"
            f"   {self.goal:<16} {verdict}"
        )


def freshness_rows(runs: int, bot: Figures, naive: Figures, *, p95_goal: float) -> list[Row]:
    every = f"{runs:,} runs"
    rows = [
        Row(
            f"{every}: completion → reply mean",
            bot.latency("mean", until="reply"),
            "≤ 5 s" if runs >= 1000 else "",
            bot.latency("mean", until="reply") <= 5 if runs >= 1000 else None,
            naive.latency("mean", until="reply"),
            " s",
        ),
        Row(
            f"{every}: completion → reply p95",
            bot.latency("p95", until="reply"),
            f"≤ {p95_goal:.0f} s",
            bot.latency("p95", until="reply") <= p95_goal,
            naive.latency("p95", until="reply"),
            " s",
        ),
        Row(
            f"{every}: completion → reply max",
            bot.latency("max", until="reply"),
            "",
            None,
            naive.latency("max", until="reply"),
            " s",
        ),
        Row(
            f"{every}: reads, most in any 60 s",
            bot.max_reads_per_minute,
            "≤ 100",
            bot.max_reads_per_minute <= 100,
            naive.max_reads_per_minute,
        ),
        Row(
            f"{every}: reads, most in any 30 s",
            bot.max_reads_per_window,
            "≤ 60",
            bot.max_reads_per_window <= 60,
            naive.max_reads_per_window,
        ),
        Row(
            f"{every}: 429s, final replies missing",
            bot.rate_limited + (bot.completed - bot.final_replies),
            "0",
            bot.rate_limited == 0 and bot.final_replies == bot.completed == runs,
            naive.rate_limited + (naive.completed - naive.final_replies),
        ),
    ]
    return rows


async def burst_rows(requests: int, *, per_minute: float) -> list[Row]:
    f = await burst(requests, per_minute=per_minute)
    print(f"measured the burst of {requests}", file=sys.stderr, flush=True)
    label = f"burst {requests} at {per_minute:g}/min"
    return [
        Row(f"{label}: created, nothing lost", f.created, f"{requests}", not f.lost),
        Row(
            f"{label}: most creates in 60 s",
            f.most_in_a_minute,
            "≤ 10",
            f.most_in_a_minute <= 10,
        ),
        Row(f"{label}: 429s", f.codegen_429s, "0", f.codegen_429s == 0),
        Row(
            f"{label}: last create",
            f.last_create_s,
            f"≤ {1.05 * f.theoretical_s:,.0f} s (1.05×)",
            f.last_create_s <= 1.05 * f.theoretical_s,
            f.theoretical_s,
            " s",
        ),
    ]


async def amain(args: argparse.Namespace) -> int:
    sizes = [(100, 300.0, 6.0), (300 if args.quick else 1000, 600.0 if args.quick else 900.0, 10.0)]
    tracked = 2000 if args.quick else 10_000
    rows: list[Row] = []
    for runs, seconds, p95_goal in sizes:
        common = {"seconds": seconds, "others": runs // 5, "others_elsewhere": runs // 10}
        bot = await simulate(runs, in_process=True, **common)  # type: ignore[arg-type]
        naive = await simulate(runs, use_list=False, in_process=True, **common)  # type: ignore[arg-type]
        print(f"measured freshness at {runs} runs", file=sys.stderr, flush=True)
        rows += freshness_rows(runs, bot, naive, p95_goal=p95_goal)
    backends = ["sqlite"] + (["postgres"] if await postgres_answers() else [])
    for backend in backends:
        cost = await measure(backend, runs=tracked, ticks=60 if args.quick else 120)
        print(f"measured tick cost on {backend}", file=sys.stderr, flush=True)
        label = f"{tracked:,} tracked, {backend}"
        rows += [
            Row(
                f"{label}: tick db time median",
                cost.db_median,
                "≤ 50 ms",
                cost.db_median <= 50,
                unit=" ms",
            ),
            Row(
                f"{label}: longest tick",
                cost.longest_tick,
                "≤ 1,000 ms",
                cost.longest_tick <= 1000,
                unit=" ms",
            ),
            Row(f"{label}: RSS", cost.rss_mib, "≤ 150 MiB", cost.rss_mib <= 150, unit=" MiB"),
        ]
    rows += await burst_rows(40 if args.quick else 100, per_minute=20)
    requests = 300 if args.quick else 2000
    acks, startup = await measure_acks(
        requests=requests, concurrency=50, starts=5 if args.quick else 9
    )
    print("measured acks and start-up against the bare Bolt app", file=sys.stderr, flush=True)
    bot, bare = acks["bot"], acks["bare"]
    label = f"{requests:,} acks, 50 at once"
    rows += [
        Row(f"{label}: ack p50", bot.p50_ms, "", None, bare.p50_ms, " ms"),
        Row(
            f"{label}: ack p99",
            bot.p99_ms,
            f"≤ {1.3 * bare.p99_ms:,.0f} ms (1.3×)",
            bot.p99_ms <= 1.3 * bare.p99_ms,
            bare.p99_ms,
            " ms",
        ),
        Row(
            f"{label}: acked",
            bot.acked,
            f"{requests:,}",
            bot.acked == requests,
            bare.acked,
        ),
        Row(
            f"{label}: stored in the outbox",
            bot.stored,
            f"{requests:,}",
            bot.stored == requests,
            digits=0,
        ),
        Row(f"{label}: messages posted while acking", bot.posted, "", None, digits=0),
        Row(
            f"{label}: server CPU / request",
            bot.cpu_ms_per_request,
            "",
            None,
            bare.cpu_ms_per_request,
            " ms",
        ),
        Row(
            "start → /healthz (database at head)",
            startup["bot"].median_s,
            f"≤ {2 * startup['bare'].median_s:.2f} s (2×)",
            startup["bot"].median_s <= 2 * startup["bare"].median_s,
            startup["bare"].median_s,
            " s",
            digits=2,
        ),
        Row(
            "start → /healthz: the libraries alone",
            startup["libraries"].median_s,
            "",
            None,
            startup["bare"].median_s,
            " s",
            digits=2,
        ),
        Row(
            "start → /healthz (new database, migrating)",
            startup["bot"].first_s or math.nan,
            "",
            None,
            startup["bare"].median_s,
            " s",
            digits=2,
        ),
    ]
    if len(backends) == 1:
        print("PostgreSQL did not answer at 127.0.0.1:5432: its rows are missing")
    print(f"{'figure':<44} {'bot':>10} {'baseline':>12}   {'goal':<16} verdict")
    for row in rows:
        print(row.line())
    print(
        "\nbaseline: freshness against one GET per run every 10 s within the same read "
        "budget; acks and start-up against a bare Bolt AsyncApp that only acks "
        "(bench/bare_bolt.py), served the same way; the burst's last create against the "
        "earliest any client could make it under 10 creates a minute."
    )
    short = [row for row in rows if row.ok is False]
    return 1 if short else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
