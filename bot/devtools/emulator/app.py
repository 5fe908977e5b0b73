"""The emulator's HTTP face: a Starlette app serving an EmulatorState, FastAPI-style.

Request validation (path, query, body) comes first and answers 422 with a `detail` list; then
the org's rate limit; then auth; then the scripted answer, if any; then the behaviour of the
documented API.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.codegen.models import (
    AgentRunLimitReachedErrorResponse,
    AgentRunNotFoundErrorResponse,
    ApiAgentRunSourceType,
    APIRateLimitErrorResponse,
    CreateAgentRunInput,
    EditPRInput,
    EditPRResponse,
    NoReposFoundInOrgErrorResponse,
    PermissionsErrorResponse,
    ResumeAgentRunInput,
)
from bot.devtools.emulator.scripting import ScriptedFailure
from bot.devtools.emulator.state import (
    CREATE_RUN,
    CURRENT_USER,
    GET_RUN,
    LIST_REPOS,
    LIST_RUNS,
    LIST_USERS,
    RESUME_RUN,
    RUN_LOGS,
    SET_PR_STATE,
    STOP_RUN,
    WEB_PAGE,
    Caller,
    EmulatorState,
    ReceivedCall,
    SlidingWindowLimiter,
)

# -- request validation, FastAPI style ---------------------------------------------------------


class _PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    skip: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=100)


class _RunsQuery(_PageQuery):
    user_id: int | None = None
    source_type: ApiAgentRunSourceType | None = None


class _LogsQuery(_PageQuery):
    reverse: bool = False


class _StopInput(BaseModel):
    """The body Codegen's Raycast client sends to the beta stop endpoint."""

    agent_run_id: int


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

    def caller(request: Request) -> Caller | None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        given = presented.strip().encode()
        for token, who in state.tokens.items():
            if hmac.compare_digest(given, token.encode()):
                return who
        return None

    def authorized(request: Request, org_id: int | None = None) -> bool:
        who = caller(request)
        if who is None:
            return False
        request.state.caller = who
        return org_id is None or (org_id == state.org_id and org_id in who.org_ids)

    def caller_id(request: Request) -> int | None:
        who = getattr(request.state, "caller", None)
        return who.user.id if who is not None else None

    def limit_key(request: Request) -> str:
        """Codegen's limits are per API token: the key is a digest, never the token."""
        presented = request.headers.get("authorization", "").partition(" ")[2].strip()
        return hashlib.sha256(presented.encode()).hexdigest()[:16]

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
                call.caller_id = caller_id(request)
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
            wait = limiter.try_acquire(limit_key(request), now=state.clock.now())
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
        failure = state.script.take_read_failure(call.kind)
        if failure is not None:
            return _scripted_response(call.kind, failure)
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
                call.run_id = state._create_run(
                    body, base_url=str(request.base_url), user_id=caller_id(request)
                ).id
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
        run = state._create_run(body, base_url=str(request.base_url), user_id=caller_id(request))
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

    @endpoint(STOP_RUN, limiter=state.read_limiter)
    async def stop_run(request: Request, call: ReceivedCall) -> Response:
        org_id = _path_int(request, "org_id")
        if not state.stop_supported:
            return _json(404, {"detail": "Not Found"})  # as for a path the API does not have
        body = _body(request.state.raw_body, _StopInput)
        if not authorized(request, org_id):
            return _forbidden()
        if state.script.stop_failures:
            return _scripted_response(STOP_RUN, state.script.stop_failures.popleft())
        run = state.runs.get(body.agent_run_id)
        if run is None or run.organization_id != org_id:
            return _run_not_found()
        status = state._status(run)
        if status not in ("PENDING", "ACTIVE", "RUNNING", "EVALUATION", "PAUSED"):
            raise _Invalid(
                [
                    {
                        "type": "value_error",
                        "loc": ["body", "agent_run_id"],
                        "msg": f"Agent run {run.id} has already ended (status {status})",
                        "input": run.id,
                    }
                ]
            )
        state.stop(run.id)
        call.run_id = run.id
        return _json(200, {"message": f"Agent run {run.id} is stopping"})

    @endpoint(SET_PR_STATE, limiter=state.pr_edit_limiter)
    async def set_pull_request_state(request: Request, call: ReceivedCall) -> Response:
        org_id = _path_int(request, "org_id")
        pr_id = _path_int(request, "pr_id")
        body = _body(request.state.raw_body, EditPRInput)
        if not authorized(request, org_id):
            return _forbidden()
        if state.script.pr_edit_failures:
            return _scripted_response(SET_PR_STATE, state.script.pr_edit_failures.popleft())
        run = state.pull_request_run(pr_id)
        if run is None or run.organization_id != org_id:
            return _json(404, {"detail": f"Pull request {pr_id} not found"})
        call.run_id = run.id
        pull_request = state._run_json(run)["github_pull_requests"][0]
        if state.script.pr_edit_refusals:
            error = state.script.pr_edit_refusals.popleft()
            return _json(200, EditPRResponse(success=False, error=error).model_dump(mode="json"))
        state.pr_states[pr_id] = body.state
        answer = EditPRResponse(
            success=True,
            url=pull_request["url"],
            number=run.id,
            title=pull_request["title"],
            state=body.state,
        )
        return _json(200, answer.model_dump(mode="json"))

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

    @endpoint(RUN_LOGS, limiter=state.logs_limiter)
    async def run_logs(request: Request, call: ReceivedCall) -> Response:
        if not state.logs_supported:
            return _json(404, {"detail": "Not Found"})  # as for a path the API does not have
        run_id = _path_int(request, "agent_run_id")
        org_id = _path_int(request, "org_id")
        query = _query(request, _LogsQuery)
        if not authorized(request, org_id):
            return _forbidden()
        # Only failures scripted for log reads: the others (and read delays) are the status
        # reads' own, whatever the order progress and polling ask in.
        failure = next((f for f in state.script.read_failures if f.kind == RUN_LOGS), None)
        if failure is not None:
            state.script.read_failures.remove(failure)
            return _scripted_response(RUN_LOGS, failure)
        run = state.runs.get(run_id)
        if run is None or run.organization_id != org_id:
            return _run_not_found()
        logs = list(state.logs_of(run))
        if query.reverse:
            logs.reverse()
        page = _page(logs, query)
        data = state._run_json(run)
        body = {key: data[key] for key in ("id", "organization_id", "status", "created_at")}
        body.update(web_url=data["web_url"], result=data["result"], metadata=data["metadata"])
        body.update(
            logs=page["items"],
            total_logs=page["total"],
            page=page["page"],
            size=page["size"],
            pages=page["pages"],
        )
        return _json(200, body)

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
        who: Caller = request.state.caller
        return _json(200, who.user.model_dump(mode="json"))

    async def org_page(
        request: Request, call: ReceivedCall, items: Callable[[], Sequence[BaseModel]]
    ) -> Response:
        """A page of one of the organization's lists (users, repositories)."""
        org_id = _path_int(request, "org_id")
        query = _query(request, _PageQuery)
        if not authorized(request, org_id):
            return _forbidden()
        if (scripted := await scripted_read(call)) is not None:
            return scripted
        return _json(200, _page([item.model_dump(mode="json") for item in items()], query))

    @endpoint(LIST_USERS, limiter=state.read_limiter)
    async def list_users(request: Request, call: ReceivedCall) -> Response:
        return await org_page(request, call, lambda: state.users)

    @endpoint(LIST_REPOS, limiter=state.read_limiter)
    async def list_repos(request: Request, call: ReceivedCall) -> Response:
        return await org_page(request, call, lambda: state.repos)

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
        Route("/v1/beta/organizations/{org_id}/agent/run/stop", stop_run, methods=["POST"]),
        Route(f"{org}/agent/runs", list_runs, methods=["GET"]),
        Route(f"{org}/prs/{{pr_id}}", set_pull_request_state, methods=["PATCH"]),
        Route(
            "/v1/alpha/organizations/{org_id}/agent/run/{agent_run_id}/logs",
            run_logs,
            methods=["GET"],
        ),
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
