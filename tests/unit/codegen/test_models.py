"""The API models against the payloads Codegen documents (copied inline from its OpenAPI)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.codegen.models import (
    AgentRunLimitReachedErrorResponse,
    AgentRunNotFoundErrorResponse,
    AgentRunResponse,
    ApiAgentRunSourceType,
    APIRateLimitErrorResponse,
    CreateAgentRunInput,
    GithubPullRequestResponse,
    HTTPValidationError,
    NoReposFoundInOrgErrorResponse,
    Page,
    PermissionsErrorResponse,
    RepoResponse,
    ResumeAgentRunInput,
    StatusKind,
    UserResponse,
    classify_status,
    is_terminal,
)

# -- documented examples (openapi3.json, "examples" of each operation) ------------------------

CREATE_EXAMPLE: dict[str, Any] = {
    "prompt": "<string>",
    "images": ["<string>"],
    "metadata": {},
    "repo_id": 123,
    "model": "<string>",
    "agent_type": "codegen",
}

AGENT_RUN_EXAMPLE: dict[str, Any] = {
    "id": 123,
    "organization_id": 123,
    "status": "<string>",
    "created_at": "<string>",
    "web_url": "<string>",
    "result": "<string>",
    "summary": "<string>",
    "source_type": "LOCAL",
    "github_pull_requests": [
        {
            "id": 123,
            "title": "<string>",
            "url": "<string>",
            "created_at": "<string>",
            "head_branch_name": "<string>",
        }
    ],
    "metadata": {},
}

USER_EXAMPLE: dict[str, Any] = {
    "id": 123,
    "email": "<string>",
    "github_user_id": "<string>",
    "github_username": "<string>",
    "avatar_url": "<string>",
    "full_name": "<string>",
    "role": "<string>",
    "is_admin": True,
}

REPO_EXAMPLE: dict[str, Any] = {
    "id": 123,
    "name": "<string>",
    "full_name": "<string>",
    "description": "<string>",
    "github_id": "<string>",
    "organization_id": 123,
    "visibility": "<string>",
    "archived": True,
    "setup_status": "<string>",
    "language": "<string>",
}

VALIDATION_EXAMPLE: dict[str, Any] = {
    "detail": [{"loc": ["<string>"], "msg": "<string>", "type": "<string>"}]
}


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


# -- requests ----------------------------------------------------------------------------------


def test_create_input_accepts_the_documented_example() -> None:
    body = CreateAgentRunInput.model_validate(CREATE_EXAMPLE)
    assert body.repo_id == 123
    assert body.agent_type == "codegen"
    assert body.model_dump(mode="json") == CREATE_EXAMPLE


def test_create_input_requires_a_prompt() -> None:
    with pytest.raises(ValidationError) as caught:
        CreateAgentRunInput.model_validate(_without(CREATE_EXAMPLE, "prompt"))
    assert caught.value.errors()[0]["loc"] == ("prompt",)
    assert caught.value.errors()[0]["type"] == "missing"


def test_create_input_needs_nothing_but_the_prompt_and_drops_nones_on_the_wire() -> None:
    body = CreateAgentRunInput(prompt="Fix the login bug")
    assert body.model_dump(mode="json", exclude_none=True) == {"prompt": "Fix the login bug"}


@pytest.mark.parametrize("model", [CreateAgentRunInput, ResumeAgentRunInput])
def test_requests_reject_unknown_fields(model: type[CreateAgentRunInput]) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({"prompt": "x", "agent_run_id": 1, "priority": "high"})
    assert any(e["type"] == "extra_forbidden" for e in caught.value.errors())


def test_create_input_rejects_an_unknown_agent_type() -> None:
    with pytest.raises(ValidationError):
        CreateAgentRunInput(prompt="x", agent_type="gpt")  # type: ignore[arg-type]


def test_resume_input_requires_run_id_and_prompt() -> None:
    body = ResumeAgentRunInput.model_validate(
        {"agent_run_id": 123, "prompt": "<string>", "images": ["<string>"]}
    )
    assert body.agent_run_id == 123
    for missing in ("agent_run_id", "prompt"):
        with pytest.raises(ValidationError):
            ResumeAgentRunInput.model_validate(
                _without({"agent_run_id": 123, "prompt": "<string>"}, missing)
            )


# -- responses ---------------------------------------------------------------------------------


def test_agent_run_response_parses_the_documented_example() -> None:
    run = AgentRunResponse.model_validate(AGENT_RUN_EXAMPLE)
    assert run.id == 123
    assert run.source_type == ApiAgentRunSourceType.LOCAL
    assert run.github_pull_requests is not None
    pr = run.github_pull_requests[0]
    assert (pr.id, pr.title, pr.url) == (123, "<string>", "<string>")
    assert (pr.created_at, pr.head_branch_name) == ("<string>", "<string>")
    assert run.metadata == {}


@pytest.mark.parametrize("missing", ["id", "organization_id"])
def test_agent_run_response_requires_its_ids(missing: str) -> None:
    with pytest.raises(ValidationError):
        AgentRunResponse.model_validate(_without(AGENT_RUN_EXAMPLE, missing))


def test_agent_run_response_needs_only_its_ids() -> None:
    run = AgentRunResponse.model_validate({"id": 1, "organization_id": 2})
    assert run.status is None
    assert run.github_pull_requests is None


def test_pull_request_requires_id_and_created_at() -> None:
    pr = AGENT_RUN_EXAMPLE["github_pull_requests"][0]
    for missing in ("id", "created_at"):
        with pytest.raises(ValidationError):
            GithubPullRequestResponse.model_validate(_without(pr, missing))


def test_responses_tolerate_unknown_fields_and_unknown_source_types() -> None:
    payload = {
        **AGENT_RUN_EXAMPLE,
        "source_type": "CARRIER_PIGEON",
        "cost_usd": 1.5,
        "github_pull_requests": [{**AGENT_RUN_EXAMPLE["github_pull_requests"][0], "state": "open"}],
    }
    run = AgentRunResponse.model_validate(payload)
    assert run.source_type == "CARRIER_PIGEON"
    assert run.model_extra == {"cost_usd": 1.5}


def test_user_response_example_and_required_fields() -> None:
    user = UserResponse.model_validate(USER_EXAMPLE)
    assert user.github_username == "<string>"
    for missing in ("id", "github_user_id", "github_username"):
        with pytest.raises(ValidationError):
            UserResponse.model_validate(_without(USER_EXAMPLE, missing))
    assert UserResponse.model_validate({**USER_EXAMPLE, "timezone": "UTC"}).id == 123


def test_repo_response_example_and_required_fields() -> None:
    repo = RepoResponse.model_validate(REPO_EXAMPLE)
    assert repo.full_name == "<string>"
    # Every field of RepoResponse is required, even the nullable ones.
    for missing in REPO_EXAMPLE:
        with pytest.raises(ValidationError):
            RepoResponse.model_validate(_without(REPO_EXAMPLE, missing))
    assert RepoResponse.model_validate({**REPO_EXAMPLE, "description": None}).description is None


def test_page_of_runs() -> None:
    page = Page[AgentRunResponse].model_validate(
        {"items": [AGENT_RUN_EXAMPLE], "total": 1, "page": 1, "size": 100, "pages": 1}
    )
    assert page.items[0].id == 123
    with pytest.raises(ValidationError):
        Page[AgentRunResponse].model_validate({"items": [], "total": 0, "page": 1, "size": 100})


def test_error_bodies_have_the_documented_defaults() -> None:
    assert AgentRunLimitReachedErrorResponse().model_dump() == {
        "message": "Alloted agent runs for the current billing plan have been reached. "
        "Please upgrade your plan to continue.",
        "status_code": 402,
    }
    assert PermissionsErrorResponse().model_dump() == {
        "message": "You do not have access to this organization.",
        "status_code": 403,
    }
    assert NoReposFoundInOrgErrorResponse().model_dump() == {
        "message": "No repos found in the organization. Please add some repos and try again.",
        "status_code": 404,
    }
    assert AgentRunNotFoundErrorResponse().status_code == 404
    assert APIRateLimitErrorResponse().model_dump() == {
        "message": "Rate limit exceeded. Please try again later.",
        "status_code": 429,
    }


def test_validation_error_example() -> None:
    error = HTTPValidationError.model_validate(VALIDATION_EXAMPLE)
    assert error.detail[0].loc == ["<string>"]
    with pytest.raises(ValidationError):
        HTTPValidationError.model_validate({"detail": [{"loc": ["body"], "msg": "x"}]})


# -- status classes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (None, StatusKind.IN_PROGRESS),
        ("", StatusKind.IN_PROGRESS),
        ("PENDING", StatusKind.IN_PROGRESS),
        ("ACTIVE", StatusKind.IN_PROGRESS),
        ("RUNNING", StatusKind.IN_PROGRESS),
        ("EVALUATION", StatusKind.IN_PROGRESS),
        ("active", StatusKind.IN_PROGRESS),
        ("PAUSED", StatusKind.WAITING_FOR_INPUT),
        ("COMPLETE", StatusKind.SUCCESS),
        ("FAILED", StatusKind.FAILURE),
        ("ERROR", StatusKind.FAILURE),
        ("CANCELLED", StatusKind.FAILURE),
        ("STOPPED", StatusKind.FAILURE),
        ("TIMEOUT", StatusKind.FAILURE),
        ("MAX_ITERATIONS_REACHED", StatusKind.FAILURE),
        ("<string>", StatusKind.UNKNOWN),
        ("SOMETHING_NEW", StatusKind.UNKNOWN),
    ],
)
def test_classify_status(status: str | None, kind: StatusKind) -> None:
    assert classify_status(status) is kind


def test_terminal_statuses() -> None:
    assert not is_terminal("ACTIVE")
    assert not is_terminal("PAUSED")
    assert is_terminal("COMPLETE")
    assert is_terminal("FAILED")
    assert is_terminal("SOMETHING_NEW")
