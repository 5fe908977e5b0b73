"""Everything the emulator knows: runs, users, repositories, rate limits, the calls received.

Tests read and script the state directly; the app (app.py) only serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from bot.clock import Clock, SystemClock
from bot.codegen.models import (
    ApiAgentRunSourceType,
    CreateAgentRunInput,
    RepoResponse,
    ResumeAgentRunInput,
    UserResponse,
)
from bot.config import EMULATOR_ORG_ID, EMULATOR_TOKEN
from bot.devtools.emulator.scripting import EmulatorScript

FIRST_RUN_ID: Final = 1000
CREATE_WINDOW_SECONDS: Final = 60.0
READ_WINDOW_SECONDS: Final = 30.0
PR_EDIT_WINDOW_SECONDS: Final = 60.0
# A completed run's pull request id: this plus the run's id.
FIRST_PR_ID: Final = 70000
# Run logs: "60 requests per 60 seconds per API token" (alpha), counted apart from reads.
LOGS_WINDOW_SECONDS: Final = 60.0
LOGS_PER_WINDOW: Final = 60

# The kinds of calls, named like the client's endpoints.
CREATE_RUN: Final = "create_run"
RESUME_RUN: Final = "resume_run"
GET_RUN: Final = "get_run"
LIST_RUNS: Final = "list_runs"
CURRENT_USER: Final = "current_user"
LIST_USERS: Final = "list_users"
LIST_REPOS: Final = "list_repos"
WEB_PAGE: Final = "web_page"
STOP_RUN: Final = "stop_run"
SET_PR_STATE: Final = "set_pull_request_state"
RUN_LOGS: Final = "run_logs"
# What a stopped run shows (Codegen's own clients know STOPPED and CANCELLED).
STOPPED_STATUS: Final = "STOPPED"


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
    caller_id: int | None = None  # the user whose token made the call (never the token)


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
    pinned_at: datetime | None = None  # when it was pinned: a pinned COMPLETE ended then
    resume_prompts: list[str] = field(default_factory=list)
    stops_at: datetime | None = None  # an accepted stop takes effect then
    # Its logs, oldest first, grown as it works (EmulatorState.logs_of).
    logs: list[dict[str, Any]] = field(default_factory=list)
    last_step_at: datetime | None = None

    def status_at(self, now: datetime, *, pending_seconds: float, active_seconds: float) -> str:
        if self.stops_at is not None and now >= self.stops_at:
            return STOPPED_STATUS
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


# The steps an emulated agent takes, in turn: (tool, thought).
AGENT_STEPS: Final = (
    ("ripgrep_search", "Looking for where the request is handled"),
    ("file_view", "Reading the handler to see what it does now"),
    ("file_edit", "Making the change the request asks for"),
    ("run_command", "Running the tests to check the change"),
)


@dataclass(frozen=True)
class Caller:
    """Whose token a call carries, and the organizations it may act in."""

    user: UserResponse
    org_ids: frozenset[int]


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


def most_in_window(times: Sequence[datetime], *, seconds: float) -> int:
    """The most calls at `times` in any window of `seconds`, counted as the limiter counts
    (an entry leaves the window exactly `seconds` after it was made)."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + timedelta(seconds=seconds):
            j += 1
        best = max(best, j - i)
    return best


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
        pr_edits_per_minute: int = 30,
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
        self.pr_edit_limiter = SlidingWindowLimiter(
            limit=pr_edits_per_minute, window_seconds=PR_EDIT_WINDOW_SECONDS
        )
        # The state each pull request was last set to (PATCH …/prs/{pr_id}).
        self.pr_states: dict[int, str] = {}
        self.logs_limiter = SlidingWindowLimiter(
            limit=LOGS_PER_WINDOW, window_seconds=LOGS_WINDOW_SECONDS
        )
        # A working run takes a step every this many (emulated) seconds.
        self.step_seconds = 3.0
        # The run logs endpoint is alpha: False answers 404 as for a path the API lacks.
        self.logs_supported = True
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
        # Every token the emulator accepts → whose it is and which organizations it reaches.
        self.tokens: dict[str, Caller] = {token: Caller(user=self.me, org_ids=frozenset({org_id}))}
        self.repos: list[RepoResponse] = default_repos(org_id)
        self.runs: dict[int, EmulatedRun] = {}
        self.received: list[ReceivedCall] = []
        self.rate_limited_count = 0
        # Codegen documents no stop; the beta endpoint its Raycast client calls may be absent
        # for an organization. False: it answers 404 as for an unknown path.
        self.stop_supported = True
        # How long an accepted stop takes to end the run (the agent finishes its step).
        self.stop_seconds = 0.0
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

    def add_person(
        self, token: str, *, email: str, name: str, org_ids: frozenset[int] | None = None
    ) -> UserResponse:
        """Someone with their own API token: a member of `org_ids` (the emulated organization
        by default; an empty set: a member of none)."""
        orgs = frozenset({self.org_id}) if org_ids is None else org_ids
        user_id = max(u.id for u in self.users) + 1
        user = UserResponse(
            id=user_id,
            email=email,
            github_user_id=str(9000000 + user_id),
            github_username=name.lower().replace(" ", "-"),
            full_name=name,
            role="MEMBER",
            is_admin=False,
        )
        if self.org_id in orgs:
            self.users.append(user)
        self.tokens[token] = Caller(user=user, org_ids=orgs)
        return user

    def revoke(self, token: str) -> None:
        """The token stops working (a person revoked it in Codegen)."""
        self.tokens.pop(token, None)

    def run(self, run_id: int) -> EmulatedRun:
        return self.runs[run_id]

    def status_of(self, run_id: int) -> str:
        return self._status(self.runs[run_id])

    # -- control ---------------------------------------------------------------------------

    def set_status(self, run_id: int, status: str) -> None:
        """Pin a run's status from now on (a resume unpins it)."""
        self.runs[run_id].pinned_status = status
        self.runs[run_id].pinned_at = self.clock.now()

    def seed_run(
        self, prompt: str, *, metadata: dict[str, Any] | None, status: str, base_url: str
    ) -> EmulatedRun:
        """A run that exists already, in `status` (pinned), with no call on record: the
        starting point of benches with thousands of runs in flight."""
        body = CreateAgentRunInput(prompt=prompt, metadata=metadata)
        run = self._create_run(body, base_url=base_url)
        self.set_status(run.id, status)
        return run

    def stop(self, run_id: int) -> None:
        """What an accepted stop does: the run ends as STOPPED, `stop_seconds` from now."""
        run = self.runs[run_id]
        run.stops_at = self.clock.now() + timedelta(seconds=self.stop_seconds)

    def pull_request_run(self, pr_id: int) -> EmulatedRun | None:
        """The run whose pull request `pr_id` is (it has one once COMPLETE), else None."""
        run = self.runs.get(pr_id - FIRST_PR_ID)
        if run is None or self._status(run) != "COMPLETE":
            return None
        return run

    def clear_rate_limits(self) -> None:
        self.create_limiter.clear()
        self.read_limiter.clear()
        self.pr_edit_limiter.clear()
        self.logs_limiter.clear()

    def logs_of(self, run: EmulatedRun) -> list[dict[str, Any]]:
        """The run's logs as of now, oldest first: a step every `step_seconds` while it works
        (after PENDING, until its leg ends, it is pinned to a status that is not working, or
        a stop takes effect), and a final answer once it is COMPLETE."""
        now = self.clock.now()
        started = run.leg_started_at or run.created_at
        pending = self.pending_seconds if run.leg_has_pending else 0.0
        working_from = started + timedelta(seconds=pending)
        if run.pinned_status is None:
            until = min(now, self._leg_end(run))
        elif run.pinned_status in ("ACTIVE", "RUNNING", "EVALUATION"):
            until = now
        else:
            until = min(now, run.pinned_at or now)
        if run.stops_at is not None:
            until = min(until, run.stops_at)
        step = timedelta(seconds=self.step_seconds)
        at = max(working_from, run.last_step_at or working_from) + step
        while at <= until:
            tool, thought = AGENT_STEPS[len(run.logs) % len(AGENT_STEPS)]
            run.logs.append(
                {
                    "agent_run_id": run.id,
                    "created_at": at.isoformat(),
                    "tool_name": tool,
                    "message_type": "ACTION",
                    "thought": f"{thought} (step {len(run.logs) + 1})",
                    "observation": f"{tool} finished",
                    "tool_input": {"step": len(run.logs) + 1},
                    "tool_output": {"ok": True},
                }
            )
            run.last_step_at = at
            at += step
        if self._status(run) == "COMPLETE" and (
            not run.logs or run.logs[-1]["message_type"] != "FINAL_ANSWER"
        ):
            run.logs.append(
                {
                    "agent_run_id": run.id,
                    "created_at": now.isoformat(),
                    "tool_name": None,
                    "message_type": "FINAL_ANSWER",
                    "thought": "The change is done and a pull request is open.",
                    "observation": None,
                    "tool_input": None,
                    "tool_output": None,
                }
            )
        return run.logs

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

    def _create_run(
        self, body: CreateAgentRunInput, *, base_url: str, user_id: int | None = None
    ) -> EmulatedRun:
        run_id = self._next_run_id
        self._next_run_id += 1
        now = self.clock.now()
        run = EmulatedRun(
            id=run_id,
            organization_id=self.org_id,
            user_id=self.me.id if user_id is None else user_id,
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
        run.pinned_at = None
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
            ended = self._leg_end(run) if run.pinned_at is None else run.pinned_at
            summary = f"Done: {short_prompt}"
            result = f"I made the requested change and opened a pull request in {repo_name}."
            pull_requests = [
                {
                    "id": FIRST_PR_ID + run.id,
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

    @property
    def holding(self) -> int:
        """How many delayed answers are being held right now."""
        return len(self._holds)

    async def _hold(self, seconds: float) -> None:
        """Wait `seconds` of wall time, or less if release_holds() is called."""
        hold: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._holds.add(hold)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hold, timeout=seconds)
        finally:
            self._holds.discard(hold)
