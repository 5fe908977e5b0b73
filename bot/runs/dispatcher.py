"""Queue → create/resume under the organization's shared create budget.

One tick claims due requests in queue order and sends as many as the budget allows; the rest
are released with their next attempt set to when the budget frees up, and their cards show
their place. The dispatcher alone decides about retries (the client never retries a create).

Nothing twice: before a create leaves, the request is marked ambiguous in the store. Whatever
happens next (a timeout, a 5xx, the process killed), the next attempt first looks for the
request's id in the metadata of recent runs and adopts the run it finds instead of sending the
create again. Only an answer that proves nothing was created clears the mark.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock, full_jitter, parse_time, utc
from bot.codegen.client import CodegenClient
from bot.codegen.models import (
    AgentRunResponse,
    CreateAgentRunInput,
    ResumeAgentRunInput,
    StatusKind,
    classify_status,
    is_terminal,
)
from bot.config import Settings
from bot.errors import (
    BudgetExhausted,
    CodegenError,
    Forbidden,
    InvalidRequest,
    NoReposFound,
    NotFound,
    PlanLimitReached,
    RateLimited,
    RequestRefused,
    RunNotFound,
    SlackBusy,
    TryLater,
    UnexpectedResponse,
)
from bot.intake.accounts import Accounts, Credential
from bot.intake.context import ThreadContext
from bot.intake.prepare import Preparer, continuation
from bot.logs import log_context
from bot.metrics import Metrics
from bot.runs.budget import CREATE, READ, OrgBudget
from bot.slack.budget import Priority
from bot.slack.cards import RunCards, notified_key
from bot.slack.text import sentence
from bot.store.budgets import Spend
from bot.store.leases import LEASE_SECONDS, new_lease_owner
from bot.store.store import Store
from bot.store.tables import FollowReason, QueuedRequest, RequestKind, TrackedRun
from bot.traffic import AckTraffic

log = logging.getLogger(__name__)

BATCH = 25
# A waiting card's place is shown again at most this often (and only when its text changes):
# Slack allows about 50 edits a minute per workspace, and status changes come first.
QUEUE_REFRESH_SECONDS = 30.0
# While the queue stands still, its places are worked out again at most this often.
QUEUE_SHOW_EVERY = timedelta(seconds=5)
MAX_ATTEMPTS = 6
RETRY_BASE = 2.0
RETRY_CAP = 120.0
# After an ambiguous failure: pages of recent runs (newest first) searched for the request_id,
# stopping early once a page reaches runs older than the request (with room for clock skew).
LOOKUP_PAGES = 5
LOOKUP_SKEW = timedelta(minutes=10)
# Queue notes name the predicted start in steps of this many seconds, so a waiting card is
# edited when its place or its start changes, not every time the countdown moves.
ETA_STEP = 10


def failure_message(error: CodegenError) -> str:
    """What the user reads on the card for a create that Codegen refused for good."""
    return sentence(_failure_text(error))


def _failure_text(error: CodegenError) -> str:
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


@dataclass(frozen=True)
class Blocked:
    """The create budget is spent (or Codegen said 429): this and every later request wait."""

    wait: float


@dataclass(frozen=True)
class Deferred:
    """Only this request waits (the read budget for its look-up is spent)."""

    wait: float


Outcome = bool | Blocked | Deferred


class Dispatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        codegen: CodegenClient,
        budget: OrgBudget,
        cards: RunCards,
        preparer: Preparer,
        context: ThreadContext,
        clock: Clock,
        replica_id: str,
        metrics: Metrics,
        rand: Callable[[], float] = random.random,
        lease_seconds: float = LEASE_SECONDS,
        traffic: AckTraffic | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.traffic = traffic or AckTraffic()
        self.accounts = accounts
        self.settings = settings
        self.store = store
        self.codegen = codegen
        self.budget = budget
        self.cards = cards
        self.preparer = preparer
        self.context = context
        self.clock = clock
        self.replica_id = replica_id
        self.metrics = metrics
        self.rand = rand
        self.lease_seconds = lease_seconds
        self._slack_busy_for: float | None = None
        self._queue_shown_at: datetime | None = None
        self._queue_joined = False
        self._lock = asyncio.Lock()
        self._again = False
        self._kick: asyncio.Task[int] | None = None

    def wake(self) -> None:
        """Run a tick now (intake calls this so a request under the budget never waits)."""
        self._queue_joined = True
        if self._lock.locked():
            self._again = True
            return
        if self._kick is None or self._kick.done():
            self._kick = asyncio.create_task(self.tick())

    async def idle(self) -> None:
        """Wait for a tick started by wake(), and for one the scheduler started: a wake()
        during it only asks that tick for another pass (console, tests, shutdown)."""
        while self._kick is not None and not self._kick.done():
            await asyncio.gather(self._kick, return_exceptions=True)
        async with self._lock:
            pass

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
        rows = await self.store.requests.claim_due(
            owner=owner, now=now, lease_seconds=self.lease_seconds, limit=BATCH
        )
        sent = 0
        blocked_for: float | None = None
        self._slack_busy_for = None
        # Requests that wait behind another, given back together in one write per wait.
        waiting: dict[float, list[str]] = {}
        for row in rows:
            if not row.prepared and self._slack_busy_for is not None:
                # Slack had no room to prepare the one before: the rest wait in the outbox too
                # (behind a request the create budget holds back, no longer than it waits).
                wait = self._slack_busy_for
                if blocked_for is not None:
                    wait = min(wait, blocked_for)
                waiting.setdefault(wait, []).append(row.id)
                continue
            if blocked_for is not None:
                # Queue order: nobody overtakes a request that waits for the budget. Its card
                # need not wait with it: one not yet prepared is prepared now, so a person at
                # the back of a long queue sees their request and its place at once.
                behind: float | None = blocked_for
                if not row.prepared:
                    behind = await self._prepare_to_wait(row, owner, wait=blocked_for)
                if behind is not None:
                    waiting.setdefault(behind, []).append(row.id)
                continue
            await self.traffic.make_way()  # acks first (bot.traffic)
            with log_context(request_id=row.id, channel_id=row.channel_id, user_id=row.user_id):
                try:
                    outcome = await self._dispatch(row, owner)
                except Exception:
                    log.exception("dispatch of request %s failed unexpectedly", row.id)
                    # It may have reached Codegen: the next attempt looks before sending again.
                    await self._retry(row, owner, "internal error", ambiguous=True)
                    continue
            if isinstance(outcome, Blocked):
                blocked_for = outcome.wait
                waiting.setdefault(outcome.wait, []).append(row.id)
            elif isinstance(outcome, Deferred):
                waiting.setdefault(outcome.wait, []).append(row.id)
            elif outcome:
                sent += 1
        released_at = self.clock.now()
        for wait, ids in waiting.items():
            await self.store.requests.release_many(
                ids,
                owner=owner,
                next_attempt_at=released_at + timedelta(seconds=wait),
                now=released_at,
            )
        try:
            await self.show_queue(moved=sent > 0 or any(not row.prepared for row in rows))
        except Exception:
            log.exception("showing queue places failed")
        return sent

    async def _prepare_to_wait(
        self, row: QueuedRequest, owner: str, *, wait: float
    ) -> float | None:
        """Prepare a request that waits `wait` behind the create budget all the same: how long
        it waits now (less, when Slack had no room to prepare it: it is tried again once Slack
        has), or None when it was handled instead (refused, or given back to retry)."""
        await self.traffic.make_way()
        with log_context(request_id=row.id, channel_id=row.channel_id, user_id=row.user_id):
            try:
                ready = await self._prepare(row, owner)
            except Exception as error:
                log.warning(
                    "preparing request %s failed; trying again later",
                    row.id,
                    exc_info=not isinstance(error, TryLater),
                )
                await self._retry(row, owner, "preparing: internal error", ambiguous=False)
                return None
        if isinstance(ready, Deferred):
            return min(wait, ready.wait)
        return wait if ready else None

    async def _prepare(self, row: QueuedRequest, owner: str) -> Outcome:
        """Prepare `row`, keeping its lease: True when ready, False when handled (refused, or
        the lease lost), Deferred when Slack has no room (the rest of the pass waits too)."""
        try:
            if not await self.preparer.prepare(row, owner=owner, release=False):
                return False
        except SlackBusy as busy:
            self._slack_busy_for = busy.wait or RETRY_BASE
            return Deferred(self._slack_busy_for)
        return True

    async def _dispatch(self, row: QueuedRequest, owner: str) -> Outcome:
        """True: sent; False: handled otherwise; Blocked/Deferred: wait that long."""
        if not row.prepared:
            ready = await self._prepare(row, owner)
            if ready is not True:
                return ready
        if row.ambiguous:
            try:
                found = await self._find_sent(row)
            except BudgetExhausted as spent:
                return Deferred(spent.wait)
            except CodegenError as error:
                await self._retry(
                    row, owner, f"looking for the earlier attempt: {error.message}", ambiguous=True
                )
                return False
            if found is not None:
                log.info("request %s had reached Codegen as run %s", row.id, found.id)
                await self._record(row, owner, found)
                return True
        # The requester's own token when they logged in (its own budget), else the org's.
        try:
            credential = await self._credential(row)
        except RequestRefused as refused:
            await self._fail(row, owner, refused.message)
            return False
        personal = credential is not None and credential.fingerprint is not None
        budget = self.budget
        codegen = self.codegen
        if credential is not None and credential.fingerprint is not None and self.accounts:
            budget = self.budget.for_token(credential.fingerprint)
            codegen = self.accounts.client(credential)
        spend = await budget.take(CREATE)
        if spend.wait > 0:
            # A person's own budget holds back only their requests, not the queue.
            return Deferred(spend.wait) if personal else Blocked(spend.wait)
        # From here on a crash, a timeout or a 5xx leaves the request marked: the next attempt
        # looks for it at Codegen before sending it again.
        if not await self.store.requests.mark_sending(row.id, owner=owner):
            log.warning("request %s: lease lost before sending", row.id)
            return False
        try:
            run = await self._send_paid(row, spend, budget=budget, codegen=codegen)
        except RateLimited as error:
            await budget.block(CREATE, error.retry_after)
            await self.store.requests.mark_sending(row.id, owner=owner, sending=False)
            return Deferred(error.retry_after) if personal else Blocked(error.retry_after)
        except Forbidden as error:
            if credential is not None and personal and self.accounts is not None:
                # Their token was rejected: they are told once; the fallback decides now.
                await self.accounts.rejected(credential)
                await self.store.requests.mark_sending(row.id, owner=owner, sending=False)
                await self._release(row, owner, 0.0)
                self._again = True
                return False
            await self._fail(row, owner, failure_message(error))
            return False
        except (NotFound, InvalidRequest) as error:
            if row.kind is RequestKind.RESUME:
                await self._fall_back_to_create(row, owner, error)
                return False
            await self._fail(row, owner, failure_message(error))
            return False
        except UnexpectedResponse as error:
            if error.status_code is not None and 200 <= error.status_code < 300:
                # Codegen accepted it, but the answer did not parse: the run may exist.
                await self._retry(row, owner, error.message, ambiguous=True)
            else:
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

    async def _credential(self, row: QueuedRequest) -> Credential | None:
        if self.accounts is None:
            return None
        return await self.accounts.credential(row.user_id)

    async def _send_paid(
        self, row: QueuedRequest, spend: Spend, *, budget: OrgBudget, codegen: CodegenClient
    ) -> AgentRunResponse:
        """Send, then restamp the budget's spend with the moment the call left: the API counts
        it from its arrival, and so must whoever spends next (the stamp may be seconds older:
        a database write came between)."""
        sent_at = self.clock.now()
        try:
            return await self._send(row, codegen)
        finally:
            try:
                await budget.left(spend, at=sent_at)
            except Exception:
                log.warning("could not restamp the create budget's spend", exc_info=True)

    async def _send(self, row: QueuedRequest, codegen: CodegenClient) -> AgentRunResponse:
        images = list(row.images) or None
        if row.kind is RequestKind.RESUME and row.resume_run_id is not None:
            return await codegen.resume_run(
                ResumeAgentRunInput(
                    agent_run_id=row.resume_run_id, prompt=row.prompt, images=images
                )
            )
        return await codegen.create_run(
            CreateAgentRunInput(
                prompt=row.prompt,
                images=images,
                metadata=row.run_metadata,
                repo_id=row.options.repo_id,
                model=row.options.model,
                agent_type=row.options.agent_type,
            )
        )

    async def _find_sent(self, row: QueuedRequest) -> AgentRunResponse | None:
        """After an ambiguous failure: did the earlier attempt create (or resume) a run?"""
        if row.kind is RequestKind.RESUME:
            if row.resume_run_id is None:
                return None
            # Only a resume takes a run out of PAUSED: if it left, ours went through.
            await self.budget.spend_now(READ)
            try:
                run = await self.codegen.get_run(row.resume_run_id)
            except RunNotFound:
                return None
            paused = classify_status(run.status) is StatusKind.WAITING_FOR_INPUT
            return None if paused else run
        since = utc(row.created_at) - LOOKUP_SKEW
        for page in range(LOOKUP_PAGES):
            await self.budget.spend_now(READ)
            runs = await self.codegen.list_runs(skip=page * 100, limit=100)
            for run in runs.items:
                if (run.metadata or {}).get("request_id") == row.id:
                    return run
            if len(runs.items) < 100:
                break
            oldest = parse_time(runs.items[-1].created_at)
            if oldest is not None and oldest < since:
                break  # newest first: the rest is older than the request
        return None

    async def _record(self, row: QueuedRequest, owner: str, run: AgentRunResponse) -> None:
        now = self.clock.now()
        request_json = row.request_json or {}
        follows, reason = row.parent_run_id, None
        if row.kind is RequestKind.CREATE and follows is not None:
            parent = await self.store.runs.get(follows)
            ended = parent is not None and is_terminal(parent.status)
            reason = FollowReason.ENDED if ended else FollowReason.NOT_RESUMABLE
        else:
            follows = None
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
            author_id=(request_json.get("slack") or {}).get("author_id"),
            thread_ts=row.thread_ts,
            message_ts=row.message_ts,
            card_ts=row.card_ts,
            tracking=True,
            next_poll_at=now + timedelta(seconds=self.settings.codegen_poll_min_seconds),
            poll_interval=self.settings.codegen_poll_min_seconds,
            notified_status=None,
            follows_run_id=follows,
            follow_reason=reason,
            created_at=now,
            started_at=now,
            last_change_at=now,
            # Held while the card is edited, so the tracker cannot report on it at the same time.
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=self.lease_seconds),
        )
        if not await self.store.requests.record_dispatched(
            row.id, owner=owner, run=tracked, now=now
        ):
            log.warning("request %s: lease lost before recording run %s", row.id, run.id)
            return
        self.metrics.runs_created_total.inc()
        log.info("request %s → run %s", row.id, run.id, extra={"run_id": run.id})
        stored = await self.store.runs.get(run.id) or tracked
        if await self.store.runs.mark_notified(run.id, owner=owner, key=notified_key(run.status)):
            card_before = stored.card_ts
            shown = await self.cards.show_run(stored)
            if stored.card_ts and stored.card_ts != card_before:
                await self.store.requests.set_card(row.id, card_ts=stored.card_ts)
            if not shown:  # Slack is down for now: the tracker edits the card on its next poll
                await self.store.runs.unmark_notified(run.id, owner=owner, back_to=None)
        await self.store.runs.release(run.id, owner=owner)

    async def _fall_back_to_create(
        self, row: QueuedRequest, owner: str, error: CodegenError
    ) -> None:
        """Codegen would not resume the run: start a new one that carries the thread along."""
        previous = await self.store.runs.get(row.resume_run_id) if row.resume_run_id else None
        parts = [row.prompt]
        if previous is not None:
            parts += continuation(previous, why=f"which could not be resumed ({error.message})")
        if row.thread_ts:
            context, _files = await self.context.quote(
                channel=row.channel_id, thread_ts=row.thread_ts, before_ts=row.message_ts
            )
            if context:
                parts.append(context)
        metadata = dict(row.run_metadata)
        metadata["parent_run_id"] = row.resume_run_id
        await self.store.requests.restart_as_create(
            row.id,
            owner=owner,
            prompt="\n\n".join(parts),
            run_metadata=metadata,
            now=self.clock.now(),
        )
        self._again = True

    async def _retry(self, row: QueuedRequest, owner: str, error: str, *, ambiguous: bool) -> None:
        if row.attempts + 1 >= MAX_ATTEMPTS:
            if ambiguous:
                # Before saying it failed: the last attempt may have created the run after all.
                try:
                    found = await self._find_sent(row)
                except BudgetExhausted as spent:
                    await self._release(row, owner, spent.wait)
                    return
                except CodegenError:
                    found = None
                if found is not None:
                    await self._record(row, owner, found)
                    return
            await self._fail(
                row, owner, f"Codegen could not be reached after {row.attempts + 1} tries: {error}"
            )
            return
        delay = full_jitter(row.attempts, base=RETRY_BASE, cap=RETRY_CAP, rand=self.rand())
        now = self.clock.now()
        log.warning("request %s: %s; retrying in %.1f s", row.id, error, delay)
        await self.store.requests.record_retry(
            row.id,
            owner=owner,
            next_attempt_at=now + timedelta(seconds=delay),
            ambiguous=ambiguous,
            error=error,
            now=now,
        )

    async def _fail(self, row: QueuedRequest, owner: str, message: str) -> None:
        now = self.clock.now()
        if await self.store.requests.record_failed(row.id, owner=owner, error=message, now=now):
            log.warning("request %s failed: %s", row.id, message)
            card_before = row.card_ts
            await self.cards.show_request_failed(row, error=message)
            if row.card_ts and row.card_ts != card_before:
                await self.store.requests.set_card(row.id, card_ts=row.card_ts)

    async def _release(self, row: QueuedRequest, owner: str, wait: float) -> None:
        now = self.clock.now()
        await self.store.requests.release(
            row.id, owner=owner, next_attempt_at=now + timedelta(seconds=wait), now=now
        )

    async def show_queue(self, *, moved: bool) -> None:
        """Put each waiting request's place and estimated start on its card, when it changes.
        Worked out when the queue `moved` (a request went out or became ready) or one joined
        it, else at most every QUEUE_SHOW_EVERY: the scheduler ticks every second and the
        queue may hold thousands."""
        now = self.clock.now()
        joined, self._queue_joined = self._queue_joined, False
        shown_at = self._queue_shown_at
        if not (moved or joined) and shown_at and now - shown_at < QUEUE_SHOW_EVERY:
            return
        self._queue_shown_at = now
        waiting = await self.store.requests.queue_places(org_id=self.budget.org_id)
        self.metrics.requests_waiting.set(len(waiting))
        if not waiting:
            return
        etas = await self.budget.queue_etas(len(waiting))
        for ahead, (place, slot_eta) in enumerate(zip(waiting, etas, strict=True)):
            # A request in back-off after a failure starts no sooner than its next attempt.
            own = (utc(place.next_attempt_at) - now).total_seconds()
            eta = max(slot_eta, own, 0.0)
            if eta <= 0 and ahead == 0:
                continue  # it goes out on the next pass; no need to announce a wait
            if place.lease_owner and place.lease_expires_at and utc(place.lease_expires_at) > now:
                continue  # someone is sending it right now
            note = queue_note(ahead, now + timedelta(seconds=eta))
            if place.queue_note == note:
                continue
            noted = utc(place.queue_noted_at) if place.queue_noted_at else None
            if noted is not None and now - noted < timedelta(seconds=QUEUE_REFRESH_SECONDS):
                continue  # changed not long ago: a later pass shows the news
            if not place.card_ts:
                # Its card could not be posted while it was prepared (Slack had no room then);
                # the run posts it when it starts. Posting it here could race that post.
                continue
            # Claimed first (one replica edits each change), given back if Slack had no room.
            if not await self.store.requests.set_queue_note(
                place.id, note, previous=place.queue_note, now=now
            ):
                continue
            row = await self.store.requests.get(place.id)
            shown = row is not None and await self.cards.show_request(
                row,
                phase="waiting",
                queue_ahead=ahead,
                eta_seconds=round_eta(eta),
                priority=Priority.LOW,
            )
            if not shown:
                await self.store.requests.set_queue_note(
                    place.id, place.queue_note, previous=note, now=noted
                )
                break  # the low-priority share of Slack's budget is spent for now


def round_eta(seconds: float) -> float:
    """Estimates shown in 10 s steps, rounded up: "starts in about 40 s" never promises early."""
    return float(max(ETA_STEP, -(-int(seconds * 1000) // (ETA_STEP * 1000)) * ETA_STEP))


def queue_note(ahead: int, start_at: datetime) -> str:
    """What a waiting card shows, as stored: its place and predicted start (in ETA_STEP steps).
    A new note means a card edit."""
    step = int(utc(start_at).timestamp() // ETA_STEP) * ETA_STEP
    return f"{ahead} ahead, from {step}"
