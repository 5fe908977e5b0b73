"""A local Codegen API for tests, demos and `codegen-bot emulator --port N`.

It behaves like the documented API (paths, bodies, FastAPI-style errors, rate limits), not like
our client happens to expect, so the bot can be exercised end to end without an account.

    state = EmulatorState(clock=FakeClock())
    async with running_emulator(state) as base_url:      # uvicorn on 127.0.0.1, free port
        ...CodegenClient(base_url=base_url, token=state.token, org_id=state.org_id)...

Endpoints: POST /v1/organizations/{org_id}/agent/run, GET …/agent/run/{id}, GET …/agent/runs,
POST …/agent/run/resume, GET /v1/users/me, GET …/users, GET …/repos, and a human page at
GET /runs/{id} (the run's `web_url`).

Behaviour
- Auth: `Authorization: Bearer <state.token>`, else 403 PermissionsErrorResponse; a path org id
  other than `state.org_id` is 403 too. As in FastAPI, request validation (path, query, body)
  happens first: 422 `{"detail": [{"loc": ["body", …], "msg", "type", "input"}]}`.
- Rate limits per org, strict sliding windows on `state.clock`, checked before anything else:
  creates + resumes `create_per_minute`/60 s, every API GET `reads_per_30s`/30 s. Over the
  limit → 429 APIRateLimitErrorResponse with `Retry-After` (whole seconds until the oldest entry
  leaves the window). Refused requests do not enter the window. `state.rate_limited_count`
  counts every 429 answered (scripted ones included).
- Runs (ids from 1000) go PENDING (`pending_seconds`) → ACTIVE (`active_seconds`) → their ending
  (COMPLETE unless scripted), computed from the clock on each read. COMPLETE carries a summary,
  a result and one pull request; FAILED a summary saying why; PAUSED a question. Metadata is
  echoed as sent; source_type is "API"; runs belong to the token's user (`state.me`).
- Resume: only a PAUSED run (else 422 on `agent_run_id`; unknown id → 404). The run goes back to
  ACTIVE and ends (COMPLETE unless scripted) after `active_seconds`; the prompt is recorded.
- No repositories (`state.repos = []`) → create answers 404 NoReposFoundInOrg; a `repo_id` not in
  `state.repos` → 422 on `repo_id`.

Scripting (`state.script`); each entry is used once, in order (`times=n` queues n of them),
by the next call that passes the rate limit, validation and auth:
- `fail_next_create(status, *, message=None, retry_after=None, detail=None, after_creating=False)`
  the next create answers `status` (402/403/404/422/429/5xx/…). `retry_after` (seconds or an
  HTTP date string) becomes the Retry-After header. `after_creating=True` creates the run first
  (a 5xx that happened after the work was done: the ambiguous case).
- `fail_next_resume(status, …)`, `fail_next_read(status, …)` the same for resumes / any GET.
- `delay_next_create(seconds)`, `delay_next_read(seconds)` answer late (wall time, so the
  client's timeout can fire; the run is created only after the delay).
- `create_then_hang(seconds)` create the run at once, then hold the answer: a client timeout
  here leaves a run the client never heard about.
- `next_run_ends(status)` the next created run ends with `status` (any string, e.g. "FAILED",
  "PAUSED", "MAX_ITERATIONS_REACHED"); `next_resume_ends(status)` likewise for the next resume.
- `state.set_status(run_id, status)` pins a run's status now (until it is resumed).

Records (`state.received`, a list of ReceivedCall: kind, method, path, query, json, at, status,
run_id; never any header): `state.calls(kind)`, `state.created_bodies()`,
`state.resume_bodies()`. Kinds match the client's endpoint names: create_run, resume_run,
get_run, list_runs, current_user, list_users, list_repos (and web_page).

Delays are wall time and end early when the server stops; everything else uses `state.clock`.

Serving: `running_emulator(state, port=0)` (async context manager, yields the base URL),
`running_on_loopback(app, port=0)` for any ASGI app, `serve(port=N)` blocking for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import math
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bot.clock import Clock, SystemClock
from bot.codegen.models import (
    AgentRunLimitReachedErrorResponse,
    AgentRunNotFoundErrorResponse,
    ApiAgentRunSourceType,
    APIRateLimitErrorResponse,
    CreateAgentRunInput,
    NoReposFoundInOrgErrorResponse,
    PermissionsErrorResponse,
    RepoResponse,
    ResumeAgentRunInput,
    UserResponse,
)
from bot.config import EMULATOR_ORG_ID, EMULATOR_TOKEN
from bot.serving import listening_socket, serve_http

FIRST_RUN_ID: Final = 1000
CREATE_WINDOW_SECONDS: Final = 60.0
READ_WINDOW_SECONDS: Final = 30.0

# The kinds of calls, named like the client's endpoints.
CREATE_RUN: Final = "create_run"
RESUME_RUN: Final = "resume_run"
GET_RUN: Final = "get_run"
LIST_RUNS: Final = "list_runs"
CURRENT_USER: Final = "current_user"
LIST_USERS: Final = "list_users"
LIST_REPOS: Final = "list_repos"
WEB_PAGE: Final = "web_page"


# -- records -----------------------------------------------------------------------------------


@dataclass
class ReceivedCall:
    """One request as the emulator saw it. Headers (the token!) are never kept."""

    kind: str
    method: str
    path: str
    query: dict[str, str]
    json: Any
    at: datetime
    status: int | None = None  # filled in when answered
    run_id: int | None = None  # the run this call created or resumed


@dataclass
class EmulatedRun:
    id: int
    organization_id: int
    user_id: int
    created_at: datetime
    prompt: str
    images: list[str]
    metadata: dict[str, Any] | None
    repo_id: int | None
    model: str | None
    agent_type: str | None
    web_url: str
    source_type: str = ApiAgentRunSourceType.API.value
    ending: str = "COMPLETE"
    # The current leg: from creation (PENDING first) or from the last resume (ACTIVE at once).
    leg_started_at: datetime | None = None
    leg_has_pending: bool = True
    pinned_status: str | None = None
    resume_prompts: list[str] = field(default_factory=list)

    def status_at(self, now: datetime, *, pending_seconds: float, active_seconds: float) -> str:
        if self.pinned_status is not None:
            return self.pinned_status
        started = self.leg_started_at or self.created_at
        elapsed = (now - started).total_seconds()
        pending = pending_seconds if self.leg_has_pending else 0.0
        if elapsed < pending:
            return "PENDING"
        if elapsed < pending + active_seconds:
            return "ACTIVE"
        return self.ending


# -- scripting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptedFailure:
    status: int
    message: str | None = None
    retry_after: float | str | None = None
    detail: list[dict[str, Any]] | None = None
    after_creating: bool = False


class EmulatorScript:
    """One-shot instructions for the next calls; see the module docstring."""

    def __init__(self) -> None:
        self.create_failures: deque[ScriptedFailure] = deque()
        self.resume_failures: deque[ScriptedFailure] = deque()
        self.read_failures: deque[ScriptedFailure] = deque()
        self.create_delays: deque[float] = deque()
        self.read_delays: deque[float] = deque()
        self.create_hangs: deque[float] = deque()
        self.run_endings: deque[str] = deque()
        self.resume_endings: deque[str] = deque()

    def fail_next_create(
        self,
        status: int,
        *,
        message: str | None = None,
        retry_after: float | str | None = None,
        detail: list[dict[str, Any]] | None = None,
        after_creating: bool = False,
        times: int = 1,
    ) -> None:
        failure = ScriptedFailure(status, message, retry_after, detail, after_creating)
        self.create_failures.extend([failure] * times)

    def fail_next_resume(
        self,
        status: int,
        *,
        message: str | None = None,
        retry_after: float | str | None = None,
        detail: list[dict[str, Any]] | None = None,
        times: int = 1,
    ) -> None:
        self.resume_failures.extend([ScriptedFailure(status, message, retry_after, detail)] * times)

    def fail_next_read(
        self,
        status: int,
        *,
        message: str | None = None,
        retry_after: float | str | None = None,
        times: int = 1,
    ) -> None:
        self.read_failures.extend([ScriptedFailure(status, message, retry_after)] * times)

    def delay_next_create(self, seconds: float) -> None:
        self.create_delays.append(seconds)

    def delay_next_read(self, seconds: float) -> None:
        self.read_delays.append(seconds)

    def create_then_hang(self, seconds: float) -> None:
        self.create_hangs.append(seconds)

    def next_run_ends(self, status: str) -> None:
        self.run_endings.append(status)

    def next_resume_ends(self, status: str) -> None:
        self.resume_endings.append(status)


# -- rate limits -------------------------------------------------------------------------------


class SlidingWindowLimiter:
    """At most `limit` entries per key in any window of `window_seconds` (strict, no buckets)."""

    def __init__(self, *, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = timedelta(seconds=window_seconds)
        self._entries: dict[str, deque[datetime]] = {}

    def try_acquire(self, key: str, *, now: datetime) -> float | None:
        """Record an entry and return None, or return the seconds until one would fit."""
        entries = self._entries.setdefault(key, deque())
        # An entry leaves the window exactly `window` after it was made.
        while entries and entries[0] + self.window <= now:
            entries.popleft()
        if len(entries) < self.limit:
            entries.append(now)
            return None
        return (entries[0] + self.window - now).total_seconds()

    def clear(self) -> None:
        self._entries.clear()


# -- state -------------------------------------------------------------------------------------


def default_repos(org_id: int) -> list[RepoResponse]:
    def repo(repo_id: int, name: str, description: str, language: str) -> RepoResponse:
        return RepoResponse(
            id=repo_id,
            name=name,
            full_name=f"acme/{name}",
            description=description,
            github_id=str(500000 + repo_id),
            organization_id=org_id,
            visibility="PRIVATE",
            archived=False,
            setup_status="COMPLETED",
            language=language,
        )

    return [
        repo(101, "web", "Customer-facing web app", "TypeScript"),
        repo(102, "api", "Backend API", "Python"),
        repo(103, "docs", "Documentation site", "Markdown"),
    ]


class EmulatorState:
    """Everything the emulator knows; tests read and script it directly."""

    def __init__(
        self,
        *,
        token: str = EMULATOR_TOKEN,
        org_id: int = EMULATOR_ORG_ID,
        clock: Clock | None = None,
        pending_seconds: float = 1.0,
        active_seconds: float = 3.0,
        create_per_minute: int = 10,
        reads_per_30s: int = 60,
    ) -> None:
        self.token = token
        self.org_id = org_id
        self.clock: Clock = clock or SystemClock()
        self.pending_seconds = pending_seconds
        self.active_seconds = active_seconds
        self.create_limiter = SlidingWindowLimiter(
            limit=create_per_minute, window_seconds=CREATE_WINDOW_SECONDS
        )
        self.read_limiter = SlidingWindowLimiter(
            limit=reads_per_30s, window_seconds=READ_WINDOW_SECONDS
        )
        self.script = EmulatorScript()
        self.me = UserResponse(
            id=7,
            email="dev@example.com",
            github_user_id="9000007",
            github_username="emulator-dev",
            avatar_url=None,
            full_name="Emulator Developer",
            role="ADMIN",
            is_admin=True,
        )
        self.users: list[UserResponse] = [
            self.me,
            UserResponse(
                id=8,
                email="teammate@example.com",
                github_user_id="9000008",
                github_username="emulator-teammate",
                full_name="Emulator Teammate",
                role="MEMBER",
                is_admin=False,
            ),
        ]
        self.repos: list[RepoResponse] = default_repos(org_id)
        self.runs: dict[int, EmulatedRun] = {}
        self.received: list[ReceivedCall] = []
        self.rate_limited_count = 0
        self._next_run_id = FIRST_RUN_ID
        self._holds: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        return f"EmulatorState(org_id={self.org_id!r}, runs={len(self.runs)})"

    # -- queries for tests -----------------------------------------------------------------

    def calls(self, kind: str | None = None) -> list[ReceivedCall]:
        return [c for c in self.received if kind is None or c.kind == kind]

    def created_bodies(self) -> list[Any]:
        """The JSON bodies of creates that made a run, in order."""
        return [c.json for c in self.calls(CREATE_RUN) if c.run_id is not None]

    def resume_bodies(self) -> list[Any]:
        """The JSON bodies of resumes that resumed a run, in order."""
        return [c.json for c in self.calls(RESUME_RUN) if c.run_id is not None]

    def run(self, run_id: int) -> EmulatedRun:
        return self.runs[run_id]

    def status_of(self, run_id: int) -> str:
        return self._status(self.runs[run_id])

    # -- control ---------------------------------------------------------------------------

    def set_status(self, run_id: int, status: str) -> None:
        """Pin a run's status from now on (a resume unpins it)."""
        self.runs[run_id].pinned_status = status

    def clear_rate_limits(self) -> None:
        self.create_limiter.clear()
        self.read_limiter.clear()

    def release_holds(self) -> None:
        """End every delayed answer now (used when the server stops)."""
        for hold in self._holds:
            if not hold.done():
                hold.set_result(None)

    # -- internals -------------------------------------------------------------------------

    def _status(self, run: EmulatedRun) -> str:
        return run.status_at(
            self.clock.now(),
            pending_seconds=self.pending_seconds,
            active_seconds=self.active_seconds,
        )

    def _leg_end(self, run: EmulatedRun) -> datetime:
        started = run.leg_started_at or run.created_at
        pending = self.pending_seconds if run.leg_has_pending else 0.0
        return started + timedelta(seconds=pending + self.active_seconds)

    def _create_run(self, body: CreateAgentRunInput, *, base_url: str) -> EmulatedRun:
        run_id = self._next_run_id
        self._next_run_id += 1
        now = self.clock.now()
        run = EmulatedRun(
            id=run_id,
            organization_id=self.org_id,
            user_id=self.me.id,
            created_at=now,
            prompt=body.prompt,
            images=list(body.images or []),
            metadata=body.metadata,
            repo_id=body.repo_id,
            model=body.model,
            agent_type=body.agent_type,
            web_url=f"{base_url.rstrip('/')}/runs/{run_id}",
            ending=self.script.run_endings.popleft() if self.script.run_endings else "COMPLETE",
            leg_started_at=now,
        )
        self.runs[run_id] = run
        return run

    def _resume_run(self, run: EmulatedRun, body: ResumeAgentRunInput) -> None:
        run.resume_prompts.append(body.prompt)
        run.images.extend(body.images or [])
        run.pinned_status = None
        run.leg_started_at = self.clock.now()
        run.leg_has_pending = False
        run.ending = (
            self.script.resume_endings.popleft() if self.script.resume_endings else "COMPLETE"
        )

    def _run_json(self, run: EmulatedRun) -> dict[str, Any]:
        status = self._status(run)
        summary: str | None = None
        result: str | None = None
        pull_requests: list[dict[str, Any]] = []
        short_prompt = run.prompt if len(run.prompt) <= 80 else run.prompt[:77] + "..."
        if status == "COMPLETE":
            repo = self._repo(run.repo_id) or (self.repos[0] if self.repos else None)
            repo_name = repo.full_name if repo else "acme/web"
            ended = self._leg_end(run) if run.pinned_status is None else self.clock.now()
            summary = f"Done: {short_prompt}"
            result = f"I made the requested change and opened a pull request in {repo_name}."
            pull_requests = [
                {
                    "id": 70000 + run.id,
                    "title": f"Codegen: {short_prompt}",
                    "url": f"https://github.com/{repo_name}/pull/{run.id}",
                    "created_at": ended.isoformat(),
                    "head_branch_name": f"codegen-bot/run-{run.id}",
                }
            ]
        elif status == "FAILED":
            summary = (
                "The agent could not finish: the test suite kept failing after its changes, "
                "so it stopped without opening a pull request."
            )
        elif status == "PAUSED":
            summary = "The agent needs more information to continue."
            result = "Which branch should the change be based on?"
        elif status not in ("PENDING", "ACTIVE", "RUNNING", "EVALUATION"):
            summary = f"The run ended with status {status}."
        return {
            "id": run.id,
            "organization_id": run.organization_id,
            "status": status,
            "created_at": run.created_at.isoformat(),
            "web_url": run.web_url,
            "result": result,
            "summary": summary,
            "source_type": run.source_type,
            "github_pull_requests": pull_requests,
            "metadata": run.metadata,
        }

    def _repo(self, repo_id: int | None) -> RepoResponse | None:
        return next((r for r in self.repos if r.id == repo_id), None)

    async def _hold(self, seconds: float) -> None:
        """Wait `seconds` of wall time, or less if release_holds() is called."""
        hold: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._holds.add(hold)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hold, timeout=seconds)
        finally:
            self._holds.discard(hold)


