"""How the Codegen API's answers map onto the Codegen branch of the bot's error tree.

The classes themselves live in `bot.errors` (drawn there); this module only decides which one
an answer is, carrying the server's own message (or, for 422, its `detail` list):

    402 → PlanLimitReached      403 (and 401) → Forbidden
    404 on create → NoReposFound, on get/resume → RunNotFound, elsewhere → NotFound;
        on run_logs → RunNotFound when the API answered about the run (a `message`), else
        NoLogsEndpoint (a bare `{"detail": "Not Found"}`: the alpha path is not there)
    422 → InvalidRequest(detail=[...])      429 → RateLimited(retry_after=seconds)
    5xx → Unavailable(ambiguous=True)
    connect failure/timeout → Unavailable(ambiguous=False): the request never left
    read/write timeout, dropped connection → Unavailable(ambiguous=True): it may have arrived
    anything else (other statuses, bodies that do not parse) → UnexpectedResponse
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.clock import parse_retry_after
from bot.codegen.models import (
    AgentRunLimitReachedErrorResponse,
    AgentRunNotFoundErrorResponse,
    APIRateLimitErrorResponse,
    NoReposFoundInOrgErrorResponse,
    PermissionsErrorResponse,
)
from bot.errors import (
    CodegenError,
    Forbidden,
    InvalidRequest,
    NoLogsEndpoint,
    NoReposFound,
    NotFound,
    PlanLimitReached,
    RateLimited,
    RunNotFound,
    Unavailable,
    UnexpectedResponse,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["error_for_response", "error_for_transport"]


def error_for_response(endpoint: str, response: httpx.Response, *, now: datetime) -> CodegenError:
    """The error for a non-2xx answer to `endpoint` (named like the client's methods)."""
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
        if endpoint == "run_logs":
            if isinstance(body, dict) and isinstance(body.get("message"), str):
                return RunNotFound(body["message"])
            return NoLogsEndpoint(_message(body, "Not Found"))
        return NotFound(_message(body, "Not found."))
    if status == 422:
        detail = _validation_detail(body)
        return InvalidRequest(_validation_message(body, detail), detail=detail)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
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


def error_for_transport(endpoint: str, error: httpx.HTTPError) -> Unavailable:
    """Whether the request may have reached the server decides `ambiguous`."""
    import httpx  # already loaded: `error` is one of its exceptions

    kind = type(error).__name__
    if isinstance(error, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
        # Never sent: no connection (or no free connection in our pool) was obtained.
        return Unavailable(f"Codegen API unreachable on {endpoint} ({kind})", ambiguous=False)
    if isinstance(error, httpx.TimeoutException):
        return Unavailable(
            f"Codegen API timed out on {endpoint} after sending ({kind})", ambiguous=True
        )
    return Unavailable(f"Codegen API connection failed on {endpoint} ({kind})", ambiguous=True)


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
