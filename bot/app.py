"""Wiring: settings → store, clients, intake, dispatcher, tracker, Bolt app, HTTP routes."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

import httpx
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.answers import Answers
from bot.budget import OrgBudget
from bot.clock import Clock, SystemClock
from bot.codegen.client import CodegenClient
from bot.config import Settings
from bot.dispatcher import Dispatcher
from bot.intake import Intake, RepoCatalog
from bot.metrics import Metrics, render_latest
from bot.notify import RunCards, SlackGateway
from bot.scheduler import Ticks
from bot.store.db import create_engine, migrate
from bot.store.store import Store
from bot.tracker import Tracker
from handlers.slack import register

log = logging.getLogger(__name__)


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Runtime:
    """Everything one bot process runs, built once from the settings."""

    settings: Settings
    clock: Clock
    store: Store
    codegen: CodegenClient
    http: httpx.AsyncClient
    slack_client: AsyncWebClient
    slack: SlackGateway
    cards: RunCards
    budget: OrgBudget
    intake: Intake
    dispatcher: Dispatcher
    tracker: Tracker
    answers: Answers
    metrics: Metrics
    replica_id: str
    ticks: Ticks | None = None
    ready: bool = False

    async def close(self) -> None:
        if self.ticks is not None:
            self.ticks.stop()
        await self.intake.idle()
        await self.dispatcher.idle()
        await self.codegen.aclose()
        await self.http.aclose()
        await self.store.dispose()

    def start_ticks(self) -> None:
        self.ticks = Ticks(runtime=self)
        self.ticks.start()


async def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    codegen_url: str | None = None,
    replica_id: str | None = None,
    metrics: Metrics | None = None,
    codegen_transport: httpx.AsyncBaseTransport | None = None,
) -> Runtime:
    clock = clock or SystemClock()
    metrics = metrics or Metrics()
    replica_id = replica_id or default_replica_id()
    engine = create_engine(settings.database_url)
    await migrate(engine)
    store = Store(engine)

    codegen = CodegenClient(
        base_url=codegen_url or settings.codegen_api_url,
        token=settings.effective_codegen_token,
        org_id=settings.effective_org_id,
        # Retries of reads would spend from the shared budget behind its back: the tracker
        # simply tries again on its next tick instead.
        read_retries=0,
        observer=metrics.codegen_call,
        clock=clock,
        transport=codegen_transport,
    )
    bot_token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    slack_client = AsyncWebClient(token=bot_token, base_url=settings.slack_api_url)
    slack = SlackGateway(
        slack_client,
        clock=clock,
        on_error=metrics.slack_error,
    )
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), follow_redirects=False)
    cards = RunCards(slack=slack, clock=clock)
    budget = OrgBudget(
        store=store,
        clock=clock,
        org_id=settings.effective_org_id,
        creates_per_minute=settings.codegen_create_per_minute,
        metrics=metrics,
    )
    catalog = RepoCatalog(codegen=codegen, clock=clock, budget=budget)
    dispatcher_box: list[Dispatcher] = []
    intake = Intake(
        settings=settings,
        store=store,
        slack=slack,
        cards=cards,
        catalog=catalog,
        http=http,
        clock=clock,
        replica_id=replica_id,
        metrics=metrics,
        wake_dispatcher=lambda: dispatcher_box[0].wake(),
    )
    dispatcher = Dispatcher(
        settings=settings,
        store=store,
        codegen=codegen,
        budget=budget,
        cards=cards,
        intake=intake,
        clock=clock,
        replica_id=replica_id,
        metrics=metrics,
    )
    dispatcher_box.append(dispatcher)
    tracker = Tracker(
        settings=settings,
        store=store,
        codegen=codegen,
        budget=budget,
        cards=cards,
        slack=slack,
        clock=clock,
        replica_id=replica_id,
        metrics=metrics,
    )
    answers = Answers(store=store, settings=settings, clock=clock, catalog=catalog)
    return Runtime(
        settings=settings,
        clock=clock,
        store=store,
        codegen=codegen,
        http=http,
        slack_client=slack_client,
        slack=slack,
        cards=cards,
        budget=budget,
        intake=intake,
        dispatcher=dispatcher,
        tracker=tracker,
        answers=answers,
        metrics=metrics,
        replica_id=replica_id,
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
        # Socket Mode needs no signature; HTTP mode always verifies.
        request_verification_enabled=secret is not None,
        # Listeners only parse and hand over to intake (which works in its own task), so they
        # finish well inside Slack's 3 s; running them before the response means a request
        # has reached intake by the time Slack sees the ack.
        process_before_response=True,
        logger=bolt_logger,
    )
    register(app, intake=runtime.intake, answers=runtime.answers)
    return app


def build_http_app(runtime: Runtime, bolt: AsyncApp | None) -> Starlette:
    """/slack/events for Slack (HTTP mode), and /healthz, /readyz, /metrics for operators."""
    routes: list[Route] = []
    if bolt is not None:
        handler = AsyncSlackRequestHandler(bolt)

        async def slack_events(request: Request) -> Response:
            return await handler.handle(request)

        routes.append(Route("/slack/events", slack_events, methods=["POST"]))

    # Probes ask once and answer within seconds: no retries, unlike the bot's own client.
    probe = AsyncWebClient(
        token=runtime.slack_client.token,
        base_url=runtime.slack_client.base_url,
        timeout=int(READY_TIMEOUT_SECONDS),
        retry_handlers=[],
    )

    async def healthz(_request: Request) -> Response:
        """Alive: the process answers and its ticks are scheduled (503 while starting)."""
        if not runtime.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        ticks = runtime.ticks
        if ticks is not None and not ticks.scheduler.running:
            return JSONResponse({"status": "ticks stopped"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        """Ready: the database answers and Slack accepts the bot token (no retries, bounded)."""
        checks: dict[str, str] = {}
        if not runtime.ready:
            checks["startup"] = "error: still starting"
        checks["database"] = await _check_database(runtime)
        if runtime.settings.slack_bot_token is not None:
            checks["slack"] = await _check_slack(runtime, probe)
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics(_request: Request) -> Response:
        body, content_type = render_latest(runtime.metrics.registry)
        return Response(body, media_type=content_type)

    routes += [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes)


READY_TIMEOUT_SECONDS = 5.0


async def _check_database(runtime: Runtime) -> str:
    try:
        await asyncio.wait_for(runtime.store.ping(), timeout=READY_TIMEOUT_SECONDS)
    except Exception as error:
        log.warning("readiness: database unreachable: %s", error)
        return f"error: {type(error).__name__}"
    return "ok"


async def _check_slack(runtime: Runtime, probe: AsyncWebClient) -> str:
    """One auth.test, straight to Slack: a probe must answer quickly, not wait out retries."""
    try:
        await asyncio.wait_for(probe.auth_test(), timeout=READY_TIMEOUT_SECONDS)
    except SlackApiError as error:
        code = str(error.response.get("error") or error.response.status_code)
    except Exception as error:
        code = type(error).__name__
    else:
        return "ok"
    log.warning("readiness: slack auth.test failed: %s", code)
    runtime.metrics.slack_error("auth.test", code)
    return f"error: {code}"
