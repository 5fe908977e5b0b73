"""Live progress: each working run's newest steps on its card, from Codegen's run logs.

The logs endpoint is alpha (`GET /v1/alpha/…/agent/run/{id}/logs`), so progress is a bonus
that must never cost the status polling anything:

* log reads are paid from their own small budget (bot.runs.budget LOGS, a setting), never
  from the reads the tracker spends on statuses;
* only runs working now are read (not pending, paused or ended), newest activity first, each
  at most every PROGRESS_EVERY_SECONDS: a card's progress lines change at most that often;
* the card is edited only by the holder of the run's lease (claimed here like the tracker
  claims it), at LOW Slack priority, and only when the steps changed; status changes still
  edit the card at once through the tracker, showing the steps stored;
* a 404 that is about the endpoint, not the run (NoLogsEndpoint), turns progress off for the
  organization in the store (every replica stops asking; the doctor says so) until restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.codegen.models import AgentRunLogResponse
from bot.errors import CodegenError, NoLogsEndpoint, RateLimited, RunNotFound
from bot.logs import log_context
from bot.runs.budget import LOGS, OrgBudget
from bot.runs.watchdog import Watchdog
from bot.slack.cards import RunCards, progress_steps
from bot.slack.render import PROGRESS_STEPS
from bot.store.leases import LEASE_SECONDS, new_lease_owner
from bot.store.store import Store
from bot.store.tables import TrackedRun
from bot.traffic import AckTraffic

log = logging.getLogger(__name__)

#: The endpoint's name in the store's missing endpoints (and the client's, and the metrics').
RUN_LOGS = "run_logs"
#: A run's steps are read (and its progress lines change) at most this often.
PROGRESS_EVERY_SECONDS = 10.0
#: Runs a tick reads at most (the budget paces them further).
RUNS_PER_TICK = 2
#: Statuses of a run that is working (PENDING has no steps yet; PAUSED waits for a person).
WORKING_STATUSES = ("ACTIVE", "RUNNING", "EVALUATION")
#: What is kept of a step's thought (the card shows less): bounds the row.
STORED_THOUGHT_CHARS = 300


def steps_of(logs: list[AgentRunLogResponse]) -> list[dict[str, Any]]:
    """The newest steps (logs read newest first), as stored on the run: the tool (or the kind
    of message when there is none) and the thought, plain text."""
    steps: list[dict[str, Any]] = []
    for entry in logs[:PROGRESS_STEPS]:
        tool = (entry.tool_name or entry.message_type or "step").strip()[:64]
        thought = " ".join((entry.thought or "").split())[:STORED_THOUGHT_CHARS]
        steps.append({"tool": tool or "step", "thought": thought})
    return steps


@dataclass
class ProgressReport:
    claimed: int = 0
    read: int = 0
    edited: int = 0


class Progress:
    def __init__(
        self,
        *,
        store: Store,
        codegen: CodegenClient,
        budget: OrgBudget,
        cards: RunCards,
        clock: Clock,
        replica_id: str,
        watchdog: Watchdog | None = None,
        every: float = PROGRESS_EVERY_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        traffic: AckTraffic | None = None,
    ) -> None:
        self.store = store
        self.codegen = codegen
        self.budget = budget
        self.cards = cards
        self.clock = clock
        self.replica_id = replica_id
        self.watchdog = watchdog or Watchdog()
        self.every = every
        self.lease_seconds = lease_seconds
        self.traffic = traffic or AckTraffic()

    async def forget_missing_endpoint(self) -> None:
        """At start-up: ask again, in case Codegen has added the endpoint since."""
        await self.store.missing_endpoints.forget(self.codegen.org_id, RUN_LOGS)

    async def is_off(self) -> bool:
        return await self.store.missing_endpoints.get(self.codegen.org_id, RUN_LOGS) is not None

    async def tick(self) -> ProgressReport:
        report = ProgressReport()
        if await self.is_off():
            return report
        await self.traffic.make_way()  # acks first (bot.traffic)
        now = self.clock.now()
        owner = new_lease_owner(self.replica_id)
        runs = await self.store.runs.claim_for_progress(
            owner=owner,
            statuses=WORKING_STATUSES,
            read_before=now - timedelta(seconds=self.every),
            now=now,
            lease_seconds=self.lease_seconds,
            limit=RUNS_PER_TICK,
        )
        report.claimed = len(runs)
        for at, run in enumerate(runs):
            with log_context(
                request_id=run.request_id,
                run_id=run.id,
                channel_id=run.channel_id,
                user_id=run.user_id,
            ):
                try:
                    go_on = await self._read(run, owner, report)
                except Exception:
                    log.exception("reading the steps of run %s failed", run.id)
                    go_on = True
                    await self.store.runs.release(run.id, owner=owner)
            if not go_on:
                for later in runs[at + 1 :]:
                    await self.store.runs.release(later.id, owner=owner)
                break
        return report

    async def _read(self, run: TrackedRun, owner: str, report: ProgressReport) -> bool:
        """Read the run's newest steps and put them on its card if they changed; releases the
        run. False when no more runs are to be read this tick."""
        if await self.budget.try_spend(LOGS) > 0:
            await self.store.runs.release(run.id, owner=owner)
            return False
        now = self.clock.now()
        report.read += 1
        try:
            page = await self.codegen.run_logs(run.id, limit=PROGRESS_STEPS, reverse=True)
        except NoLogsEndpoint as error:
            log.warning("Codegen has no run logs endpoint here: progress is off")
            await self.store.missing_endpoints.record(
                self.codegen.org_id, RUN_LOGS, message=error.message, now=now
            )
            await self.store.runs.release(run.id, owner=owner)
            return False
        except RunNotFound:
            # The tracker finds out on its own read and says so on the card.
            await self.store.runs.record_progress(run.id, owner=owner, read_at=now)
            return True
        except CodegenError as error:
            if isinstance(error, RateLimited):
                await self.budget.block(LOGS, error.retry_after)
            log.warning("reading the steps of run %s failed: %s", run.id, error.message)
            await self.store.runs.record_progress(run.id, owner=owner, read_at=now)
            return not isinstance(error, RateLimited)
        steps = steps_of(page.logs)
        if not steps or steps == (run.progress or []):
            await self.store.runs.record_progress(run.id, owner=owner, read_at=now)
            return True
        run.progress = steps
        verdict = self.watchdog.verdict(
            status=run.status, started_at=run.started_at, last_change_at=run.last_change_at, now=now
        )
        if progress_steps(run) and await self.cards.show_progress(run, note=verdict.note):
            report.edited += 1
            await self.store.runs.record_progress(run.id, owner=owner, read_at=now, steps=steps)
        else:  # Slack has no room now: the same steps are news at the next read
            await self.store.runs.record_progress(run.id, owner=owner, read_at=now)
        return True
