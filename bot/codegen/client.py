"""Async client of the Codegen API: one method per endpoint, typed models in, typed errors out.

Every call is one HTTP request with explicit timeouts. Failures come back as the typed errors of
`bot.codegen.errors`, carrying the server's own message (or, for 422, its `detail` list):

    402 → PlanLimitReached      403 (and 401) → Forbidden
    404 on create → NoReposFound, on get/resume → RunNotFound, elsewhere → NotFound
    422 → InvalidRequest(detail=[...])      429 → RateLimited(retry_after=seconds)
    5xx → Unavailable(ambiguous=True)
    connect failure/timeout → Unavailable(ambiguous=False): the request never left
    read/write timeout, dropped connection → Unavailable(ambiguous=True): it may have arrived
    anything else (other statuses, bodies that do not parse) → UnexpectedResponse

Reads (GET) retry transient failures with full-jitter exponential back-off through the injected
`sleep`; a 429 is retried only when its Retry-After is short. Creates and resumes are never
retried here: after an ambiguous failure only the dispatcher knows how to check whether the run
exists before sending again.

The token lives only in the Authorization header: never in URLs, messages, logs or repr().
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from bot.clock import Clock, SystemClock
from bot.codegen.errors import (
    CodegenError,
    Forbidden,
    InvalidRequest,
    NoReposFound,
    NotFound,
    PlanLimitReached,
    RateLimited,
    RunNotFound,
    Unavailable,
    UnexpectedResponse,
)
from bot.codegen.models import (
    AgentRunLimitReachedErrorResponse,
    AgentRunNotFoundErrorResponse,
    AgentRunResponse,
    APIRateLimitErrorResponse,
    CreateAgentRunInput,
    NoReposFoundInOrgErrorResponse,
    Page,
    PermissionsErrorResponse,
    RepoResponse,
    ResumeAgentRunInput,
    UserResponse,
)

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)
# Longest Retry-After we believe; a larger value is more likely a bug than a plan.
MAX_RETRY_AFTER_SECONDS: Final = 3600.0
# A read answered 429 is retried in place only when the wait is this short; longer waits go
# back to the caller, whose rate limiter blocks the whole org.
MAX_INLINE_RETRY_AFTER_SECONDS: Final = 5.0
BACKOFF_BASE_SECONDS: Final = 0.5
BACKOFF_CAP_SECONDS: Final = 8.0
PAGE_LIMIT: Final = 100

Observer = Callable[[str, int | None], None]


def parse_retry_after(value: str | None, *, now: datetime, default: float = 60.0) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date.

    Clamped to [0, MAX_RETRY_AFTER_SECONDS]; `default` when absent or unreadable.
    """
    if value is None or not value.strip():
        return default
    text = value.strip()
    seconds: float
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC with unknown origin
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return default
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def backoff_delay(attempt: int, *, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^attempt)] (attempt 0 is the first retry)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * (2**attempt))
    return rng.uniform(0.0, ceiling)