# -- request validation, FastAPI style ---------------------------------------------------------


class _PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    skip: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=100)


class _RunsQuery(_PageQuery):
    user_id: int | None = None
    source_type: ApiAgentRunSourceType | None = None


_INT = TypeAdapter(int)
ModelT = TypeVar("ModelT", bound=BaseModel)


class _Invalid(Exception):
    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("validation failed")
        self.detail = detail


def _detail(error: ValidationError, *, where: str) -> list[dict[str, Any]]:
    # error.json() makes ctx values (exceptions, Decimals) JSON-safe, as FastAPI does.
    items: list[dict[str, Any]] = json.loads(error.json(include_url=False))
    for item in items:
        item["loc"] = [where, *item["loc"]]
    return items


def _path_int(request: Request, name: str) -> int:
    try:
        return _INT.validate_python(request.path_params[name])
    except ValidationError as error:
        detail = _detail(error, where="path")
        for item in detail:
            item["loc"] = ["path", name]
        raise _Invalid(detail) from None


def _query(request: Request, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise _Invalid(_detail(error, where="query")) from None


def _body(raw: bytes, model: type[ModelT]) -> ModelT:
    if not raw.strip():
        raise _Invalid(
            [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
        )
    try:
        data = json.loads(raw)
    except ValueError as error:
        position = getattr(error, "pos", 0)
        raise _Invalid(
            [
                {
                    "type": "json_invalid",
                    "loc": ["body", position],
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": str(error)},
                }
            ]
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _Invalid(_detail(error, where="body")) from None


# -- responses ---------------------------------------------------------------------------------


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _forbidden() -> JSONResponse:
    return _json(403, PermissionsErrorResponse().model_dump())


def _run_not_found() -> JSONResponse:
    return _json(404, AgentRunNotFoundErrorResponse().model_dump())


def _scripted_response(kind: str, failure: ScriptedFailure) -> Response:
    status = failure.status
    headers: dict[str, str] = {}
    if failure.retry_after is not None:
        value = failure.retry_after
        headers["Retry-After"] = value if isinstance(value, str) else str(math.ceil(value))
    if status == 422:
        detail = failure.detail or [
            {
                "loc": ["body"],
                "msg": failure.message or "Scripted validation error",
                "type": "value_error",
            }
        ]
        return _json(422, {"detail": detail}, headers)
    if status >= 500:
        return PlainTextResponse(
            failure.message or "Internal Server Error", status_code=status, headers=headers
        )
    defaults: dict[int, BaseModel] = {
        402: AgentRunLimitReachedErrorResponse(),
        403: PermissionsErrorResponse(),
        404: NoReposFoundInOrgErrorResponse()
        if kind == CREATE_RUN
        else AgentRunNotFoundErrorResponse(),
        429: APIRateLimitErrorResponse(),
    }
    body: dict[str, Any] = (
        defaults[status].model_dump() if status in defaults else {"status_code": status}
    )
    if failure.message is not None or "message" not in body:
        body["message"] = failure.message or f"Scripted failure {status}"
    return _json(status, body, headers)


# -- the app -----------------------------------------------------------------------------------

Handler = Callable[[Request, ReceivedCall], Awaitable[Response]]


def create_emulator_app(state: EmulatorState) -> Starlette:
    """The Starlette app serving `state`."""

    def authorized(request: Request, org_id: int | None = None) -> bool:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        token_ok = scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), state.token.encode()
        )
        return token_ok and (org_id is None or org_id == state.org_id)

    def endpoint(kind: str, *, limiter: SlidingWindowLimiter | None) -> Callable[[Handler], Any]:
        """Record the call, apply the org's rate limit, then run the handler."""

        def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def run(request: Request) -> Response:
                raw = await request.body()
                try:
                    parsed: Any = json.loads(raw) if raw.strip() else None
                except ValueError:
                    parsed = raw.decode(errors="replace")
                call = ReceivedCall(
                    kind=kind,
                    method=request.method,
                    path=request.url.path,
                    query=dict(request.query_params),
                    json=parsed,
                    at=state.clock.now(),
                )
                state.received.append(call)
                response = await answer(request, call, raw, limiter, handler)
                call.status = response.status_code
                if response.status_code == 429:
                    state.rate_limited_count += 1
                return response

            return run

        return wrap

    async def answer(
        request: Request,
        call: ReceivedCall,
        raw: bytes,
        limiter: SlidingWindowLimiter | None,
        handler: Handler,
    ) -> Response:
        if limiter is not None:
            org_key = request.path_params.get("org_id", str(state.org_id))
            wait = limiter.try_acquire(str(org_key), now=state.clock.now())
            if wait is not None:
                return _json(
                    429,
                    APIRateLimitErrorResponse().model_dump(),
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
        request.state.raw_body = raw
        try:
            return await handler(request, call)
        except _Invalid as invalid:
            return _json(422, {"detail": invalid.detail})

    async def scripted_read(call: ReceivedCall) -> Response | None:
        if state.script.read_delays:
            await state._hold(state.script.read_delays.popleft())
        if state.script.read_failures:
            return _scripted_response(call.kind, state.script.read_failures.popleft())
        return None

    # -- handlers --------------------------------------------------------------------------

    @endpoint(CREATE_RUN, limiter=state.create_limiter)
    async def create_run(request: Request, call: ReceivedCall) -> Response:
        org_id = _path_int(request, "org_id")
        body = _body(request.state.raw_body, CreateAgentRunInput)
        if not authorized(request, org_id):
            return _forbidden()
        script = state.script
        if script.create_failures:
            failure = script.create_failures.popleft()
            if failure.after_creating:
                call.run_id = state._create_run(body, base_url=str(request.base_url)).id
            return _scripted_response(CREATE_RUN, failure)
        if not state.repos:
            return _json(404, NoReposFoundInOrgErrorResponse().model_dump())
        if body.repo_id is not None and state._repo(body.repo_id) is None:
            raise _Invalid(
                [
                    {
                        "type": "value_error",
                        "loc": ["body", "repo_id"],
                        "msg": f"Repository {body.repo_id} not found in organization {org_id}",
                        "input": body.repo_id,
                    }
                ]
            )
        if script.create_delays:
            await state._hold(script.create_delays.popleft())
        run = state._create_run(body, base_url=str(request.base_url))
        call.run_id = run.id
        if script.create_hangs:
            await state._hold(script.create_hangs.popleft())
        return _json(200, state._run_json(run))

    @endpoint(RESUME_RUN, limiter=state.create_limiter)
    async def resume_run(request: Request, call: ReceivedCall) -> Response:
        org_id = _path_int(request, "org_id")
        body = _body(request.state.raw_body, ResumeAgentRunInput)
        if not authorized(request, org_id):
            return _forbidden()
        if state.script.resume_failures:
            return _scripted_response(RESUME_RUN, state.script.resume_failures.popleft())
        run = state.runs.get(body.agent_run_id)
        if run is None or run.organization_id != org_id:
            return _run_not_found()
        status = state._status(run)
        if status != "PAUSED":
            raise _Invalid(
                [
                    {
                        "type": "value_error",
                        "loc": ["body", "agent_run_id"],
                        "msg": f"Agent run {run.id} is not paused (status {status})",
                        "input": run.id,
                    }
                ]
            )
        state._resume_run(run, body)
        call.run_id = run.id
        return _json(200, state._run_json(run))

    @endpoint(GET_RUN, limiter=state.read_limiter)
    async def get_run(request: Request, call: ReceivedCall) -> Response:
        run_id = _path_int(request, "agent_run_id")
        org_id = _path_int(request, "org_id")
        if not authorized(request, org_id):
            return _forbidden()
        if (scripted := await scripted_read(call)) is not None:
            return scripted
        run = state.runs.get(run_id)
        if run is None or run.organization_id != org_id:
            return _run_not_found()
        return _json(200, state._run_json(run))

    @endpoint(LIST_RUNS, limiter=state.read_limiter)
    async def list_runs(request: Request, call: ReceivedCall) -> Response:
        org_id = _path_int(request, "org_id")
        query = _query(request, _RunsQuery)
        if not authorized(request, org_id):
            return _forbidden()
        if (scripted := await scripted_read(call)) is not None:
            return scripted
        runs = [
            r
            for r in state.runs.values()
            if r.organization_id == org_id
            and (query.user_id is None or r.user_id == query.user_id)
            and (query.source_type is None or r.source_type == query.source_type.value)
        ]
        runs.sort(key=lambda r: (r.created_at, r.id), reverse=True)  # newest first
        return _json(200, _page([state._run_json(r) for r in runs], query))

    @endpoint(CURRENT_USER, limiter=state.read_limiter)
    async def current_user(request: Request, call: ReceivedCall) -> Response:
        if not authorized(request):
            return _forbidden()
        if (scripted := await scripted_read(call)) is not None:
            return scripted
        return _json(200, state.me.model_dump(mode="json"))

    @endpoint(LIST_USERS, limiter=state.read_limiter)
    async def list_users(request: Request, call: ReceivedCall) -> Response:
        org_id = _path_int(request, "org_id")
        query = _query(request, _PageQuery)
        if not authorized(request, org_id):
            return _forbidden()
        if (scripted := await scripted_read(call)) is not None:
            return scripted
        return _json(200, _page([u.model_dump(mode="json") for u in state.users], query))

    @endpoint(LIST_REPOS, limiter=state.read_limiter)
    async def list_repos(request: Request, call: ReceivedCall) -> Response:
        org_id = _path_int(request, "org_id")
        query = _query(request, _PageQuery)
        if not authorized(request, org_id):
            return _forbidden()
        if (scripted := await scripted_read(call)) is not None:
            return scripted
        return _json(200, _page([r.model_dump(mode="json") for r in state.repos], query))

    @endpoint(WEB_PAGE, limiter=None)
    async def web_page(request: Request, call: ReceivedCall) -> Response:
        """What a person sees following `web_url` (no API token in a browser)."""
        try:
            run = state.runs[int(request.path_params["run_id"])]
        except (KeyError, ValueError):
            return HTMLResponse("<h1>Run not found</h1>", status_code=404)
        data = state._run_json(run)
        rows = "".join(
            f"<tr><th>{key}</th><td>{html.escape(str(data[key] or '—'))}</td></tr>"
            for key in ("id", "status", "created_at", "summary", "result")
        )
        prs = "".join(
            f'<li><a href="{html.escape(pr["url"])}">{html.escape(pr["title"])}</a></li>'
            for pr in data["github_pull_requests"]
        )
        page = (
            f"<!doctype html><title>Emulated run {run.id}</title>"
            f"<h1>Emulated Codegen run {run.id}</h1><p>{html.escape(run.prompt)}</p>"
            f"<table>{rows}</table><ul>{prs}</ul>"
        )
        return HTMLResponse(page)

    async def http_error(request: Request, exc: Exception) -> Response:
        # FastAPI's shape for unknown paths and methods.
        assert isinstance(exc, HTTPException)
        return _json(exc.status_code, {"detail": exc.detail}, dict(exc.headers or {}))

    org = "/v1/organizations/{org_id}"
    routes = [
        Route(f"{org}/agent/run", create_run, methods=["POST"]),
        Route(f"{org}/agent/run/resume", resume_run, methods=["POST"]),
        Route(f"{org}/agent/run/{{agent_run_id}}", get_run, methods=["GET"]),
        Route(f"{org}/agent/runs", list_runs, methods=["GET"]),
        Route("/v1/users/me", current_user, methods=["GET"]),
        Route(f"{org}/users", list_users, methods=["GET"]),
        Route(f"{org}/repos", list_repos, methods=["GET"]),
        Route("/runs/{run_id}", web_page, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def _page(items: list[dict[str, Any]], query: _PageQuery) -> dict[str, Any]:
    total = len(items)
    return {
        "items": items[query.skip : query.skip + query.limit],
        "total": total,
        "page": query.skip // query.limit + 1,
        "size": query.limit,
        "pages": math.ceil(total / query.limit),
    }


# -- serving -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_emulator(
    state: EmulatorState | None = None, *, port: int = 0
) -> AsyncIterator[str]:
    """Serve `state` on 127.0.0.1 (port 0: a free one) in this loop; yields the base URL."""
    state = state or EmulatorState()
    async with running_on_loopback(
        create_emulator_app(state), port=port, before_stop=state.release_holds
    ) as base_url:
        yield base_url


@contextlib.asynccontextmanager
async def running_on_loopback(
    app: ASGIApp, *, port: int = 0, before_stop: Callable[[], None] | None = None
) -> AsyncIterator[str]:
    """Any ASGI app under uvicorn on 127.0.0.1 inside the running loop; yields the base URL."""
    async with serve_http(app, host="127.0.0.1", port=port, before_stop=before_stop) as bound:
        yield f"http://127.0.0.1:{bound}"


def serve(*, port: int, state: EmulatorState | None = None) -> None:
    """Run the emulator on 127.0.0.1:`port` until interrupted (`codegen-bot emulator`)."""
    token_from_env = os.environ.get("CODEGEN_API_TOKEN") or None
    if state is None:
        org_env = os.environ.get("CODEGEN_ORG_ID")
        state = EmulatorState(
            token=token_from_env or EMULATOR_TOKEN,
            org_id=int(org_env) if org_env else EMULATOR_ORG_ID,
        )
    # Bound first so that port 0 can be reported as the real port.
    sock = listening_socket("127.0.0.1", port)
    bound_port = sock.getsockname()[1]
    # A token taken from the environment is a secret: say where it is, not what it is.
    from_env = token_from_env is not None and state.token == token_from_env
    shown_token = "(your CODEGEN_API_TOKEN)" if from_env else state.token
    print(
        f"Codegen emulator listening on http://127.0.0.1:{bound_port}\n"
        f"  CODEGEN_API_URL=http://127.0.0.1:{bound_port}\n"
        f"  CODEGEN_API_TOKEN={shown_token}\n"
        f"  CODEGEN_ORG_ID={state.org_id}",
        flush=True,
    )
    config = uvicorn.Config(
        create_emulator_app(state),
        host="127.0.0.1",
        port=bound_port,
        log_level="info",
        timeout_graceful_shutdown=5,  # held answers (scripted hangs) must not block Ctrl-C
    )
    uvicorn.Server(config).run(sockets=[sock])
