"""Every exception the bot raises on purpose, in one tree.

    BotError
    ├── ConfigError ............... a setting has a value the bot cannot use (names the variable)
    ├── OptionError ............... text a person typed that the bot cannot read (`message` is
    │                               mrkdwn written for them)
    ├── RequestRefused ............ bad input found while preparing a request: the person is
    │                               told why and nothing is sent
    ├── TryLater .................. nothing is wrong with the request, but a part it needs
    │   │                           cannot be asked right now; `wait` says for how long, if known
    │   ├── BudgetExhausted ....... a shared Codegen call budget is spent (`bucket`, `wait`)
    │   ├── LookupUnavailable ..... Codegen could not be asked (busy, rate limited, unreachable)
    │   └── SlackBusy ............. Slack or its rate budget has no room now (`wait`)
    ├── SlackError ................ a Slack Web API call failed (`method`, `error`)
    │   ├── SlackRefused .......... Slack said no for good (`channel_not_found`, …)
    │   └── SlackUnavailable ...... 429/5xx/no connection past the retry limits, or no slot in
    │                               Slack's rate budget: a later try may succeed (`retryable`;
    │                               `ambiguous` when Slack may have acted on it)
    └── CodegenError .............. a Codegen API call failed; the server's own `message`
        ├── PlanLimitReached ...... 402: the plan's run allowance is used up
        ├── Forbidden ............. 401/403: the token has no access to the organization
        ├── NotFound .............. 404
        │   ├── NoReposFound ...... on create: the organization has no repositories
        │   ├── RunNotFound ....... on get/resume/logs: no such agent run
        │   └── NoLogsEndpoint .... on logs: the alpha endpoint is not there (progress off)
        ├── InvalidRequest ........ 422: a refused field, `detail` as the API gave it
        ├── RateLimited ........... 429: wait `retry_after` seconds (`retryable`)
        ├── Unavailable ........... 5xx, timeouts, connection errors (`retryable`; `ambiguous`
        │                           when the request may have reached the API)
        └── UnexpectedResponse .... any other status, or a body that does not parse

Two attributes decide what a caller does, never the message: `retryable` (sending the same
call again later may succeed) and, for Codegen, `ambiguous` (the server may have acted on
it anyway: look before sending a create again). No error here ever holds a token.
"""

from __future__ import annotations

from typing import Any


class BotError(Exception):
    """The root: anything the bot raises on purpose."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(BotError):
    """A setting has a value the bot cannot use; the message names the variable."""


class OptionError(BotError):
    """Text the bot cannot read; `message` is written for the person who typed it (mrkdwn)."""


class RequestRefused(BotError):
    """Bad input found while preparing: the person is told and nothing is sent."""


class TryLater(BotError):
    """A part the request needs cannot be asked now; `wait` seconds, when known."""

    retryable = True

    def __init__(self, message: str, *, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class BudgetExhausted(TryLater):
    """A shared Codegen call budget (`bucket`: create or read) is spent for `wait` seconds."""

    wait: float

    def __init__(self, bucket: str, wait: float) -> None:
        super().__init__(f"{bucket} budget spent; next call in {wait:.1f} s", wait=wait)
        self.bucket = bucket


class LookupUnavailable(TryLater):
    """Codegen could not be asked just now (busy, rate limited, unreachable)."""


class SlackBusy(TryLater):
    """Slack (or its rate budget) has no room for a call the request needs now: it waits in
    the outbox and is prepared again after `wait`, quietly."""


# -- Slack ------------------------------------------------------------------------------------


class SlackError(BotError):
    """A Slack Web API call failed: `method` (dotted) and `error` (Slack's code, or the HTTP
    status or exception name when Slack's JSON never came)."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"slack {method} failed: {error}")
        self.method = method
        self.error = error


class SlackRefused(SlackError):
    """Slack refused for good (`channel_not_found`, `is_archived`, `missing_scope`, …)."""


class SlackUnavailable(SlackError):
    """Slack kept answering 429/5xx (or could not be reached) past the retry limits, or its
    rate budget has no slot now. `ambiguous`: Slack may have acted on the call anyway (a 5xx,
    a timeout or a reset after sending): look before posting the same message again."""

    retryable = True

    def __init__(
        self, method: str, error: str, *, ambiguous: bool = False, wait: float | None = None
    ) -> None:
        super().__init__(method, error)
        self.ambiguous = ambiguous
        self.wait = wait  # seconds until a slot, when Slack (or its budget) says
        self.message = f"slack {method} unavailable: {error}"
        self.args = (self.message,)


# -- Codegen ----------------------------------------------------------------------------------


class CodegenError(BotError):
    """A Codegen API call failed; `message` is the server's own."""

    status_code: int | None = None
    # True when the server may have acted on the request (timeout after sending, 5xx, dropped
    # connection): before sending a create again, look for its request_id in recent runs.
    ambiguous = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, message={self.message!r})"


class PlanLimitReached(CodegenError):
    """402: the billing plan's run allowance is used up."""

    status_code = 402


class Forbidden(CodegenError):
    """403 (and 401): the token has no access to the organization (or is wrong)."""

    status_code = 403


class NotFound(CodegenError):
    """404."""

    status_code = 404


class NoReposFound(NotFound):
    """404 on create: the organization has no repositories."""


class RunNotFound(NotFound):
    """404 on get/resume: no such agent run in this organization."""


class NoLogsEndpoint(NotFound):
    """404 from the (alpha) run logs endpoint that is not about the run: Codegen has no such
    endpoint here, so progress is off."""


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
