"""Wiring: Settings → the parts of the bot. The only module that knows them all.

    runtime = await build_runtime(settings)      # store, clients, intake, dispatcher, tracker
    bolt = build_bolt_app(runtime)               # the Slack listeners (handlers/)
    web = build_web_app(runtime, bolt)           # /slack/events, /healthz, /readyz, /metrics
    runtime.start_ticks()                        # dispatch, poll, progress, reap, prune

Everything is built once, from the settings, and handed to the parts that use it; nothing
below this module imports Runtime.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette

from bot.clock import Clock, SystemClock
from bot.codegen.client import DEFAULT_TIMEOUT_SECONDS, CodegenClient
from bot.codegen.models import StatusKind, classify_status
from bot.config import Settings
from bot.home import HOME_TICK_SECONDS, AppHome
from bot.http_clients import (
    OnDemandClient,
    close_slack_web_client,
    shared_tls,
    slack_web_client,
)
from bot.intake.accounts import Accounts
from bot.intake.answers import Answers
from bot.intake.catalog import RepoCatalog
from bot.intake.compose import Composer
from bot.intake.context import ThreadContext
from bot.intake.intake import Intake
from bot.intake.members import Members
from bot.intake.prepare import Preparer
from bot.intake.replies import Replies
from bot.metrics import Metrics
from bot.runs.budget import OrgBudget
from bot.runs.dispatcher import Dispatcher
from bot.runs.progress import Progress
from bot.runs.pull_requests import PullRequestStates
from bot.runs.reading import ListPages, Reader, ReadPlan
from bot.runs.reporting import Reporter
from bot.runs.stopping import Stopper
from bot.runs.tracker import Tracker
from bot.runs.watchdog import Watchdog
from bot.scheduler import Job, Ticks
from bot.secret_box import SecretBox
from bot.slack.budget import SlackBudget
from bot.slack.cards import RunCards
from bot.slack.gateway import SlackGateway
from bot.slack.sessions import AgentSessions
from bot.store.db import create_engine, migrate
from bot.store.leases import LEASE_SECONDS, RENEW_SECONDS
from bot.store.store import Store
from bot.traffic import AckTraffic
from bot.web import READY_TIMEOUT_SECONDS, Health, build_http_app
from handlers.slack import register

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

DISPATCH_SECONDS = 1.0
REAP_SECONDS = 30.0
PRUNE_SECONDS = 3600.0
OPTIMIZE_SECONDS = 600.0
CHECKPOINT_SECONDS = 5.0
# Agent session statuses Slack had no room for are sent again this often.
SESSIONS_SECONDS = 5.0
PROGRESS_SECONDS = 1.0


def default_replica_id() -> str:
    """Stable across restarts, so a restarted replica takes its own leases back at once: the
    hostname, which is the container's (compose, Kubernetes) and unique per replica there.
    Two processes on one host need BOT_REPLICA_ID each."""
    return socket.gethostname()


@dataclass
class Runtime:
    """Everything one bot process runs, built once from the settings."""

    settings: Settings
    clock: Clock
    replica_id: str
    store: Store
    codegen: CodegenClient
    http: OnDemandClient
    slack_client: AsyncWebClient
    intake: Intake
    dispatcher: Dispatcher
    tracker: Tracker
    answers: Answers
    stopper: Stopper
    pull_requests: PullRequestStates
    accounts: Accounts
    composer: Composer
    members: Members
    metrics: Metrics
    home: AppHome
    sessions: AgentSessions
    health: Health = field(default_factory=Health)
    traffic: AckTraffic = field(default_factory=AckTraffic)
    ticks: Ticks | None = None
    lease_seconds: float = LEASE_SECONDS
    # The cards' progress lines from Codegen's run logs (None: CODEGEN_LOGS_PER_MINUTE=0).
    progress: Progress | None = None

    def jobs(self) -> list[Job]:
        """What the scheduler fires: plain coroutines on intervals."""
        poll_every = min(1.0, self.settings.codegen_poll_min_seconds)
        jobs = [
            Job("dispatch", DISPATCH_SECONDS, self.dispatcher.tick),
            Job("poll", poll_every, self.tracker.tick),
            Job("renew", RENEW_SECONDS, self._renew),
            Job("reap", REAP_SECONDS, self._reap),
            Job("prune", PRUNE_SECONDS, self._prune),
            Job("optimize", OPTIMIZE_SECONDS, self.store.optimize),
            Job("checkpoint", CHECKPOINT_SECONDS, self.store.checkpoint),
            Job("home", HOME_TICK_SECONDS, self.home.tick),
            Job("sessions", SESSIONS_SECONDS, self.sessions.tick),
        ]
        if self.progress is not None:
            jobs.append(Job("progress", PROGRESS_SECONDS, self.progress.tick))
        return jobs

    async def _renew(self) -> None:
        """Keep this replica's leases while it lives; they lapse within LEASE_SECONDS of its
        death and another replica takes the work."""
        await self.store.leases.renew(
            self.replica_id, now=self.clock.now(), lease_seconds=self.lease_seconds
        )

    async def _reap(self) -> None:
        await self.store.reap_expired_leases(now=self.clock.now())

    async def _prune(self) -> None:
        await self.store.prune(
            now=self.clock.now(), keep_events=timedelta(days=2), keep_spends=timedelta(hours=1)
        )

    def start_ticks(self) -> None:
        self.ticks = Ticks(self.jobs(), on_tick=self.metrics.tick_took)
        self.ticks.start()
        ticks = self.ticks
        self.health.ticking = lambda: ticks.running

    def mark_ready(self) -> None:
        self.health.ready = True

    async def settle(self) -> None:
        """Let intake and any dispatch it woke finish (console, tests, shutdown)."""
        await self.intake.idle()
        await self.stopper.idle()
        await self.home.idle()
        await self.composer.idle()
        await self.pull_requests.idle()
        await self.dispatcher.idle()

    async def unfinished(self) -> int:
        """Requests not yet sent, plus runs in progress (a PAUSED run waits for a person)."""
        waiting = await self.store.requests.count_pending()
        statuses = await self.store.runs.tracking_statuses()
        running = [s for s in statuses if classify_status(s) is not StatusKind.WAITING_FOR_INPUT]
        return waiting + len(running)

    async def close(self) -> None:
        if self.ticks is not None:
            await self.ticks.stop()
        await self.settle()
        await self.accounts.aclose()
        await self.codegen.aclose()
        await self.http.aclose()
        await close_slack_web_client(self.slack_client)
        await self.store.dispose()


async def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    codegen_url: str | None = None,
    replica_id: str | None = None,
    metrics: Metrics | None = None,
    codegen_transport: httpx.AsyncBaseTransport | None = None,
    codegen_timeout: float | None = None,
    read_plan: ReadPlan | None = None,
    watchdog: Watchdog | None = None,
    retry_rand: Callable[[], float] = random.random,
    poll_rand: Callable[[], float] = random.random,
    lease_seconds: float = LEASE_SECONDS,
) -> Runtime:
    """Build the bot from `settings`. The keyword arguments are for tests and the benchmark:
    a fake clock, the emulator's URL or in-process transport, a shorter Codegen timeout, how
    the tracker spends its reads, the watchdog's limits, the randomness of the retry
    back-off and of the poll jitter, and how long leases last (replicas sharing one fake
    clock see time jump while another waits: their leases must outlast the jumps)."""
    clock = clock or SystemClock()
    metrics = metrics or Metrics()
    replica_id = replica_id or settings.bot_replica_id or default_replica_id()
    engine = create_engine(settings.database_url)
    await migrate(engine)
    store = Store(engine)
    await store.optimize()
    taken = await store.leases.take_back(replica_id)
    if taken:
        log.info("replica %s took back %d leases held before its restart", replica_id, taken)

    # One TLS context for every HTTP client, made with the first (bot.http_clients).
    tls = shared_tls()

    def codegen_client(token: str) -> CodegenClient:
        """A client for `token`: the organization's, or a person's own (bot.intake.accounts)."""
        return CodegenClient(
            base_url=codegen_url or settings.codegen_api_url,
            token=token,
            org_id=settings.effective_org_id,
            # Retries of reads would spend from the shared budget behind its back: the
            # tracker simply tries again on its next tick instead.
            read_retries=0,
            observer=metrics.codegen_call,
            clock=clock,
            transport=codegen_transport,
            timeout=DEFAULT_TIMEOUT_SECONDS if codegen_timeout is None else codegen_timeout,
            verify=tls,
        )

    codegen = codegen_client(settings.effective_codegen_token)
    bot_token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    slack_client = slack_web_client(token=bot_token, base_url=settings.slack_api_url)
    slack = SlackGateway(
        slack_client,
        clock=clock,
        budget=SlackBudget(store=store, clock=clock),
        on_error=metrics.slack_error,
        on_call=metrics.slack_call,
    )

    def http_client() -> httpx.AsyncClient:
        import httpx  # with the first download or response_url (bot.http_clients)

        return httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=5.0), follow_redirects=False, verify=tls()
        )

    http = OnDemandClient(http_client)
    sessions = AgentSessions(slack=slack, store=store, clock=clock)
    await store.agent_sessions.forget_refusals()
    cards = RunCards(slack=slack, clock=clock, sessions=sessions)
    budget = OrgBudget(
        store=store,
        clock=clock,
        org_id=settings.effective_org_id,
        creates_per_minute=settings.codegen_create_per_minute,
        logs_per_window=settings.codegen_logs_per_minute,
        metrics=metrics,
    )
    catalog = RepoCatalog(codegen=codegen, clock=clock, budget=budget)
    context = ThreadContext(slack=slack)
    replies = Replies(slack=slack, http=http)
    members = Members(codegen=codegen, slack=slack, clock=clock, budget=budget)
    key = settings.bot_secret_key
    accounts = Accounts(
        settings=settings,
        store=store,
        clock=clock,
        org_client=codegen,
        make_client=codegen_client,
        slack=slack,
        box=SecretBox.from_keys(key.get_secret_value() if key is not None else None),
        members=members,
    )
    preparer = Preparer(
        members=members,
        accounts=accounts,
        settings=settings,
        store=store,
        slack=slack,
        cards=cards,
        catalog=catalog,
        context=context,
        replies=replies,
        http=http,
        clock=clock,
    )
    # Counts the acks in flight: the dispatcher, intake and tracker make way for them.
    traffic = AckTraffic()
    dispatcher = Dispatcher(
        traffic=traffic,
        settings=settings,
        store=store,
        codegen=codegen,
        budget=budget,
        cards=cards,
        preparer=preparer,
        context=context,
        clock=clock,
        replica_id=replica_id,
        metrics=metrics,
        rand=retry_rand,
        lease_seconds=lease_seconds,
        accounts=accounts,
    )
    intake = Intake(
        traffic=traffic,
        settings=settings,
        store=store,
        preparer=preparer,
        replies=replies,
        clock=clock,
        replica_id=replica_id,
        metrics=metrics,
        wake_dispatcher=dispatcher.wake,
        lease_seconds=lease_seconds,
        catalog=catalog,
    )
    tracker = Tracker(
        traffic=traffic,
        store=store,
        reader=Reader(codegen=codegen, budget=budget, plan=read_plan or ListPages()),
        reporter=Reporter(
            settings=settings,
            store=store,
            cards=cards,
            clock=clock,
            metrics=metrics,
            watchdog=watchdog,
            rand=poll_rand,
        ),
        clock=clock,
        replica_id=replica_id,
        metrics=metrics,
        min_interval=settings.codegen_poll_min_seconds,
        lease_seconds=lease_seconds,
    )
    answers = Answers(store=store, settings=settings, clock=clock, catalog=catalog)
    stopper = Stopper(
        accounts=accounts,
        settings=settings,
        store=store,
        codegen=codegen,
        budget=budget,
        cards=cards,
        replies=replies,
        clock=clock,
    )
    await stopper.forget_refusals()
    pull_requests = PullRequestStates(
        accounts=accounts,
        settings=settings,
        store=store,
        codegen=codegen,
        budget=budget,
        cards=cards,
        replies=replies,
        clock=clock,
    )
    progress = None
    if settings.codegen_logs_per_minute > 0:
        progress = Progress(
            store=store,
            codegen=codegen,
            budget=budget,
            cards=cards,
            clock=clock,
            replica_id=replica_id,
            watchdog=watchdog,
            lease_seconds=lease_seconds,
            traffic=traffic,
        )
        await progress.forget_missing_endpoint()
    return Runtime(
        settings=settings,
        clock=clock,
        replica_id=replica_id,
        store=store,
        codegen=codegen,
        http=http,
        slack_client=slack_client,
        intake=intake,
        composer=Composer(
            settings=settings,
            store=store,
            slack=slack,
            catalog=catalog,
            intake=intake,
            answers=answers,
        ),
        dispatcher=dispatcher,
        tracker=tracker,
        answers=answers,
        stopper=stopper,
        pull_requests=pull_requests,
        accounts=accounts,
        members=members,
        metrics=metrics,
        sessions=sessions,
        home=AppHome(
            store=store,
            slack=slack,
            answers=answers,
            settings=settings,
            budget=budget,
            clock=clock,
            may_not_change_defaults=intake.may_not_change_defaults,
        ),
        lease_seconds=lease_seconds,
        traffic=traffic,
        progress=progress,
    )


class _SameTokenNotice(logging.Filter):
    """Bolt warns "`token` will be unused" whenever SLACK_BOT_TOKEN is in the environment and
    a client is given. Our client is built from that very variable, so the warning only
    alarms operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


