"""Async client of the Codegen API: one method per endpoint, typed models in, typed errors out.

Every call is one HTTP request with explicit timeouts. Failures are the Codegen branch of the
bot's error tree (bot.errors), chosen by bot.codegen.errors from the answer, carrying the
server's own message.

Reads (GET) retry transient failures with full-jitter exponential back-off through the injected
`sleep`; a 429 is retried only when its Retry-After is short. Creates and resumes are never
retried here: after an ambiguous failure only the dispatcher knows how to check whether the run
exists before sending again.

The token lives only in the Authorization header: never in URLs, messages, logs or repr().
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from bot.clock import Clock, SystemClock, full_jitter
from bot.codegen.errors import error_for_response, error_for_transport
from bot.codegen.models import (
    AgentRunResponse,
    AgentRunWithLogsResponse,
    CreateAgentRunInput,
    EditPRInput,
    EditPRResponse,
    Page,
    PullRequestState,
    RepoResponse,
    ResumeAgentRunInput,
    UserResponse,
)
from bot.errors import CodegenError, RateLimited, Unavailable, UnexpectedResponse
from bot.http_clients import OnDemandClient

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

# Seconds for each read, write and pool wait; connecting never waits longer than CONNECT.
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
CONNECT_TIMEOUT_SECONDS: Final = 5.0
# A read answered 429 is retried in place only when the wait is this short; longer waits go
# back to the caller, whose rate limiter blocks the whole org.
MAX_INLINE_RETRY_AFTER_SECONDS: Final = 5.0
BACKOFF_BASE_SECONDS: Final = 0.5
BACKOFF_CAP_SECONDS: Final = 8.0
PAGE_LIMIT: Final = 100

Observer = Callable[[str, int | None], None]


class CodegenClient:
    """The Codegen API for one organization. Use as `async with CodegenClient(...) as client`."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        org_id: int,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        read_retries: int = 3,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: Observer | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        verify: ssl.SSLContext | bool | Callable[[], ssl.SSLContext] = True,
    ) -> None:
        """`verify` may be a function giving the TLS context (bot.http_clients.shared_tls):
        the client is made at its first request, and the context with it (httpx itself is
        imported then: nothing of it is needed to start)."""
        self._base_url = base_url.rstrip("/")
        self._org_id = org_id
        self._read_retries = max(0, read_retries)
        self._sleep = sleep
        self._observer = observer
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

        def make() -> httpx.AsyncClient:
            import httpx

            return httpx.AsyncClient(
                base_url=self._base_url,
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_SECONDS)),
                transport=transport,
                verify=verify() if callable(verify) else verify,
                # Redirects could carry the Authorization header elsewhere; the API never
                # redirects.
                follow_redirects=False,
            )

        self._http = OnDemandClient(make)

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

    async def stop_run(self, run_id: int) -> None:
        """POST /v1/beta/…/agent/run/stop: not in Codegen's public spec; its own Raycast client
        calls it. A refusal (404 or 405 where the endpoint does not exist) raises as usual."""
        await self._send(
            "stop_run",
            "POST",
            f"/v1/beta/organizations/{self._org_id}/agent/run/stop",
            json={"agent_run_id": run_id},
        )

    async def set_pull_request_state(self, pr_id: int, state: PullRequestState) -> EditPRResponse:
        """PATCH …/prs/{pr_id} (`pr_id` is a run's `github_pull_requests[].id`). Never
        retried here: the caller pays each try from its own budget. An answer of
        `success: false` is returned as it is; the caller treats it as a refusal."""
        response = await self._send(
            "set_pull_request_state",
            "PATCH",
            f"/v1/organizations/{self._org_id}/prs/{pr_id}",
            json=EditPRInput(state=state).model_dump(mode="json"),
        )
        return _parse(response, EditPRResponse)

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

    async def run_logs(
        self, run_id: int, *, limit: int, skip: int = 0, reverse: bool = True
    ) -> AgentRunWithLogsResponse:
        """GET /v1/alpha/…/agent/run/{id}/logs: a page of the run's steps, newest first with
        `reverse`. Alpha: NoLogsEndpoint when the endpoint is not there (not the run)."""
        params: dict[str, str | int] = {
            "skip": skip,
            "limit": limit,
            "reverse": "true" if reverse else "false",
        }
        return await self._read(
            "run_logs",
            f"/v1/alpha/organizations/{self._org_id}/agent/run/{run_id}/logs",
            AgentRunWithLogsResponse,
            params=params,
        )

    # -- users and repositories ----------------------------------------------------------------

    async def current_user(self) -> UserResponse:
        return await self._read("current_user", "/v1/users/me", UserResponse)

    async def list_users(self, *, skip: int = 0, limit: int = PAGE_LIMIT) -> Page[UserResponse]:
        """The organization's members (there is no look-up by email: page through them)."""
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
                    delay = full_jitter(
                        attempt,
                        base=BACKOFF_BASE_SECONDS,
                        cap=BACKOFF_CAP_SECONDS,
                        rand=self._rng.random(),
                    )
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
        import httpx  # loaded by the client's first request (see __init__)

        try:
            response = await self._http.client().request(method, path, params=params, json=json)
        except httpx.HTTPError as error:
            self._observe(endpoint, None)
            raise error_for_transport(endpoint, error) from None
        self._observe(endpoint, response.status_code)
        if response.is_success:
            return response
        raise error_for_response(endpoint, response, now=self._clock.now())

    def _observe(self, endpoint: str, status_code: int | None) -> None:
        if self._observer is None:
            return
        try:
            self._observer(endpoint, status_code)
        except Exception:  # metrics must never break an API call
            log.exception("codegen observer failed for %s", endpoint)


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


def _describe(error: CodegenError) -> str:
    status = f" {error.status_code}" if error.status_code is not None else ""
    return f"{type(error).__name__}{status}"
