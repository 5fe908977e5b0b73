"""Due runs → status changes, within the read budget.

Each run has its own next poll time (adaptive: soon after a change, less often while nothing
happens, with jitter). A tick claims as many due runs as its plan's reads can refresh, most
overdue first, reads them (bot.runs.reading) and reports what changed (bot.runs.reporting).
Runs without news are rescheduled and released together, in one statement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from bot.clock import Clock
from bot.codegen.models import is_terminal
from bot.logs import log_context
from bot.metrics import Metrics
from bot.runs.reading import Reader
from bot.runs.reporting import Reporter
from bot.slack.cards import as_api_run
from bot.store.leases import LEASE_SECONDS, new_lease_owner
from bot.store.store import Store
from bot.store.tables import TrackedRun

log = logging.getLogger(__name__)


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
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.reader = reader
        self.reporter = reporter
        self.clock = clock
        self.replica_id = replica_id
        self.metrics = metrics
        self.lease_seconds = lease_seconds

    async def tick(self) -> TickReport:
        now = self.clock.now()
        owner = new_lease_owner(self.replica_id)
        plan = self.reader.plan
        runs = await self.store.runs.claim_due(
            owner=owner, now=now, lease_seconds=self.lease_seconds, limit=plan.batch
        )
        report = TickReport(claimed=len(runs))
        if not runs:
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

        # A run already seen ending has nothing more to learn from Codegen: only its card and
        # final reply are left (Slack had no room for them before), so it is not read again.
        settled = {run.id: as_api_run(run) for run in runs if is_terminal(run.status)}
        unsettled = [run for run in runs if run.id not in settled]
        reading = await self.reader.read(unsettled, claim=claim_neighbours)
        reading.seen.update(settled)
        report.list_calls, report.get_calls = reading.list_calls, reading.get_calls
        runs += reading.extra
        quiet: list[tuple[int, datetime, float]] = []
        for run in runs:
            if run.id not in reading.seen and run.id not in reading.gone:
                report.deferred += 1  # still due: first in line next tick
                quiet.append((run.id, run.next_poll_at, run.poll_interval))
                continue
            with log_context(
                request_id=run.request_id,
                run_id=run.id,
                channel_id=run.channel_id,
                user_id=run.user_id,
            ):
                try:
                    if run.id in reading.seen:
                        report.refreshed += 1
                        applied = await self.reporter.apply(run, reading.seen[run.id], owner)
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
        await self.store.runs.reschedule(owner=owner, schedule=quiet)
        plan.prune({run.id for run in runs})
        return report
