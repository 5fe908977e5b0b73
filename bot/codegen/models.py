"""Typed models of the Codegen API, field for field as in its OpenAPI document.

Responses tolerate unknown fields (the API grows); requests forbid them, so we never send a
field the schema lacks. `status` stays a plain string: the API adds values over time, and an
unknown one must be shown as it is, not rejected.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

AgentType = Literal["codegen", "claude_code"]


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ApiAgentRunSourceType(StrEnum):
    LOCAL = "LOCAL"
    SLACK = "SLACK"
    GITHUB = "GITHUB"
    GITHUB_CHECK_SUITE = "GITHUB_CHECK_SUITE"
    GITHUB_PR_REVIEW = "GITHUB_PR_REVIEW"
    LINEAR = "LINEAR"
    API = "API"
    CHAT = "CHAT"
    JIRA = "JIRA"
    CLICKUP = "CLICKUP"
    MONDAY = "MONDAY"
    SETUP_COMMANDS = "SETUP_COMMANDS"


class CreateAgentRunInput(_Request):
    prompt: str
    images: list[str] | None = Field(
        default=None, description="base64 encoded data URIs of images for the agent"
    )
    metadata: dict[str, Any] | None = None
    repo_id: int | None = None
    model: str | None = None
    agent_type: AgentType | None = None


class ResumeAgentRunInput(_Request):
    agent_run_id: int
    prompt: str
    images: list[str] | None = None


PullRequestState = Literal["open", "closed", "draft", "ready_for_review"]


class EditPRInput(_Request):
    """PATCH …/prs/{pr_id}: the state to put the pull request in."""

    state: PullRequestState


class EditPRResponse(_Response):
    """The answer to a pull request edit. `success` False (with `error`) is a refusal, even
    on HTTP 200."""

    success: bool
    url: str | None = None
    number: int | None = None
    title: str | None = None
    state: str | None = None
    error: str | None = None


class GithubPullRequestResponse(_Response):
    id: int
    title: str | None = None
    url: str | None = None
    created_at: str
    head_branch_name: str | None = None


class AgentRunResponse(_Response):
    id: int
    organization_id: int
    status: str | None = None
    created_at: str | None = None
    web_url: str | None = None
    result: str | None = None
    summary: str | None = None
    # Unknown future source types must not break parsing of a whole page of runs.
    source_type: ApiAgentRunSourceType | str | None = None
    github_pull_requests: list[GithubPullRequestResponse] | None = None
    metadata: dict[str, Any] | None = None


class AgentRunLogResponse(_Response):
    """One step of a run, from the alpha logs endpoint (its fields may change: all optional
    but the run id, and unknown ones kept)."""

    agent_run_id: int
    created_at: str | None = None
    tool_name: str | None = None
    message_type: str | None = None  # ACTION, PLAN_EVALUATION, FINAL_ANSWER, ERROR, …
    thought: str | None = None
    observation: dict[str, Any] | str | None = None
    tool_input: dict[str, Any] | None = None
    tool_output: dict[str, Any] | str | None = None


class AgentRunWithLogsResponse(_Response):
    """A run with a page of its logs (`GET /v1/alpha/…/agent/run/{id}/logs`)."""

    id: int
    organization_id: int
    status: str | None = None
    created_at: str | None = None
    web_url: str | None = None
    result: str | None = None
    metadata: dict[str, Any] | None = None
    logs: list[AgentRunLogResponse] = Field(default_factory=list)
    total_logs: int | None = None
    page: int | None = None
    size: int | None = None
    pages: int | None = None


class UserResponse(_Response):
    id: int
    email: str | None = None
    github_user_id: str
    github_username: str
    avatar_url: str | None = None
    full_name: str | None = None
    role: str | None = None
    is_admin: bool | None = None


class RepoResponse(_Response):
    id: int
    name: str
    full_name: str
    description: str | None
    github_id: str
    organization_id: int
    visibility: str | None
    archived: bool | None
    setup_status: str
    language: str | None


ItemT = TypeVar("ItemT", bound=BaseModel)


class Page(_Response, Generic[ItemT]):
    items: list[ItemT]
    total: int
    page: int
    size: int
    pages: int


# -- error bodies -----------------------------------------------------------------------------


class ValidationErrorItem(_Response):
    loc: list[str | int]
    msg: str
    type: str


class HTTPValidationError(_Response):
    detail: list[ValidationErrorItem] = Field(default_factory=list)


class AgentRunLimitReachedErrorResponse(_Response):
    message: str = (
        "Alloted agent runs for the current billing plan have been reached. "
        "Please upgrade your plan to continue."
    )
    status_code: int = 402


class PermissionsErrorResponse(_Response):
    message: str = "You do not have access to this organization."
    status_code: int = 403


class NoReposFoundInOrgErrorResponse(_Response):
    message: str = "No repos found in the organization. Please add some repos and try again."
    status_code: int = 404


class AgentRunNotFoundErrorResponse(_Response):
    message: str = "Agent run not found."
    status_code: int = 404


class APIRateLimitErrorResponse(_Response):
    message: str = "Rate limit exceeded. Please try again later."
    status_code: int = 429


# -- status ------------------------------------------------------------------------------------


class StatusKind(StrEnum):
    IN_PROGRESS = "in_progress"
    WAITING_FOR_INPUT = "waiting_for_input"
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


IN_PROGRESS_STATUSES = frozenset({"PENDING", "ACTIVE", "RUNNING", "EVALUATION"})
KNOWN_FAILURE_STATUSES = frozenset(
    {"FAILED", "ERROR", "CANCELLED", "STOPPED", "TIMEOUT", "MAX_ITERATIONS_REACHED"}
)


def classify_status(status: str | None) -> StatusKind:
    """docs/contracts.md: in progress / PAUSED waits / COMPLETE succeeds / anything else ends
    as failure.

    UNKNOWN is a failure for tracking purposes (tracking stops) but tells the renderer to show the
    raw value rather than pretend it knows what it means.
    """
    value = (status or "").upper()
    if not value or value in IN_PROGRESS_STATUSES:  # a just-created run may have no status yet
        return StatusKind.IN_PROGRESS
    if value == "PAUSED":
        return StatusKind.WAITING_FOR_INPUT
    if value == "COMPLETE":
        return StatusKind.SUCCESS
    if value in KNOWN_FAILURE_STATUSES:
        return StatusKind.FAILURE
    return StatusKind.UNKNOWN


# Failures for tracking, but a person (or Codegen on their behalf) ended them: the card says
# "Stopped", not "Failed".
STOPPED_STATUSES = frozenset({"STOPPED", "CANCELLED"})


def is_stopped(status: str | None) -> bool:
    return (status or "").strip().upper() in STOPPED_STATUSES


def is_terminal(status: str | None) -> bool:
    """Tracking ends on success and on every failure, including unknown values."""
    return classify_status(status) in (StatusKind.SUCCESS, StatusKind.FAILURE, StatusKind.UNKNOWN)