class CodegenClient:
    """The Codegen API for one organization. Use as `async with CodegenClient(...) as client`."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        org_id: int,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        read_retries: int = 3,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: Observer | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._org_id = org_id
        self._read_retries = max(0, read_retries)
        self._sleep = sleep
        self._observer = observer
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            transport=transport,
            # Redirects could carry the Authorization header elsewhere; the API never redirects.
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"CodegenClient(base_url={self._base_url!r}, org_id={self._org_id!r})"

    @property
    def org_id(self) -> int:
        return self._org_id

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> CodegenClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- agent runs ----------------------------------------------------------------------------

    async def create_run(self, body: CreateAgentRunInput) -> AgentRunResponse:
        """POST …/agent/run. Never retried: a timeout may still have created the run."""
        response = await self._send(
            "create_run",
            "POST",
            f"/v1/organizations/{self._org_id}/agent/run",
            json=body.model_dump(mode="json", exclude_none=True),
        )
        return _parse(response, AgentRunResponse)

    async def resume_run(self, body: ResumeAgentRunInput) -> AgentRunResponse:
        """POST …/agent/run/resume. Never retried, for the same reason as create_run."""
        response = await self._send(
            "resume_run",
            "POST",
            f"/v1/organizations/{self._org_id}/agent/run/resume",
            json=body.model_dump(mode="json", exclude_none=True),
        )
        return _parse(response, AgentRunResponse)

    async def get_run(self, run_id: int) -> AgentRunResponse:
        return await self._read(
            "get_run", f"/v1/organizations/{self._org_id}/agent/run/{run_id}", AgentRunResponse
        )

    async def list_runs(
        self,
        *,
        user_id: int | None = None,
        source_type: str | None = None,
        skip: int = 0,
        limit: int = PAGE_LIMIT,
    ) -> Page[AgentRunResponse]:
        """Newest first (the API's order)."""
        params: dict[str, str | int] = {"skip": skip, "limit": limit}
        if user_id is not None:
            params["user_id"] = user_id
        if source_type is not None:
            params["source_type"] = source_type
        return await self._read(
            "list_runs",
            f"/v1/organizations/{self._org_id}/agent/runs",
            Page[AgentRunResponse],
            params=params,
        )

    # -- users and repositories ----------------------------------------------------------------

    async def current_user(self) -> UserResponse:
        return await self._read("current_user", "/v1/users/me", UserResponse)

    async def list_users(self, *, skip: int = 0, limit: int = PAGE_LIMIT) -> Page[UserResponse]:
        return await self._read(
            "list_users",
            f"/v1/organizations/{self._org_id}/users",
            Page[UserResponse],
            params={"skip": skip, "limit": limit},
        )

    async def list_repos(self, *, skip: int = 0, limit: int = PAGE_LIMIT) -> Page[RepoResponse]:
        return await self._read(
            "list_repos",
            f"/v1/organizations/{self._org_id}/repos",
            Page[RepoResponse],
            params={"skip": skip, "limit": limit},
        )

    async def all_repos(self) -> list[RepoResponse]:
        """Every repository of the org, following pages until the total is reached."""
        repos: list[RepoResponse] = []
        while True:
            page = await self.list_repos(skip=len(repos), limit=PAGE_LIMIT)
            repos.extend(page.items)
            # An empty page ends the walk even if `total` claims more: never loop forever.
            if not page.items or len(repos) >= page.total:
                return repos

    # -- plumbing ------------------------------------------------------------------------------

    async def _read(
        self,
        endpoint: str,
        path: str,
        model: type[ModelT],
        *,
        params: dict[str, str | int] | None = None,
    ) -> ModelT:
        """GET with retries of transient failures (5xx, timeouts, short 429s)."""
        attempt = 0
        while True:
            try:
                response = await self._send(endpoint, "GET", path, params=params)
                return _parse(response, model)
            except (Unavailable, RateLimited) as error:
                if attempt >= self._read_retries:
                    raise
                if isinstance(error, RateLimited):
                    if error.retry_after > MAX_INLINE_RETRY_AFTER_SECONDS:
                        raise
                    delay = error.retry_after
                else:
                    delay = backoff_delay(attempt, rng=self._rng)
                attempt += 1
                log.warning(
                    "codegen %s failed (%s), retry %d/%d in %.2f s",
                    endpoint,
                    _describe(error),
                    attempt,
                    self._read_retries,
                    delay,
                )
                await self._sleep(delay)

    async def _send(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        params: dict[str, str | int] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """One attempt. Returns a 2xx response or raises the typed error for what happened."""
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except httpx.HTTPError as error:
            self._observe(endpoint, None)
            raise _transport_error(endpoint, error) from None
        self._observe(endpoint, response.status_code)
        if response.is_success:
            return response
        raise self._status_error(endpoint, response)

    def _observe(self, endpoint: str, status_code: int | None) -> None:
        if self._observer is None:
            return
        try:
            self._observer(endpoint, status_code)
        except Exception:  # metrics must never break an API call
            log.exception("codegen observer failed for %s", endpoint)

    def _status_error(self, endpoint: str, response: httpx.Response) -> CodegenError:
        status = response.status_code
        body = _json_or_none(response)
        if status == 402:
            return PlanLimitReached(_message(body, AgentRunLimitReachedErrorResponse().message))
        if status in (401, 403):
            return Forbidden(_message(body, PermissionsErrorResponse().message), status_code=status)
        if status == 404:
            if endpoint == "create_run":
                return NoReposFound(_message(body, NoReposFoundInOrgErrorResponse().message))
            if endpoint in ("get_run", "resume_run"):
                return RunNotFound(_message(body, AgentRunNotFoundErrorResponse().message))
            return NotFound(_message(body, "Not found."))
        if status == 422:
            detail = _validation_detail(body)
            return InvalidRequest(_validation_message(body, detail), detail=detail)
        if status == 429:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), now=self._clock.now()
            )
            return RateLimited(
                _message(body, APIRateLimitErrorResponse().message), retry_after=retry_after
            )
        if status >= 500:
            return Unavailable(
                f"Codegen API answered {status} to {endpoint}", status_code=status, ambiguous=True
            )
        return UnexpectedResponse(
            f"Codegen API answered {status} to {endpoint}: {_message(body, '(no message)')}",
            status_code=status,
        )


# -- pure helpers ------------------------------------------------------------------------------


def _parse(response: httpx.Response, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        # Field names and error kinds only: the input may be large, and is not ours to log.
        problems = ", ".join(
            f"{'.'.join(str(p) for p in item['loc']) or 'body'}: {item['type']}"
            for item in error.errors()[:5]
        )
        raise UnexpectedResponse(
            f"Codegen API answered {response.status_code} with a body that is not a "
            f"{model.__name__}: {problems}",
            status_code=response.status_code,
        ) from None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(body: Any, default: str) -> str:
    """The server's own message: `message`, or FastAPI's string `detail`, else the default."""
    if isinstance(body, dict):
        for key in ("message", "detail"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return default


def _validation_detail(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        return [item for item in body["detail"] if isinstance(item, dict)]
    return []


def _validation_message(body: Any, detail: list[dict[str, Any]]) -> str:
    if not detail:
        return _message(body, "Codegen API refused the request (422).")
    parts = []
    for item in detail:
        loc = ".".join(str(p) for p in item.get("loc", []) if p != "body") or "request"
        parts.append(f"{loc}: {item.get('msg', 'invalid')}")
    return "Codegen API refused the request: " + "; ".join(parts)


def _transport_error(endpoint: str, error: httpx.HTTPError) -> Unavailable:
    """Whether the request may have reached the server decides `ambiguous`."""
    kind = type(error).__name__
    if isinstance(error, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
        # Never sent: no connection (or no free connection in our pool) was obtained.
        return Unavailable(f"Codegen API unreachable on {endpoint} ({kind})", ambiguous=False)
    if isinstance(error, httpx.TimeoutException):
        return Unavailable(
            f"Codegen API timed out on {endpoint} after sending ({kind})", ambiguous=True
        )
    return Unavailable(f"Codegen API connection failed on {endpoint} ({kind})", ambiguous=True)


def _describe(error: CodegenError) -> str:
    status = f" {error.status_code}" if error.status_code is not None else ""
    return f"{type(error).__name__}{status}"
