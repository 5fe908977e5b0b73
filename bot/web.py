"""The bot's HTTP routes: /slack/events for Slack (HTTP mode), and /healthz, /readyz and
/metrics for operators.

/healthz says the process is alive (its ticks run); /readyz asks the database and Slack once
each, bounded, with no retries: a probe must answer within seconds, not wait out back-offs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncBoltRequest
from slack_bolt.request.async_internals import build_async_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.errors import SlackError
from bot.metrics import Metrics, render_latest
from bot.slack.gateway import SlackGateway
from bot.slack.inbound import Refused, read_request
from bot.store.store import Store
from bot.traffic import AckTraffic

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 5.0


class SocketState(Protocol):
    """Socket Mode's connection as the probes see it (bot.socket_mode.SocketLink)."""

    async def connected(self) -> bool: ...

    def unhealthy(self) -> bool: ...


@dataclass
class Health:
    """What the probes know of the process: started, whether its ticks still run, and in
    Socket Mode whether the socket is up."""

    ready: bool = False
    ticking: Callable[[], bool] = field(default=lambda: True)
    socket: SocketState | None = None


def build_http_app(
    *,
    bolt: AsyncApp | None,
    health: Health,
    store: Store,
    metrics: Metrics,
    slack_probe: SlackGateway | None,
    signing_secret: str | None = None,
    traffic: AckTraffic | None = None,
) -> Starlette:
    """The routes; /slack/events only with a Bolt app and `signing_secret` (HTTP mode), every
    request checked against it. `slack_probe`: a gateway that tries once (None: no bot token,
    Slack is not checked)."""
    routes: list[Route] = []
    # Never without a secret: this route is the only check of a request's signature (Bolt's
    # is off), and HTTP mode does not start without one (bot.config).
    if bolt is not None and signing_secret is not None:
        events = _slack_events(bolt, signing_secret, traffic or AckTraffic())
        routes.append(Route("/slack/events", events, methods=["POST"]))

    async def healthz(_request: Request) -> Response:
        """Alive: the process answers and its ticks are scheduled (503 while starting)."""
        if not health.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        if not health.ticking():
            return JSONResponse({"status": "ticks stopped"}, status_code=503)
        if health.socket is not None and health.socket.unhealthy():
            return JSONResponse({"status": "socket down"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> Response:
        """Ready: the database answers, Slack accepts the bot token (no retries, bounded)
        and, in Socket Mode, the socket is connected."""
        checks: dict[str, str] = {}
        if not health.ready:
            checks["startup"] = "error: still starting"
        checks["database"] = await _check_database(store)
        if health.socket is not None:
            up = await health.socket.connected()
            checks["socket"] = "ok" if up else "error: Socket Mode is not connected"
        if slack_probe is not None:
            checks["slack"] = await _check_slack(slack_probe)
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def metrics_route(_request: Request) -> Response:
        body, content_type = render_latest(metrics.registry)
        return Response(body, media_type=content_type)

    routes += [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_route),
    ]
    return Starlette(routes=routes)


def _slack_events(bolt: AsyncApp, signing_secret: str, traffic: AckTraffic) -> Callable[..., Any]:
    """/slack/events: refuse what is not a readable, signed Slack request with a 4xx and one
    log line (bot.slack.inbound), hand the rest to Bolt already parsed. Each request counts
    as an ack in flight until its response is ready (bot.traffic)."""

    async def slack_events(request: Request) -> Response:
        with traffic.acking():
            return await handle(request)

    async def handle(request: Request) -> Response:
        body = await request.body()
        verdict = read_request(
            body, headers=request.headers, signing_secret=signing_secret, now=time.time()
        )
        if isinstance(verdict, Refused):
            log.warning(
                "refused a request to /slack/events (%d): %s", verdict.status, verdict.reason
            )
            return PlainTextResponse(verdict.reason, status_code=verdict.status)
        # Built empty and filled in: Bolt would parse the body again, its own way.
        bolt_request = AsyncBoltRequest(
            body="",
            query=request.query_params,  # type: ignore[arg-type]
            headers=request.headers,  # type: ignore[arg-type]
        )
        bolt_request.raw_body = verdict.raw  # what Bolt's signature check reads
        bolt_request.body = verdict.payload
        bolt_request.context = build_async_context(AsyncBoltContext({}), verdict.payload)
        return to_starlette_response(await bolt.async_dispatch(bolt_request))

    return slack_events


async def _check_database(store: Store) -> str:
    try:
        await asyncio.wait_for(store.ping(), timeout=READY_TIMEOUT_SECONDS)
    except Exception as error:
        log.warning("readiness: database unreachable: %s", error)
        return f"error: {type(error).__name__}"
    return "ok"


async def _check_slack(probe: SlackGateway) -> str:
    """One auth.test: the gateway counts a failure in the metrics and logs it."""
    try:
        await asyncio.wait_for(probe.call("auth.test", {}), timeout=READY_TIMEOUT_SECONDS)
    except SlackError as error:
        code = error.error
    except Exception as error:
        code = type(error).__name__
    else:
        return "ok"
    log.warning("readiness: slack auth.test failed: %s", code)
    return f"error: {code}"
