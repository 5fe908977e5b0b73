"""Typed failures of the Codegen API, each carrying the server's own message.

The dispatcher decides what to do from the type alone: `retryable` says whether sending the same
request again may succeed, `ambiguous` whether the request may have reached Codegen anyway.
Nothing here ever holds the API token.
"""

from __future__ import annotations

from typing import Any


class CodegenError(Exception):
    status_code: int | None = None
    retryable = False
    # True when the server may have acted on the request (timeout after sending, 5xx, dropped
    # connection): before sending a create again, look for its request_id in recent runs.
    ambiguous = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, message={self.message!r})"


class PlanLimitReached(CodegenError):
    """402: the billing plan's run allowance is used up."""

    status_code = 402


class Forbidden(CodegenError):
    """403: the token has no access to the organization (or is wrong)."""

    status_code = 403


class NotFound(CodegenError):
    """404: the run does not exist, or (on create) the organization has no repositories."""

    status_code = 404


class NoReposFound(NotFound):
    """404 on create: the organization has no repositories."""


class RunNotFound(NotFound):
    """404 on get/resume: no such agent run in this organization."""


class InvalidRequest(CodegenError):
    """422: the API refused a field; `detail` holds its list of {loc, msg, type}."""

    status_code = 422

    def __init__(self, message: str, *, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, status_code=422)
        self.detail = detail or []

    def fields(self) -> list[str]:
        """Dotted names of the refused fields, without the leading 'body'."""
        names = []
        for item in self.detail:
            loc = [str(part) for part in item.get("loc", []) if part != "body"]
            names.append(".".join(loc) or "request")
        return names


class RateLimited(CodegenError):
    """429: wait `retry_after` seconds before calling this organization again."""

    status_code = 429
    retryable = True

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, status_code=429)
        self.retry_after = retry_after


class Unavailable(CodegenError):
    """5xx, timeouts and connection errors: transient; may or may not have reached the API."""

    retryable = True

    def __init__(
        self, message: str, *, status_code: int | None = None, ambiguous: bool = True
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.ambiguous = ambiguous


class UnexpectedResponse(CodegenError):
    """Any other status, or a body that does not match the documented shape."""
