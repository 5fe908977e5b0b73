"""A local Codegen API for tests, demos and `codegen-bot emulator --port N`.

It behaves like the documented API (paths, bodies, FastAPI-style errors, rate limits), not like
our client happens to expect, so the bot can be exercised end to end without an account.

    state = EmulatorState(clock=FakeClock())
    async with running_emulator(state) as base_url:      # uvicorn on 127.0.0.1, free port
        ...CodegenClient(base_url=base_url, token=state.token, org_id=state.org_id)...

Endpoints: POST /v1/organizations/{org_id}/agent/run, GET …/agent/run/{id}, GET …/agent/runs,
POST …/agent/run/resume, POST /v1/beta/organizations/{org_id}/agent/run/stop (undocumented;
Codegen's Raycast client calls it), PATCH …/prs/{pr_id} (a pull request's state),
GET /v1/users/me, GET …/users, GET …/repos, and a human page at GET /runs/{id} (the run's
`web_url`).

Behaviour
- People and tokens: `state.tokens` maps each accepted token to its user and organizations:
  `state.token` is `state.me`'s (user 7), `state.add_person(token, email=, name=, org_ids=)`
  adds someone with their own token (a member of the organization unless `org_ids` says
  otherwise), `state.revoke(token)` makes one stop working. `/v1/users/me` answers the
  token's user, a run belongs to the user whose token created it, and every call records
  `caller_id` (the token's user id, never the token).
- Auth: a token of `state.tokens`, else 403 PermissionsErrorResponse; a path org id the token
  does not reach is 403 too. As in FastAPI, request validation (path, query, body)
  happens first: 422 `{"detail": [{"loc": ["body", …], "msg", "type", "input"}]}`.
- Rate limits per API token, strict sliding windows on `state.clock`, checked before anything else:
  creates + resumes `create_per_minute`/60 s, every API GET `reads_per_30s`/30 s. Over the
  limit → 429 APIRateLimitErrorResponse with `Retry-After` (whole seconds until the oldest entry
  leaves the window). Refused requests do not enter the window. `state.rate_limited_count`
  counts every 429 answered (scripted ones included).
- Runs (ids from 1000) go PENDING (`pending_seconds`) → ACTIVE (`active_seconds`) → their ending
  (COMPLETE unless scripted), computed from the clock on each read. COMPLETE carries a summary,
  a result and one pull request; FAILED a summary saying why; PAUSED a question. Metadata is
  echoed as sent; source_type is "API".
- Resume: only a PAUSED run (else 422 on `agent_run_id`; unknown id → 404). The run goes back to
  ACTIVE and ends (COMPLETE unless scripted) after `active_seconds`; the prompt is recorded.
- Stop: a run in progress or PAUSED ends as STOPPED, `state.stop_seconds` later (0 by
  default); an ended one → 422, an unknown id → 404. It counts against the read window.
  `state.stop_supported = False` answers 404 "Not Found", as an API without the endpoint would.
- Pull requests: a COMPLETE run's one pull request has id 70000 + the run's id. PATCH
  …/prs/{pr_id} with `{"state": open|closed|draft|ready_for_review}` keeps the state in
  `state.pr_states[pr_id]` and answers an EditPRResponse (`success: true`); a pull request no
  completed run has → 404. Its own limit: `pr_edits_per_minute` (30) per token.
- No repositories (`state.repos = []`) → create answers 404 NoReposFoundInOrg; a `repo_id` not in
  `state.repos` → 422 on `repo_id`.

Scripting (`state.script`); each entry is used once, in order (`times=n` queues n of them),
by the next call that passes the rate limit, validation and auth:
- `fail_next_create(status, *, message=None, retry_after=None, detail=None, after_creating=False)`
  the next create answers `status` (402/403/404/422/429/5xx/…). `retry_after` (seconds or an
  HTTP date string) becomes the Retry-After header. `after_creating=True` creates the run first
  (a 5xx that happened after the work was done: the ambiguous case).
- `fail_next_resume(status, …)`, `fail_next_read(status, …, kind=None)` the same for resumes /
  any GET (or only the next GET of `kind`, e.g. "list_users");
  `fail_next_stop(status, *, message=None)` for the next stop;
  `fail_next_pr_edit(status, *, message=None, retry_after=None)` for the next pull request
  edit, and `refuse_next_pr_edit(error)` makes it answer 200 `{"success": false, "error"}`.
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
get_run, list_runs, stop_run, current_user, list_users, list_repos (and web_page).

Delays are wall time and end early when the server stops; everything else uses `state.clock`.

The package, at its seams: state.py (what the emulator knows), scripting.py (what it is told to
do next), app.py (the HTTP face). Serving goes through bot.serving: `running_emulator(state)`
(async context manager, yields the base URL), and `serve(...)` for `codegen-bot emulator`.
A test that does not need a socket reaches the app in-process instead:
`httpx.ASGITransport(app=create_emulator_app(state))`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from bot.devtools.emulator.app import create_emulator_app
from bot.devtools.emulator.scripting import EmulatorScript, ScriptedFailure
from bot.devtools.emulator.state import (
    CREATE_RUN,
    CURRENT_USER,
    FIRST_RUN_ID,
    GET_RUN,
    LIST_REPOS,
    LIST_RUNS,
    LIST_USERS,
    RESUME_RUN,
    WEB_PAGE,
    EmulatedRun,
    EmulatorState,
    ReceivedCall,
    SlidingWindowLimiter,
    default_repos,
    most_in_window,
)
from bot.serving import serve_http

__all__ = [
    "CREATE_RUN",
    "CURRENT_USER",
    "FIRST_RUN_ID",
    "GET_RUN",
    "LIST_REPOS",
    "LIST_RUNS",
    "LIST_USERS",
    "RESUME_RUN",
    "WEB_PAGE",
    "EmulatedRun",
    "EmulatorScript",
    "EmulatorState",
    "ReceivedCall",
    "ScriptedFailure",
    "SlidingWindowLimiter",
    "create_emulator_app",
    "default_repos",
    "most_in_window",
    "running_emulator",
    "serve",
]


@contextlib.asynccontextmanager
async def running_emulator(
    state: EmulatorState | None = None, *, port: int = 0
) -> AsyncIterator[str]:
    """Serve `state` on 127.0.0.1 (port 0: a free one) in this loop; yields the base URL."""
    state = state or EmulatorState()
    async with serve_http(
        create_emulator_app(state), host="127.0.0.1", port=port, before_stop=state.release_holds
    ) as bound:
        yield f"http://127.0.0.1:{bound}"


def serve(*, port: int, token: str, org_id: int, token_is_secret: bool) -> None:
    """Serve the emulator on 127.0.0.1:`port` until SIGINT/SIGTERM (`codegen-bot emulator`).

    `token_is_secret`: the token came from CODEGEN_API_TOKEN, so it is not printed."""
    state = EmulatorState(token=token, org_id=org_id)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        async with running_emulator(state, port=port) as url:
            shown_token = "(your CODEGEN_API_TOKEN)" if token_is_secret else state.token
            print(
                f"Codegen emulator listening on {url}\n"
                f"  CODEGEN_API_URL={url}\n"
                f"  CODEGEN_API_TOKEN={shown_token}\n"
                f"  CODEGEN_ORG_ID={state.org_id}",
                flush=True,
            )
            await stop.wait()

    asyncio.run(main())
