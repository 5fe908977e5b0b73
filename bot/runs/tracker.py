"""Tracked runs → status changes, reads spent where they buy freshness.

One read refreshes up to a page of runs, so reads are not rationed per run: the tracker
spends a steady share of the organization's read budget (READ_SHARE, paced tick by tick), on
the runs soonest due. Each run's next poll time is its priority (soon after a change, later
and later while nothing happens): due runs go first, and reads left over go to the runs read
longest ago, never one read more often than the minimum interval. With more runs than the
budget can sweep, the longest-quiet ones are read less often, never not at all.

A tick claims only as many runs as its reads can decide on (the first of them decides which
page is read; the page brings every tracked run it shows), reads them (bot.runs.reading) and
reports what changed (bot.runs.reporting). Runs already seen ending need no read, only their
Slack work. Runs without news are rescheduled and released together, in one statement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.limits import Pace
from bot.logs import log_context
from bot.metrics import Metrics
from bot.runs.budget import READ_WINDOW, READS_PER_WINDOW
from bot.runs.reading import Reader
from bot.runs.reporting import Reporter
from bot.slack.cards import as_api_run
from bot.store.leases import LEASE_SECONDS, new_lease_owner
from bot.store.store import Store
from bot.store.tables import TrackedRun
from bot.traffic import AckTraffic

log = logging.getLogger(__name__)

# The tracker's part of the read budget; the rest is for the dispatcher's look-ups, the
# repository catalog and other replicas' slack.
READ_SHARE = 0.75
# Reads a tick may make at once after a quiet spell.
READ_BURST = 3.0
# Runs seen ending, waiting for Slack (a card edit or the final reply), handled per look;
# looked for every few seconds only (Slack's room comes back no faster, and the look scans
# the due runs: 30 ms at 10,000 tracked).
SETTLED_PER_TICK = 20
SETTLED_EVERY_SECONDS = 5.0


@dataclass
class TickReport:
    claimed: int = 0
    refreshed: int = 0
    list_calls: int = 0
    get_calls: int = 0
    deferred: int = 0  # due runs left for the next tick (read budget spent)
    changed: list[int] = field(default_factory=list)


class Tracker:
    def __init__(
        self,
        *,
        store: Store,
        reader: Reader,
        reporter: Reporter,
        clock: Clock,
        replica_id: str,
        metrics: Metrics,
        min_interval: float,
        reads_per_second: float = READ_SHARE * READS_PER_WINDOW / READ_WINDOW,
        lease_seconds: float = LEASE_SECONDS,
        traffic: AckTraffic | None = None,
    ) -> None:
        self.store = store
        self.reader = reader
        self.traffic = traffic or AckTraffic()
        self.reporter = reporter
        self.clock = clock
        self.replica_id = replica_id
        self.metrics = metrics
        self.min_interval = min_interval
        self.pace = Pace(rate=reads_per_second, burst=READ_BURST, now=clock.now())
        self._settled_at: datetime | None = None  # next look for runs seen ending
        self.lease_seconds = lease_seconds

    async def tick(self) -> TickReport:
        await self.traffic.make_way()  # acks first (bot.traffic)
        now = self.clock.now()
        owner = new_lease_owner(self.replica_id)
        plan = self.reader.plan
        reads = self.pace.take(now)
        runs: list[TrackedRun] = []
        if self._settled_at is None or now >= self._settled_at:
            self._settled_at = now + timedelta(seconds=SETTLED_EVERY_SECONDS)
            runs = await self.store.runs.claim_settled(
                owner=owner, now=now, lease_seconds=self.lease_seconds, limit=SETTLED_PER_TICK
            )
        # A run already seen ending has nothing more to learn from Codegen: only its card and
        # final reply are left (Slack had no room for them before), so it is not read again.
        settled = {run.id: as_api_run(run) for run in runs}
        unsettled: list[TrackedRun] = []
        if reads:
            unsettled = await self.store.runs.claim_to_read(
                owner=owner,
                now=now,
                read_before=now - timedelta(seconds=self.min_interval),
                lease_seconds=self.lease_seconds,
                limit=reads * plan.heads_per_read,
            )
            runs += unsettled
        report = TickReport(claimed=len(runs))
        if not runs:
            self.pace.give_back(reads)
            return report
        for run in runs:
            self.metrics.poll_lag_seconds.observe(
                max(0.0, (now - run.next_poll_at).total_seconds())
            )

        async def claim_neighbours(run_ids: list[int]) -> list[TrackedRun]:
            return await self.store.runs.claim_ids(
                owner=owner,
                run_ids=run_ids,
                now=self.clock.now(),
                lease_seconds=self.lease_seconds,
            )

        reading = await self.reader.read(
            unsettled, claim=claim_neighbours, max_reads=reads, now=now
        )
        report.list_calls, report.get_calls = reading.list_calls, reading.get_calls
        self.pace.give_back(reads - reading.list_calls - reading.get_calls)
        runs += reading.extra
        quiet: list[tuple[int, datetime, float]] = []
        deferred: list[tuple[int, datetime, float]] = []
        for run in runs:
            seen = reading.seen.get(run.id) or settled.get(run.id)
            if seen is None and run.id not in reading.gone:
                report.deferred += 1  # still due: first in line next tick
                deferred.append((run.id, run.next_poll_at, run.poll_interval))
                continue
            with log_context(
                request_id=run.request_id,
                run_id=run.id,
                channel_id=run.channel_id,
                user_id=run.user_id,
            ):
                try:
                    if seen is not None:
                        report.refreshed += 1
                        applied = await self.reporter.apply(
                            run, seen, owner, read=run.id not in settled
                        )
                        if applied.quiet is not None:
                            quiet.append(applied.quiet)
                        if applied.changed:
                            report.changed.append(run.id)
                        finished = applied.finished
                    else:
                        finished = await self.reporter.gone(run, owner)
                    if finished:
                        plan.forget([run.id])
                except Exception:
                    log.exception("tracking run %s failed; it stays due", run.id)
                    await self.store.runs.release(run.id, owner=owner)
        await self.store.runs.reschedule(owner=owner, schedule=quiet, polled_at=now)
        await self.store.runs.reschedule(owner=owner, schedule=deferred, polled_at=None)
        plan.prune({run.id for run in runs})
        return report
