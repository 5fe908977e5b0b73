"""RunRequest in, durable queue entry out.

A handler awaits `admit` (or `take`, for messages) before it acknowledges, and Slack wants
that ack within 3 s, so the ack path does only this:

1. policy that needs no I/O refuses at once (who may ask, from where, how much);
2. the request is committed to the outbox, with its delivery's dedupe key in the same
   transaction (a retried delivery commits nothing), under this replica's lease. If the
   database cannot take it, the caller says so to the person: nothing was promised.

Preparing it (bot.intake.prepare: Slack look-ups, images, the card) happens after, in the
background, at most PREPARE_CONCURRENCY at a time; the rest wait in the outbox, their leases
renewed while this process lives. A preparation that fails is retried by the dispatcher on
its own, and if the process dies, the leases expire and another replica's dispatcher prepares
the same rows from the stored requests: an acked request is never lost and never answered
"try again".
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.background import BackgroundTasks
from bot.clock import Clock
from bot.codegen.models import StatusKind, classify_status
from bot.config import Settings
from bot.errors import SlackBusy, TryLater
from bot.intake.catalog import RepoCatalog
from bot.intake.prepare import Preparer
from bot.intake.replies import Replies
from bot.logs import log_context
from bot.metrics import Metrics
from bot.requests import RunOptions, RunRequest, StoredOptions
from bot.store.leases import LEASE_SECONDS, new_lease_owner
from bot.store.requests import new_request
from bot.store.store import Store
from bot.store.tables import QueuedRequest, RequestKind, RequestStatus
from bot.traffic import AckTraffic

log = logging.getLogger(__name__)

#: Requests prepared at once by one process (each holds a database connection at times and
#: makes Slack calls); a flood waits in the outbox instead of exhausting the pool.
PREPARE_CONCURRENCY = 4
INTAKE_RETRY_SECONDS = 10.0

STORE_UNAVAILABLE_TEXT = (
    "I could not queue your request: the bot's database is not answering. Nothing was "
    "started; please send it again in a minute."
)


PREPARE_RETRY_TEXT = (
    "I ran into a problem while preparing your request; it stays queued and I will try again "
    "shortly."
)


class Admission(StrEnum):
    QUEUED = "queued"
    REPEATED = "repeated"  # a retried delivery: already queued once
    UNAVAILABLE = "unavailable"  # the store could not take it: nothing was queued


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
        prepare_concurrency: int = PREPARE_CONCURRENCY,
        lease_seconds: float = LEASE_SECONDS,
        traffic: AckTraffic | None = None,
        catalog: RepoCatalog | None = None,
    ) -> None:
        self.traffic = traffic or AckTraffic()
        self.catalog = catalog
        self.settings = settings
        self.store = store
        self.preparer = preparer
        self.replies = replies
        self.clock = clock
        self.replica_id = replica_id
        self.metrics = metrics
        self.wake_dispatcher = wake_dispatcher
        self._background = BackgroundTasks()
        self._preparing = asyncio.Semaphore(prepare_concurrency)
        # What the preparations admitted here and not done yet will post, by channel: Slack's
        # room in a channel is spoken for by those before (Preparer.slack_wait).
        self._posts_ahead: Counter[str] = Counter()
        self.lease_seconds = lease_seconds

    # -- entry points --------------------------------------------------------------------------

    async def admit(self, request: RunRequest) -> Admission:
        """Commit a request that passed `refusal` to the outbox and start preparing it."""
        with log_context(channel_id=request.slack.channel_id, user_id=request.slack.user_id):
            # When Slack is known to have no room for its root message, or the preparations
            # under way here will fill the channel, preparing it now could only be refused
            # (and cost a write to give it back): it waits in the outbox, unleased, for the
            # dispatcher to prepare once Slack has room.
            channel, posts = request.slack.channel_id, self.preparer.channel_posts(request)
            slack_wait = self.preparer.slack_wait(request, posts_ahead=self._posts_ahead[channel])
            owner = None if slack_wait > 0 else new_lease_owner(self.replica_id)
            # Spoken for from now, so the admissions during the insert count it; handed to the
            # preparation once it starts, given back on any other way out (cancellation too).
            spoken_for = posts if owner is not None else 0
            if spoken_for:
                self._posts_ahead[channel] += spoken_for
            try:
                row = self._row(request, owner=owner, wait=slack_wait)
                try:
                    added = await self.store.requests.add(row, dedupe_key=request.dedupe_key)
                except (SQLAlchemyError, OSError) as error:
                    log.error("could not queue a request: the store refused it (%s)", error)
                    self.metrics.requests_unqueued_total.inc()
                    return Admission.UNAVAILABLE
                if not added:
                    log.info("dropping repeated delivery of message %s", request.dedupe_key)
                    return Admission.REPEATED
                self.metrics.requests_queued_total.labels(trigger=request.slack.trigger.value).inc()
                if owner is not None:
                    self._background.start(
                        self._prepare_counted(row, request, owner=owner, posts=spoken_for)
                    )
                    spoken_for = 0
                return Admission.QUEUED
            finally:
                if spoken_for:
                    self._posted(channel, spoken_for)

    def _posted(self, channel: str, posts: int) -> None:
        """A preparation counted in `_posts_ahead` is done (or never began)."""
        self._posts_ahead[channel] -= posts
        if self._posts_ahead[channel] <= 0:
            del self._posts_ahead[channel]

    async def take(self, request: RunRequest) -> Admission | None:
        """A message's request: refused or admitted, the person told in the background when
        it is not queued (messages have no ack to carry a text). None: refused."""
        refusal = self.refusal(request)
        if refusal:
            self._background.start(self.replies.to_requester(request, refusal))
            return None
        admission = await self.admit(request)
        if admission is Admission.UNAVAILABLE:
            self._background.start(self.replies.to_requester(request, STORE_UNAVAILABLE_TEXT))
        return admission

    async def answer(self, request: RunRequest) -> Admission | None:
        """A plain reply in a thread: admitted as the answer when the thread's run is waiting
        for one (PAUSED) and the person may ask; otherwise it is conversation between people
        and nothing is said. None: not an answer."""
        thread_ts = request.slack.thread_ts
        if not thread_ts or self.refusal(request):
            return None
        try:
            run = await self.store.runs.latest_in_thread(
                channel_id=request.slack.channel_id, thread_ts=thread_ts
            )
        except (SQLAlchemyError, OSError) as error:
            log.error("could not look up the run of a thread (%s); reply not taken", error)
            return None
        if run is None or not run.tracking or not is_waiting(run.status):
            return None
        return await self.admit(request)

    def hint(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """An ephemeral hint for a message that is not a request (help, a typo in options),
        sent after the ack like everything else."""
        self._background.start(
            self.replies.whisper(channel=channel, user=user, thread_ts=thread_ts, text=text)
        )

    async def idle(self) -> None:
        """Wait until every admitted request and hint has been handled (tests, shutdown)."""
        await self._background.idle()

    def _row(self, request: RunRequest, *, owner: str | None, wait: float) -> dict[str, Any]:
        """The outbox row of `request`, leased to `owner` (None: due in `wait` seconds), as
        columns: the row itself is built only if it is prepared here (`_prepare_counted`)."""
        now = self.clock.now()
        lease_expires_at = now + timedelta(seconds=self.lease_seconds) if owner else None
        return new_request(
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
            next_attempt_at=now + timedelta(seconds=wait),
            lease_owner=owner,
            lease_expires_at=lease_expires_at,
            created_at=now,
            updated_at=now,
        )

    async def _prepare_counted(
        self, columns: dict[str, Any], request: RunRequest, *, owner: str, posts: int
    ) -> None:
        """`_prepare` of the row with `columns`; its `posts`, counted in `_posts_ahead` at
        admission, uncounted when done."""
        try:
            await self._prepare(QueuedRequest(**columns), request, owner=owner)
        finally:
            self._posted(request.slack.channel_id, posts)

    async def _prepare(self, row: QueuedRequest, request: RunRequest, *, owner: str) -> None:
        context = {"channel_id": request.slack.channel_id, "user_id": request.slack.user_id}
        async with self._preparing:
            await self.traffic.make_way()  # the acks still arriving go first
            with log_context(request_id=row.id, **context):
                slack_wait = self.preparer.slack_wait(request)
                if slack_wait > 0:  # Slack's room ran out while it waited its turn
                    await self._release(row, owner=owner, wait=slack_wait)
                    return
                try:
                    prepared = await self.preparer.prepare(row, owner=owner)
                except SlackBusy as busy:
                    # Slack's budget is spent for now: it waits in the outbox, quietly.
                    log.info("request %s waits for Slack: %s", row.id, busy.message)
                    await self._release(row, owner=owner, wait=busy.wait)
                    return
                except Exception as error:
                    # Committed, so not lost: the dispatcher prepares it again on its own (and
                    # gives up with a message on the card after its retries).
                    log.warning(
                        "preparing request %s failed; the dispatcher will try again",
                        row.id,
                        exc_info=not isinstance(error, TryLater),
                    )
                    await self._retry_later(row, request, owner=owner)
                    return
        if prepared:
            self.wake_dispatcher()

    async def _retry_later(self, row: QueuedRequest, request: RunRequest, *, owner: str) -> None:
        await self._release(row, owner=owner, wait=INTAKE_RETRY_SECONDS)
        await self.replies.to_requester(request, PREPARE_RETRY_TEXT)

    async def _release(self, row: QueuedRequest, *, owner: str, wait: float | None) -> None:
        later = self.clock.now() + timedelta(seconds=wait or INTAKE_RETRY_SECONDS)
        try:
            await self.store.requests.release(
                row.id, owner=owner, next_attempt_at=later, now=self.clock.now()
            )
        except Exception:  # the lease lapses and frees it all the same
            log.warning("could not release request %s", row.id, exc_info=True)

    def who_may_not(self, *, user_id: str, channel_id: str, what: str) -> str | None:
        """ALLOWED_SLACK_USERS and ALLOWED_SLACK_CHANNELS, for everything a person can change:
        why `user_id` may not `what` ("start Codegen runs") from `channel_id`, or None."""
        users, channels = self.settings.allowed_slack_users, self.settings.allowed_slack_channels
        if users and user_id not in users:
            return (
                f"Sorry, you are not on this bot's list of people who may {what}. "
                "Ask an admin to add your Slack user id to ALLOWED_SLACK_USERS."
            )
        if channels and channel_id not in channels and not channel_id.startswith("D"):
            return (
                f"This channel is not on the bot's list of channels where people may {what}. "
                "Ask an admin to add it to ALLOWED_SLACK_CHANNELS."
            )
        return None

    def may_not_change_defaults(self, *, user_id: str, channel_id: str) -> str | None:
        """Why `user_id` may not change `channel_id`'s defaults, or None: the allow-lists, and
        when ADMIN_SLACK_USERS is set, only the admins it names."""
        denied = self.who_may_not(
            user_id=user_id, channel_id=channel_id, what="change this channel's defaults"
        )
        admins = self.settings.admin_slack_users
        if denied is None and admins and user_id not in admins:
            denied = (
                "Only admins change this channel's defaults here (ADMIN_SLACK_USERS); ask one "
                "of them, or type options into your request instead."
            )
        return f"{denied} Nothing was changed." if denied else None

    def refusal(self, request: RunRequest) -> str | None:
        """Policy checks that need no I/O: who may ask, and how much."""
        denied = self.who_may_not(
            user_id=request.slack.user_id,
            channel_id=request.slack.channel_id,
            what="start Codegen runs",
        )
        if denied:
            return denied
        limit = self.settings.max_prompt_chars
        if len(request.prompt) > limit:
            return (
                f"Your request is {len(request.prompt):,} characters long; the limit is "
                f"{limit:,} (MAX_PROMPT_CHARS). Please shorten it."
            )
        repo = request.options.repo
        if repo is not None and self.catalog is not None:
            unknown = self.catalog.refusal_now(repo)
            if unknown is not None:
                return f"{unknown} Nothing was started."
        return None

    def queued_text(self, request: RunRequest) -> str:
        """The ack of an admitted slash command: what was taken as options, and a promise
        only as firm as what was checked (a repository name is checked before the ack only
        when the repository list is fresh)."""
        taken = describe_options(request.options)
        options = f" Options taken: {taken}." if taken else ""
        repo = request.options.repo
        if repo is not None and (self.catalog is None or self.catalog.fresh() is None):
            return (
                f"Queued.{options} I will check repository `{repo}` with Codegen, then post "
                "the run in a thread here, or tell you why I could not start it."
            )
        return (
            f"Queued.{options} I will post the run in a thread here and keep its status card "
            "up to date."
        )


def describe_options(options: RunOptions) -> str:
    """`repo `acme/web`, agent `claude_code`` for the options typed ("" for none)."""
    labels = {"repo": "repo", "model": "model", "agent_type": "agent"}
    return ", ".join(f"{labels[key]} `{value}`" for key, value in options.given().items())


def is_waiting(status: str | None) -> bool:
    return classify_status(status) is StatusKind.WAITING_FOR_INPUT
