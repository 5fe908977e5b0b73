"""Queue → create/resume under the organization's shared create budget.

One tick claims due requests in queue order and sends as many as the budget allows; the rest
are released with their next attempt set to when the budget frees up, and their cards show
their place. The dispatcher alone decides about retries (the client never retries a create).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import timedelta

from bot.backoff import full_jitter
from bot.budget import CREATE, OrgBudget
from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.codegen.errors import (
    CodegenError,
    Forbidden,
    InvalidRequest,
    NoReposFound,
    NotFound,
    PlanLimitReached,
    RateLimited,
)
from bot.codegen.models import AgentRunResponse, CreateAgentRunInput, ResumeAgentRunInput
from bot.config import Settings
from bot.intake import Intake
from bot.metrics import Metrics
from bot.notify import RunCards
from bot.render import format_duration
from bot.store.store import Store, new_lease_owner
from bot.store.tables import QueuedRequest, RequestKind, TrackedRun

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
BATCH = 25
MAX_ATTEMPTS = 6
RETRY_BASE = 2.0
RETRY_CAP = 120.0
# Pages of recent runs searched for a request_id after an ambiguous failure.
LOOKUP_PAGES = 2


def failure_message(error: CodegenError) -> str:
    """What the user reads on the card for a create that Codegen refused for good."""
    if isinstance(error, PlanLimitReached):
        return f"Codegen's plan limit is reached: {error.message}"
    if isinstance(error, Forbidden):
        return (
            "The bot's Codegen token has no access to this organization "
            f"(check CODEGEN_API_TOKEN and CODEGEN_ORG_ID): {error.message}"
        )
    if isinstance(error, NoReposFound):
        return f"The Codegen organization has no repositories: {error.message}"
    if isinstance(error, InvalidRequest):
        fields = ", ".join(error.fields()) or "the request"
        reasons = "; ".join(str(item.get("msg", "")) for item in error.detail) or error.message
        return f"Codegen refused {fields}: {reasons}"
    return f"Codegen refused the request: {error.message}"


class Dispatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        codegen: CodegenClient,
        budget: OrgBudget,
        cards: RunCards,
        intake: Intake,
        clock: Clock,
        replica_id: str,
        metrics: Metrics,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.store = store
        self.codegen = codegen
        self.budget = budget
        self.cards = cards
        self.intake = intake
        self.clock = clock
        self.replica_id = replica_id
        self.metrics = metrics
        self.rand = rand
        self._lock = asyncio.Lock()
        self._again = False
        self._kick: asyncio.Task[int] | None = None

    def wake(self) -> None:
        """Run a tick now (intake calls this so a request under the budget never waits)."""
        if self._lock.locked():
            self._again = True
            return
        if self._kick is None or self._kick.done():
            self._kick = asyncio.create_task(self.tick())

    async def idle(self) -> None:
        """Wait for a tick started by wake() (tests, shutdown)."""
        while self._kick is not None and not self._kick.done():
            await asyncio.gather(self._kick, return_exceptions=True)

    async def tick(self) -> int:
        """One pass over the queue; returns how many requests were sent."""
        sent = 0
        async with self._lock:
            while True:
                self._again = False
                sent += await self._pass()
                if not self._again:
                    break
        return sent

    async def _pass(self) -> int:
        now = self.clock.now()
        owner = new_lease_owner(self.replica_id)
        rows = await self.store.claim_requests(
            owner=owner, now=now, lease_seconds=LEASE_SECONDS, limit=BATCH
        )
        sent = 0
        blocked_for: float | None = None
        for row in rows:
            if blocked_for is not None:
                await self._release(row, owner, blocked_for)
                continue
            try:
                outcome = await self._dispatch(row, owner)
            except Exception:
                log.exception("dispatch of request %s failed unexpectedly", row.id)
                await self._retry(row, owner, "internal error", ambiguous=row.ambiguous)
                continue
            if isinstance(outcome, float):
                blocked_for = outcome
                await self._release(row, owner, blocked_for)
            elif outcome:
                sent += 1
        await self.show_queue()
        return sent

    async def _dispatch(self, row: QueuedRequest, owner: str) -> bool | float:
        """True: sent; False: handled otherwise; a float: the budget is spent for that long."""
        if not row.prepared and not await self.intake.prepare(row, owner=owner, release=False):
            return False
        if row.ambiguous:
            found = await self._find_sent(row)
            if found is not None:
                log.info("request %s had reached Codegen as run %s", row.id, found.id)
                await self._record(row, owner, found)
                return True
        wait = await self.budget.try_spend(CREATE)
        if wait > 0:
            return wait
        try:
            run = await self._send(row)
        except RateLimited as error:
            await self.budget.block(CREATE, error.retry_after)
            return error.retry_after
        except (NotFound, InvalidRequest) as error:
            if row.kind == RequestKind.RESUME:
                await self._fall_back_to_create(row, owner, error)
                return False
            await self._fail(row, owner, failure_message(error))
            return False
        except CodegenError as error:
            if error.retryable:
                await self._retry(row, owner, error.message, ambiguous=error.ambiguous)
            else:
                await self._fail(row, owner, failure_message(error))
            return False
        await self._record(row, owner, run)
        return True

    async def _send(self, row: QueuedRequest) -> AgentRunResponse:
        images = list(row.images) or None
        if row.kind == RequestKind.RESUME and row.resume_run_id is not None:
            return await self.codegen.resume_run(
                ResumeAgentRunInput(
                    agent_run_id=row.resume_run_id, prompt=row.prompt, images=images
                )
            )
        resolved = row.options.get("resolved") or {}
        return await self.codegen.create_run(
            CreateAgentRunInput(
                prompt=row.prompt,
                images=images,
                metadata=row.run_metadata,
                repo_id=row.options.get("repo_id"),
                model=(resolved.get("model") or {}).get("value"),
                agent_type=(resolved.get("agent_type") or {}).get("value"),
            )
        )

    async def _find_sent(self, row: QueuedRequest) -> AgentRunResponse | None:
        """After an ambiguous failure: did the earlier attempt create a run after all?"""
        if row.kind == RequestKind.RESUME:
            return None  # a resume is looked at by the tracker; sending it twice is harmless
        for page in range(LOOKUP_PAGES):
            await self.budget.spend_read()
            runs = await self.codegen.list_runs(skip=page * 100, limit=100)
            for run in runs.items:
                if (run.metadata or {}).get("request_id") == row.id:
                    return run
            if len(runs.items) < 100:
                break
        return None

    async def _record(self, row: QueuedRequest, owner: str, run: AgentRunResponse) -> None:
        now = self.clock.now()
        request_json = row.request_json or {}
        tracked = TrackedRun(
            id=run.id,
            org_id=row.org_id,
            request_id=row.id,
            prompt=request_json.get("prompt", row.prompt),
            options=row.options,
            status=run.status,
            web_url=run.web_url,
            summary=run.summary,
            result=run.result,
            pull_requests=[pr.model_dump(mode="json") for pr in run.github_pull_requests or []],
            team_id=row.team_id,
            channel_id=row.channel_id,
            user_id=row.user_id,
            thread_ts=row.thread_ts,
            message_ts=row.message_ts,
            card_ts=row.card_ts,
            tracking=True,
            next_poll_at=now + timedelta(seconds=self.settings.codegen_poll_min_seconds),
            poll_interval=self.settings.codegen_poll_min_seconds,
            notified_status=run.status,
            created_at=now,
            started_at=now,
            last_change_at=now,
        )
        if not await self.store.record_dispatched(row.id, owner=owner, run=tracked, now=now):
            log.warning("request %s: lease lost before recording run %s", row.id, run.id)
            return
        self.metrics.runs_created_total.inc()
        log.info("request %s → run %s", row.id, run.id, extra={"run_id": run.id})
        stored = await self.store.get_run(run.id)
        await self.cards.show_run(stored or tracked)

    async def _fall_back_to_create(
        self, row: QueuedRequest, owner: str, error: CodegenError
    ) -> None:
        """Codegen would not resume the run: start a new one that carries the thread along."""
        previous = await self.store.get_run(row.resume_run_id) if row.resume_run_id else None
        parts = [row.prompt]
        if previous is not None and previous.summary:
            parts.append(
                f"This continues Codegen run #{previous.id}, which could not be resumed "
                f"({error.message}). Its summary:\n{previous.summary}"
            )
        if row.thread_ts:
            context, _files = await self.intake.thread_context(
                channel=row.channel_id, thread_ts=row.thread_ts, before_ts=row.message_ts
            )
            if context:
                parts.append(context)
        metadata = dict(row.run_metadata)
        metadata["parent_run_id"] = row.resume_run_id
        await self.store.update_request(
            row.id,
            owner=owner,
            kind=RequestKind.CREATE,
            prompt="\n\n".join(parts),
            run_metadata=metadata,
            resume_run_id=None,
            next_attempt_at=self.clock.now(),
            lease_owner=None,
            lease_expires_at=None,
        )
        self._again = True

    async def _retry(self, row: QueuedRequest, owner: str, error: str, *, ambiguous: bool) -> None:
        if row.attempts + 1 >= MAX_ATTEMPTS:
            await self._fail(
                row, owner, f"Codegen could not be reached after {row.attempts + 1} tries: {error}"
            )
            return
        delay = full_jitter(row.attempts, base=RETRY_BASE, cap=RETRY_CAP, rand=self.rand())
        now = self.clock.now()
        log.warning("request %s: %s; retrying in %.1f s", row.id, error, delay)
        await self.store.record_retry(
            row.id,
            owner=owner,
            next_attempt_at=now + timedelta(seconds=delay),
            ambiguous=ambiguous or row.ambiguous,
            error=error,
            now=now,
        )

    async def _fail(self, row: QueuedRequest, owner: str, message: str) -> None:
        if await self.store.record_failed(row.id, owner=owner, error=message, now=self.clock.now()):
            log.warning("request %s failed: %s", row.id, message)
            await self.cards.show_request_failed(row, error=message)

    async def _release(self, row: QueuedRequest, owner: str, wait: float) -> None:
        now = self.clock.now()
        await self.store.release_request(
            row.id, owner=owner, next_attempt_at=now + timedelta(seconds=wait), now=now
        )

    async def show_queue(self) -> None:
        """Put each waiting request's place and estimated start on its card, when it changes."""
        waiting = [
            row
            for row in await self.store.pending_requests(org_id=self.budget.org_id)
            if row.prepared
        ]
        self.metrics.requests_waiting.set(len(waiting))
        if not waiting:
            return
        etas = await self.budget.queue_etas(len(waiting))
        for ahead, (row, eta) in enumerate(zip(waiting, etas, strict=True)):
            if eta <= 0 and ahead == 0:
                continue  # it goes out on the next pass; no need to announce a wait
            note = queue_note(ahead, eta)
            if await self.store.set_queue_note(row.id, note):
                await self.cards.show_request(
                    row, phase="waiting", queue_ahead=ahead, eta_seconds=round_eta(eta)
                )


def round_eta(seconds: float) -> float:
    """Estimates move in 10 s steps so a card is not edited on every tick."""
    return float(max(10, int((seconds + 9.999) // 10) * 10))


def queue_note(ahead: int, eta: float) -> str:
    return f"{ahead} ahead, about {format_duration(round_eta(eta))}"
