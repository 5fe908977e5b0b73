"""Due runs → status changes, within the read budget.

Each run has its own next poll time (adaptive: soon after a change, less often while nothing
happens). A tick claims the due runs and refreshes them through the list endpoint, newest first,
one call per 100 runs; only runs the list did not return get a GET of their own. Every call is
paid from the shared read budget, so any number of runs stays within 60 reads per 30 s: when the
budget is spent, the remaining runs simply stay due for the next tick.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.backoff import next_poll_interval
from bot.budget import READ, OrgBudget
from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.codegen.errors import CodegenError, RateLimited, RunNotFound
from bot.codegen.models import AgentRunResponse, is_terminal
from bot.config import Settings
from bot.metrics import Metrics
from bot.notify import RunCards, SlackGateway
from bot.render import format_duration
from bot.store.store import Store, new_lease_owner
from bot.store.tables import TrackedRun

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0
BATCH = 1000
PAGE = 100


@dataclass(frozen=True)
class Watchdog:
    """When a run looks stuck, and when the bot stops following it."""

    pending_alert: timedelta = timedelta(minutes=15)
    stale_alert: timedelta = timedelta(hours=3)
    max_age: timedelta = timedelta(hours=24)

    def verdict(self, run: TrackedRun, *, now: datetime) -> tuple[str | None, bool]:
        """(a note for the card, whether tracking stops). Pure."""
        age = now - run.started_at
        if age >= self.max_age:
            return (
                f"The bot stopped following this run after {format_duration(age.total_seconds())}; "
                "open it in Codegen for its current state.",
                True,
            )
        if (run.status or "").upper() == "PENDING" and age >= self.pending_alert:
            return f"Still PENDING after {format_duration(age.total_seconds())}.", False
        quiet = now - run.last_change_at
        if quiet >= self.stale_alert:
            return f"No change for {format_duration(quiet.total_seconds())}.", False
        return None, False


@dataclass
class TickReport:
    claimed: int = 0
    refreshed: int = 0
    list_calls: int = 0
    get_calls: int = 0
    changed: list[int] = field(default_factory=list)


def observation_changed(run: TrackedRun, seen: AgentRunResponse) -> bool:
    prs = [pr.model_dump(mode="json") for pr in seen.github_pull_requests or []]
    return (
        seen.status != run.status
        or (seen.web_url is not None and seen.web_url != run.web_url)
        or (seen.summary is not None and seen.summary != run.summary)
        or prs != (run.pull_requests or [])
    )


class Tracker:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        codegen: CodegenClient,
        budget: OrgBudget,
        cards: RunCards,
        slack: SlackGateway,
        clock: Clock,
        replica_id: str,
        metrics: Metrics,
        watchdog: Watchdog | None = None,
        rand: Callable[[], float] = random.random,
        batch: int = BATCH,
    ) -> None:
        self.settings = settings
        self.store = store
        self.codegen = codegen
        self.budget = budget
        self.cards = cards
        self.slack = slack
        self.clock = clock
        self.replica_id = replica_id
        self.metrics = metrics
        self.watchdog = watchdog or Watchdog()
        self.rand = rand
        self.batch = batch

    async def tick(self) -> TickReport:
        now = self.clock.now()
        owner = new_lease_owner(self.replica_id)
        runs = await self.store.claim_runs(
            owner=owner, now=now, lease_seconds=LEASE_SECONDS, limit=self.batch
        )
        report = TickReport(claimed=len(runs))
        if not runs:
            return report
        for run in runs:
            self.metrics.poll_lag_seconds.observe(
                max(0.0, (now - run.next_poll_at).total_seconds())
            )
        seen, gone = await self._refresh(runs, report)
        for run in runs:
            try:
                if run.id in seen:
                    report.refreshed += 1
                    if await self._apply(run, seen[run.id], owner):
                        report.changed.append(run.id)
                elif run.id in gone:
                    await self._stop(run, owner, "Codegen no longer knows this run.")
                else:
                    await self.store.release_run(run.id, owner=owner)  # still due next tick
            except Exception:
                log.exception("tracking run %s failed; it stays due", run.id)
                await self.store.release_run(run.id, owner=owner)
        return report

    async def _refresh(
        self, runs: list[TrackedRun], report: TickReport
    ) -> tuple[dict[int, AgentRunResponse], set[int]]:
        """Fetch what the budget allows: list pages first, then single GETs for the rest."""
        seen: dict[int, AgentRunResponse] = {}
        gone: set[int] = set()
        missing = {run.id for run in runs}
        skip = 0
        # The list is newest first; once a page reaches runs older than the oldest one we
        # want, further pages cannot help. Bound the pages by what could possibly be needed.
        max_pages = len(missing) // PAGE + 3
        while missing and report.list_calls < max_pages:
            if not await self._spend_read():
                return seen, gone
            try:
                page = await self.codegen.list_runs(skip=skip, limit=PAGE)
            except CodegenError as error:
                await self._read_failed(error)
                return seen, gone
            report.list_calls += 1
            for item in page.items:
                if item.id in missing:
                    seen[item.id] = item
                    missing.discard(item.id)
            if len(page.items) < PAGE or not missing:
                break
            if min(item.id for item in page.items) < min(missing):
                break
            skip += PAGE
        for run_id in sorted(missing):
            if not await self._spend_read():
                break
            try:
                seen[run_id] = await self.codegen.get_run(run_id)
            except RunNotFound:
                gone.add(run_id)
            except CodegenError as error:
                await self._read_failed(error)
                break
            finally:
                report.get_calls += 1
        return seen, gone

    async def _spend_read(self) -> bool:
        return await self.budget.try_spend(READ) <= 0

    async def _read_failed(self, error: CodegenError) -> None:
        if isinstance(error, RateLimited):
            await self.budget.block(READ, error.retry_after)
        log.warning("refreshing runs failed: %s", error.message)

    async def _apply(self, run: TrackedRun, seen: AgentRunResponse, owner: str) -> bool:
        now = self.clock.now()
        changed = observation_changed(run, seen)
        interval = next_poll_interval(
            run.poll_interval,
            changed=changed,
            minimum=self.settings.codegen_poll_min_seconds,
            maximum=self.settings.codegen_poll_max_seconds,
            rand=self.rand(),
        )
        values: dict[str, Any] = {
            "status": seen.status,
            "web_url": seen.web_url or run.web_url,
            "summary": seen.summary,
            "result": seen.result,
            "pull_requests": [pr.model_dump(mode="json") for pr in seen.github_pull_requests or []],
            "next_poll_at": now + timedelta(seconds=interval),
            "poll_interval": interval,
        }
        if changed:
            values["last_change_at"] = now
        terminal = is_terminal(seen.status)
        note: str | None = None
        stop = False
        if terminal:
            values["finished_at"] = now
        else:
            note, stop = self.watchdog.verdict(_with(run, dict(values)), now=now)
            if stop:
                values.update(finished_at=now, stop_reason=note)
        # `tracking` stays true until the final reply is out: a crash before that leaves the
        # run due, and the next holder finishes the job (exactly once, see _final_reply).
        if not await self.store.update_run(run.id, owner=owner, **values):
            return False  # the lease was taken over; the new holder reports
        _with(run, values)
        if terminal or stop:
            run.tracking = False  # how the card reads it; stored below
        key = f"{seen.status}|{note or ''}"[:64]
        if await self.store.mark_notified(run.id, owner=owner, status=key):
            log.info("run %s is %s", run.id, seen.status, extra={"run_id": run.id})
            await self.cards.show_run(run, note=note)
        if terminal or stop:
            if terminal:
                self.metrics.runs_finished_total.labels(final_status=str(seen.status)).inc()
            await self._final_reply(run, owner)
            await self.store.update_run(run.id, owner=owner, tracking=False)
        await self.store.release_run(run.id, owner=owner)
        return changed

    async def _stop(self, run: TrackedRun, owner: str, reason: str) -> None:
        now = self.clock.now()
        values: dict[str, Any] = {"finished_at": now, "stop_reason": reason}
        if await self.store.update_run(run.id, owner=owner, **values):
            _with(run, values).tracking = False
            if await self.store.mark_notified(run.id, owner=owner, status="stopped"):
                await self.cards.show_run(run)
            await self.store.update_run(run.id, owner=owner, tracking=False)
            await self.store.release_run(run.id, owner=owner)

    async def _final_reply(self, run: TrackedRun, owner: str) -> None:
        """Post the final reply exactly once, even across a crash between post and record."""
        step = await self.store.begin_final_reply(run.id, owner=owner)
        if step is None:
            return
        if step == "check" and run.thread_ts:
            try:
                found = await self.slack.find_final_reply(
                    channel=run.channel_id, thread_ts=run.thread_ts, run_id=run.id
                )
            except LookupError:
                log.warning("run %s: cannot read the thread; will look again", run.id)
                return
            if found is not None:
                await self.store.finish_final_reply(run.id, owner=owner, ts=found)
                return
        ts = await self.cards.post_final_reply(run)
        await self.store.finish_final_reply(run.id, owner=owner, ts=ts)


def _with(run: TrackedRun, values: dict[str, Any]) -> TrackedRun:
    for key, value in values.items():
        setattr(run, key, value)
    return run