def build_bolt_app(runtime: Runtime) -> AsyncApp:
    settings = runtime.settings
    bolt_logger = logging.getLogger("slack_bolt")
    if not any(isinstance(f, _SameTokenNotice) for f in bolt_logger.filters):
        bolt_logger.addFilter(_SameTokenNotice())
    secret = settings.slack_signing_secret
    app = AsyncApp(
        client=runtime.slack_client,
        signing_secret=secret.get_secret_value() if secret is not None else None,
        # Checked once, before Bolt sees a request: /slack/events verifies every signature
        # over the bytes as sent (bot.web, bot.slack.inbound) and is never served without a
        # secret; Socket Mode needs none. Bolt checking it again cost 4% of an ack.
        request_verification_enabled=False,
        # Listeners only parse and hand over to intake (which works in its own task), so they
        # finish well inside Slack's 3 s; running them before the response means a request
        # has reached intake by the time Slack sees the ack.
        process_before_response=True,
        logger=bolt_logger,
        # Named, or Bolt names it after its caller's file through inspect.stack(), which
        # reads every frame's module: about 40 ms of start-up.
        name="codegen-bot",
    )
    register(
        app,
        intake=runtime.intake,
        answers=runtime.answers,
        accounts=runtime.accounts,
        composer=runtime.composer,
        stop=runtime.stopper.take,
        home_opened=runtime.home.opened,
        set_pull_request_state=runtime.pull_requests.take,
    )
    return app


def build_web_app(runtime: Runtime, bolt: AsyncApp | None) -> Starlette:
    """/slack/events (when `bolt` is given), /healthz, /readyz and /metrics."""
    probe = None
    if runtime.settings.slack_bot_token is not None:
        # Probes ask once and answer within seconds: no retries, unlike the bot's own gateway.
        probe_client = AsyncWebClient(
            token=runtime.slack_client.token,
            base_url=runtime.slack_client.base_url,
            timeout=int(READY_TIMEOUT_SECONDS),
            retry_handlers=[],
        )
        probe = SlackGateway(
            probe_client,
            clock=runtime.clock,
            max_attempts=1,
            on_error=runtime.metrics.slack_error,
            on_call=runtime.metrics.slack_call,
        )
    secret = runtime.settings.slack_signing_secret
    return build_http_app(
        bolt=bolt,
        signing_secret=secret.get_secret_value() if secret is not None else None,
        health=runtime.health,
        store=runtime.store,
        metrics=runtime.metrics,
        slack_probe=probe,
        traffic=runtime.traffic,
    )
