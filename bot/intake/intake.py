"""RunRequest in, durable queue entry out.

A handler hands a request to `accept`, which returns at once (Slack wants its ack within 3 s);
the work happens in a task of its own:

1. a retried delivery is dropped (by the message's dedupe key);
2. policy that needs no I/O refuses at once (who may ask, from where, how much);
3. the request is committed to the outbox under a short intake lease, before any call to
   Slack or Codegen;
4. it is prepared (bot.intake.prepare) and the dispatcher is woken.

If the process dies between 3 and 4, the lease expires and the dispatcher prepares the same
row again from the stored request: nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from bot.clock import Clock
from bot.config import Settings
from bot.intake.prepare import Preparer
from bot.intake.replies import Replies
from bot.logs import bind, unbind
from bot.metrics import Metrics
from bot.requests import RunRequest, StoredOptions
from bot.store.leases import new_lease_owner
from bot.store.store import Store
from bot.store.tables import QueuedRequest, RequestKind, RequestStatus

log = logging.getLogger(__name__)

INTAKE_LEASE_SECONDS = 120.0
INTAKE_RETRY_SECONDS = 10.0


class Intake:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        preparer: Preparer,
        replies: Replies,
        clock: Clock,
        replica_id: str,
        metrics: Metrics,
        wake_dispatcher: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.preparer = preparer
        self.replies = replies
        self.clock = clock
        self.replica_id = replica_id
        self.metrics = metrics
        self.wake_dispatcher = wake_dispatcher
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- entry points --------------------------------------------------------------------------

    def accept(self, request: RunRequest) -> None:
        """Take a request from a handler without making it wait: the work runs after the ack."""
        self._background(self.submit(request))

    def hint(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """An ephemeral hint for a message that is not a request (help, a typo in options),
        sent after the ack like everything else."""
        self._background(
            self.replies.whisper(channel=channel, user=user, thread_ts=thread_ts, text=text)
        )

    async def idle(self) -> None:
        """Wait until every accepted request and hint has been handled (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def submit(self, request: RunRequest) -> str | None:
        """Queue one request; returns its id, or None if it was a retry or refused."""
        # Every line logged while handling it carries the channel, the user and (once known)
        # the request id.
        context = bind(channel_id=request.slack.channel_id, user_id=request.slack.user_id)
        try:
            return await self._submit(request)
        except Exception:
            log.exception("intake failed for a request from %s", request.slack.user_id)
            await self.replies.to_requester(
                request, "Something went wrong while queuing your request; please try again."
            )
            return None
        finally:
            unbind(context)

    async def _submit(self, request: RunRequest) -> str | None:
        now = self.clock.now()
        key = request.dedupe_key
        if key and not await self.store.events.first_sighting(key, now=now):
            log.info("dropping repeated delivery of message %s", key)
            return None
        refusal = self.refusal(request)
        if refusal:
            await self.replies.to_requester(request, refusal)
            return None
        owner = new_lease_owner(f"{self.replica_id}-intake")
        row = QueuedRequest(
            id=str(uuid.uuid4()),
            org_id=self.settings.effective_org_id,
            kind=RequestKind.CREATE,
            status=RequestStatus.PENDING,
            prompt=request.prompt,
            images=[],
            skipped_files=[],
            options=StoredOptions(),
            run_metadata={},
            request_json=request.model_dump(mode="json"),
            team_id=request.slack.team_id,
            channel_id=request.slack.channel_id,
            user_id=request.slack.user_id,
            trigger=request.slack.trigger,
            thread_ts=request.slack.thread_ts,
            message_ts=request.slack.message_ts,
            next_attempt_at=now,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=INTAKE_LEASE_SECONDS),
            created_at=now,
            updated_at=now,
        )
        await self.store.requests.add(row)
        bind(request_id=row.id)
        self.metrics.requests_queued_total.labels(trigger=request.slack.trigger.value).inc()
        try:
            prepared = await self.preparer.prepare(row, owner=owner)
        except Exception:
            # Committed, so not lost: hand it to the dispatcher, which prepares it again (and
            # gives up with a message on the card after its retries).
            log.exception("preparing request %s failed; the dispatcher will try again", row.id)
            later = self.clock.now() + timedelta(seconds=INTAKE_RETRY_SECONDS)
            await self.store.requests.release(
                row.id, owner=owner, next_attempt_at=later, now=self.clock.now()
            )
            await self.replies.to_requester(
                request,
                "I ran into a problem while preparing your request; it stays queued and I "
                "will try again shortly.",
            )
            return row.id
        if prepared:
            self.wake_dispatcher()
        return row.id

    def refusal(self, request: RunRequest) -> str | None:
        """Policy checks that need no I/O: who may ask, and how much."""
        users, channels = self.settings.allowed_slack_users, self.settings.allowed_slack_channels
        if users and request.slack.user_id not in users:
            return (
                "Sorry, you are not on this bot's list of people who may start Codegen runs. "
                "Ask an admin to add your Slack user id to ALLOWED_SLACK_USERS."
            )
        if channels and request.slack.channel_id not in channels and not _is_dm(request):
            return (
                "Codegen runs cannot be started from this channel. "
                "Ask an admin to add it to ALLOWED_SLACK_CHANNELS."
            )
        limit = self.settings.max_prompt_chars
        if len(request.prompt) > limit:
            return (
                f"Your request is {len(request.prompt):,} characters long; the limit is "
                f"{limit:,} (MAX_PROMPT_CHARS). Please shorten it."
            )
        return None


def _is_dm(request: RunRequest) -> bool:
    return request.slack.channel_id.startswith("D")
