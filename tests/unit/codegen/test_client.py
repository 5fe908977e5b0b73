"""CodegenClient against the emulator over real HTTP on loopback, plus its pure helpers."""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.clock import FakeClock, full_jitter, parse_retry_after
from bot.codegen.client import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, CodegenClient
from bot.codegen.models import CreateAgentRunInput, ResumeAgentRunInput
from bot.devtools.emulator import EmulatorState, create_emulator_app, running_emulator
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
from bot.http_clients import shared_tls
from bot.serving import serve_http
from tests.unit.codegen.support import (
    ORG_ID,
    SECRET_TOKEN,
    RecordingObserver,
    RecordingSleep,
    closed_loopback_port,
)

ClientFactory = Callable[..., CodegenClient]


# One server for the whole module (starting and stopping uvicorn costs ~0.2 s); each test
# gets its own EmulatorState behind it, so the tests share nothing but the socket.
pytestmark = pytest.mark.asyncio(loop_scope="module")


class CurrentEmulator:
    """An ASGI app that forwards to the emulator of the test being run."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no emulator installed for this test"
        await self.app(scope, receive, send)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[tuple[CurrentEmulator, str]]:
    current = CurrentEmulator()
    async with serve_http(current, host="127.0.0.1", port=0) as port:
        yield current, f"http://127.0.0.1:{port}"


@pytest.fixture
def install(server: tuple[CurrentEmulator, str]) -> Iterator[Callable[[EmulatorState], str]]:
    """Put a state behind the shared server; returns the base URL."""
    current, url = server
    installed: list[EmulatorState] = []

    def use(state: EmulatorState) -> str:
        current.app = create_emulator_app(state)
        installed.append(state)
        return url

    yield use
    for state in installed:
        state.release_holds()  # end answers a test left hanging
    current.app = None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> EmulatorState:
    return EmulatorState(token=SECRET_TOKEN, org_id=ORG_ID, clock=clock)


@pytest.fixture
def base_url(state: EmulatorState, install: Callable[[EmulatorState], str]) -> str:
    return install(state)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest_asyncio.fixture(loop_scope="module")
async def make_client(
    base_url: str, clock: FakeClock, sleep: RecordingSleep, observer: RecordingObserver
) -> AsyncIterator[ClientFactory]:
    made: list[CodegenClient] = []

    def factory(**overrides: Any) -> CodegenClient:
        options: dict[str, Any] = {
            "base_url": base_url,
            "token": SECRET_TOKEN,
            "org_id": ORG_ID,
            "timeout": 5.0,
            "sleep": sleep,
            "observer": observer,
            "clock": clock,
            "rng": random.Random(7),
        }
        options.update(overrides)
        client = CodegenClient(**options)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.aclose()


@pytest.fixture
def client(make_client: ClientFactory) -> CodegenClient:
    return make_client()


PROMPT = CreateAgentRunInput(prompt="Fix the login bug")


# -- the happy paths ---------------------------------------------------------------------------


async def test_create_sends_only_the_fields_that_are_set(
    client: CodegenClient, state: EmulatorState, observer: RecordingObserver
) -> None:
    metadata = {"source": "slack", "request_id": "r-1", "slack": {"channel_id": "C1"}}
    body = CreateAgentRunInput(
        prompt="Add a dark mode",
        images=["data:image/png;base64,iVBORw0KGgo="],
        metadata=metadata,
        repo_id=101,
        agent_type="claude_code",
    )
    run = await client.create_run(body)
    assert run.id == 1000
    assert run.status == "PENDING"
    assert run.metadata == metadata
    assert state.created_bodies() == [
        {
            "prompt": "Add a dark mode",
            "images": ["data:image/png;base64,iVBORw0KGgo="],
            "metadata": metadata,
            "repo_id": 101,
            "agent_type": "claude_code",
        }
    ]
    assert observer.events == [("create_run", 200)]


async def test_get_run_follows_the_lifecycle(client: CodegenClient, clock: FakeClock) -> None:
    created = await client.create_run(PROMPT)
    clock.advance(2)
    assert (await client.get_run(created.id)).status == "ACTIVE"
    clock.advance(5)
    done = await client.get_run(created.id)
    assert done.status == "COMPLETE"
    assert done.summary
    assert done.github_pull_requests is not None
    assert done.github_pull_requests[0].url
    assert done.web_url == created.web_url


async def test_list_runs_with_filters(
    client: CodegenClient, state: EmulatorState, clock: FakeClock
) -> None:
    for _ in range(3):
        await client.create_run(PROMPT)
        clock.advance(1)
    page = await client.list_runs(user_id=state.me.id, source_type="API", limit=2)
    assert [r.id for r in page.items] == [1002, 1001]
    assert (page.total, page.pages) == (3, 2)
    assert (await client.list_runs(skip=2, limit=2)).items[0].id == 1000
    assert state.calls("list_runs")[0].query == {
        "skip": "0",
        "limit": "2",
        "user_id": str(state.me.id),
        "source_type": "API",
    }


async def test_resume_a_paused_run(
    client: CodegenClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.script.next_run_ends("PAUSED")
    run = await client.create_run(PROMPT)
    clock.advance(5)
    assert (await client.get_run(run.id)).status == "PAUSED"
    resumed = await client.resume_run(ResumeAgentRunInput(agent_run_id=run.id, prompt="Use main"))
    assert resumed.status == "ACTIVE"
    assert state.resume_bodies() == [{"agent_run_id": run.id, "prompt": "Use main"}]


async def test_a_pull_request_state_is_patched_and_a_refusal_on_200_comes_back_as_it_is(
    client: CodegenClient, state: EmulatorState, clock: FakeClock
) -> None:
    run = await client.create_run(PROMPT)
    clock.advance(10)
    [pr] = (await client.get_run(run.id)).github_pull_requests or []
    answer = await client.set_pull_request_state(pr.id, "ready_for_review")
    assert (answer.success, answer.state, answer.number) == (True, "ready_for_review", run.id)
    [call] = state.calls("set_pull_request_state")
    assert (call.method, call.path) == ("PATCH", f"/v1/organizations/{ORG_ID}/prs/{pr.id}")
    assert call.json == {"state": "ready_for_review"}
    state.script.refuse_next_pr_edit("Pull request is already merged")
    refused = await client.set_pull_request_state(pr.id, "closed")
    assert (refused.success, refused.error) == (False, "Pull request is already merged")
    assert state.pr_states == {pr.id: "ready_for_review"}
    with pytest.raises(NotFound):
        await client.set_pull_request_state(pr.id + 1, "draft")
    with pytest.raises(ValidationError):  # a state the API lacks is never sent
        await client.set_pull_request_state(pr.id, "merged")  # type: ignore[arg-type]
    # The 31st in a minute is refused, and not retried (the caller's budget decides).
    for _ in range(27):
        await client.set_pull_request_state(pr.id, "draft")
    with pytest.raises(RateLimited):
        await client.set_pull_request_state(pr.id, "open")
    assert len(state.calls("set_pull_request_state")) == 31


async def test_users_and_repos(client: CodegenClient, state: EmulatorState) -> None:
    me = await client.current_user()
    assert me.id == state.me.id
    repos = await client.list_repos()
    assert {r.full_name for r in repos.items} >= {"acme/web", "acme/api"}
    assert client.org_id == ORG_ID


async def test_run_logs_pages_through_the_steps_newest_first(
    client: CodegenClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.active_seconds = 30
    run = await client.create_run(PROMPT)
    clock.advance(1 + 3 * 7)  # pending, then seven steps
    newest = await client.run_logs(run.id, limit=5)
    assert (newest.id, newest.status, newest.total_logs, newest.pages) == (run.id, "ACTIVE", 7, 2)
    assert (newest.logs[0].thought or "").endswith("(step 7)")
    assert [entry.tool_name for entry in newest.logs[:2]] == ["file_edit", "file_view"]
    oldest = await client.run_logs(run.id, limit=5, skip=5, reverse=False)
    assert oldest.page == 2
    assert [entry.thought for entry in oldest.logs] == [
        "Reading the handler to see what it does now (step 6)",
        "Making the change the request asks for (step 7)",
    ]
    assert state.calls("run_logs")[0].query == {"skip": "0", "limit": "5", "reverse": "true"}


async def test_404_on_run_logs_tells_a_missing_run_from_a_missing_endpoint(
    client: CodegenClient, state: EmulatorState
) -> None:
    with pytest.raises(RunNotFound):
        await client.run_logs(31337, limit=5)
    state.logs_supported = False
    with pytest.raises(NoLogsEndpoint) as caught:
        await client.run_logs(31337, limit=5)
    assert not isinstance(caught.value, RunNotFound)


# -- errors ------------------------------------------------------------------------------------


async def test_402_is_plan_limit_reached_with_the_servers_message(
    client: CodegenClient, state: EmulatorState
) -> None:
    state.script.fail_next_create(402, message="Your plan allows 50 runs a month.")
    with pytest.raises(PlanLimitReached) as caught:
        await client.create_run(PROMPT)
    assert caught.value.message == "Your plan allows 50 runs a month."
    assert caught.value.status_code == 402


async def test_403_is_forbidden(make_client: ClientFactory) -> None:
    client = make_client(token="someone-elses-token")
    with pytest.raises(Forbidden) as caught:
        await client.create_run(PROMPT)
    assert caught.value.message == "You do not have access to this organization."
    with pytest.raises(Forbidden):
        await client.get_run(1000)  # not retried: a 403 will not go away


async def test_404_on_create_means_no_repos(client: CodegenClient, state: EmulatorState) -> None:
    state.repos = []
    with pytest.raises(NoReposFound) as caught:
        await client.create_run(PROMPT)
    assert "No repos found" in caught.value.message


async def test_404_on_get_and_resume_means_run_not_found(
    client: CodegenClient, sleep: RecordingSleep
) -> None:
    with pytest.raises(RunNotFound) as caught:
        await client.get_run(31337)
    assert caught.value.message == "Agent run not found."
    with pytest.raises(RunNotFound):
        await client.resume_run(ResumeAgentRunInput(agent_run_id=31337, prompt="x"))
    assert sleep.delays == []


async def test_404_on_other_reads_is_not_found(client: CodegenClient, state: EmulatorState) -> None:
    state.script.fail_next_read(404, message="No such organization.")
    with pytest.raises(NotFound) as caught:
        await client.list_repos()
    assert not isinstance(caught.value, RunNotFound | NoReposFound)
    assert caught.value.message == "No such organization."


async def test_422_carries_the_detail_list(client: CodegenClient) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await client.create_run(CreateAgentRunInput(prompt="x", repo_id=424242))
    error = caught.value
    assert error.fields() == ["repo_id"]
    assert error.detail[0]["loc"] == ["body", "repo_id"]
    assert "repo_id" in error.message
    assert "424242" in error.message


async def test_422_on_resume_of_a_run_that_is_not_paused(client: CodegenClient) -> None:
    run = await client.create_run(PROMPT)
    with pytest.raises(InvalidRequest) as caught:
        await client.resume_run(ResumeAgentRunInput(agent_run_id=run.id, prompt="more"))
    assert caught.value.fields() == ["agent_run_id"]


async def test_429_with_retry_after_in_seconds(client: CodegenClient, state: EmulatorState) -> None:
    state.script.fail_next_create(429, retry_after=30)
    with pytest.raises(RateLimited) as caught:
        await client.create_run(PROMPT)
    assert caught.value.retry_after == 30.0
    assert caught.value.message == "Rate limit exceeded. Please try again later."


async def test_429_with_retry_after_as_an_http_date(
    client: CodegenClient, state: EmulatorState, clock: FakeClock
) -> None:
    when = clock.now() + timedelta(seconds=45)
    state.script.fail_next_create(429, retry_after=format_datetime(when, usegmt=True))
    with pytest.raises(RateLimited) as caught:
        await client.create_run(PROMPT)
    assert caught.value.retry_after == 45.0


async def test_429_without_retry_after_uses_the_default(
    client: CodegenClient, state: EmulatorState
) -> None:
    state.script.fail_next_create(429)
    with pytest.raises(RateLimited) as caught:
        await client.create_run(PROMPT)
    assert caught.value.retry_after == 60.0


async def test_the_emulators_own_limiter_reaches_the_client_as_rate_limited(
    make_client: ClientFactory, state: EmulatorState
) -> None:
    client = make_client()
    for _ in range(10):
        await client.create_run(PROMPT)
    with pytest.raises(RateLimited) as caught:
        await client.create_run(PROMPT)
    assert caught.value.retry_after == 60.0
    assert state.rate_limited_count == 1


async def test_500_on_create_is_ambiguous_and_not_retried(
    client: CodegenClient,
    state: EmulatorState,
    sleep: RecordingSleep,
    observer: RecordingObserver,
) -> None:
    state.script.fail_next_create(500, after_creating=True)
    with pytest.raises(Unavailable) as caught:
        await client.create_run(PROMPT)
    assert caught.value.status_code == 500
    assert caught.value.ambiguous
    assert caught.value.retryable
    assert len(state.calls("create_run")) == 1
    assert sleep.delays == []
    assert observer.events == [("create_run", 500)]
    assert len(state.runs) == 1  # it did happen: the dispatcher must look before sending again


async def test_resume_is_not_retried(client: CodegenClient, state: EmulatorState) -> None:
    state.script.fail_next_resume(503)
    with pytest.raises(Unavailable):
        await client.resume_run(ResumeAgentRunInput(agent_run_id=1, prompt="x"))
    assert len(state.calls("resume_run")) == 1


async def test_a_slow_create_times_out_as_ambiguous(
    make_client: ClientFactory, state: EmulatorState
) -> None:
    client = make_client(timeout=0.2)
    state.script.delay_next_create(5)
    with pytest.raises(Unavailable) as caught:
        await client.create_run(PROMPT)
    assert caught.value.ambiguous
    assert caught.value.status_code is None


async def test_create_then_hang_leaves_a_run_the_client_never_heard_of(
    make_client: ClientFactory, state: EmulatorState
) -> None:
    client = make_client(timeout=0.2)
    state.script.create_then_hang(5)
    body = CreateAgentRunInput(prompt="x", metadata={"request_id": "req-77"})
    with pytest.raises(Unavailable) as caught:
        await client.create_run(body)
    assert caught.value.ambiguous
    # What the dispatcher will do next: find its request_id among recent runs.
    recent = await make_client().list_runs(limit=20)
    assert [r.metadata for r in recent.items] == [{"request_id": "req-77"}]


async def test_nothing_listening_is_unavailable_and_not_ambiguous(
    make_client: ClientFactory, observer: RecordingObserver
) -> None:
    client = make_client(base_url=f"http://127.0.0.1:{closed_loopback_port()}", read_retries=0)
    with pytest.raises(Unavailable) as caught:
        await client.create_run(PROMPT)
    assert not caught.value.ambiguous
    assert observer.events == [("create_run", None)]


def _raising(error: type[httpx.TransportError]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("simulated", request=request)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("error", "ambiguous"),
    [
        (httpx.ConnectTimeout, False),
        (httpx.ConnectError, False),
        (httpx.PoolTimeout, False),
        (httpx.ReadTimeout, True),
        (httpx.WriteTimeout, True),
        (httpx.RemoteProtocolError, True),
        (httpx.ReadError, True),
    ],
)
async def test_transport_errors_say_whether_the_request_may_have_arrived(
    make_client: ClientFactory, error: type[httpx.TransportError], ambiguous: bool
) -> None:
    client = make_client(transport=_raising(error))
    with pytest.raises(Unavailable) as caught:
        await client.create_run(PROMPT)
    assert caught.value.ambiguous is ambiguous


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"organization_id": 1}),  # no id
        httpx.Response(200, json=[1, 2, 3]),
        httpx.Response(418, json={"message": "I'm a teapot"}),
    ],
)
async def test_bodies_that_do_not_fit_are_unexpected(
    make_client: ClientFactory, response: httpx.Response
) -> None:
    client = make_client(transport=httpx.MockTransport(lambda request: response))
    with pytest.raises(UnexpectedResponse) as caught:
        await client.get_run(1)
    assert caught.value.status_code == response.status_code
    assert not caught.value.retryable


async def test_an_error_body_that_is_not_json_still_gets_the_documented_message(
    make_client: ClientFactory,
) -> None:
    client = make_client(
        transport=httpx.MockTransport(lambda request: httpx.Response(402, text="nope"))
    )
    with pytest.raises(PlanLimitReached) as caught:
        await client.create_run(PROMPT)
    assert caught.value.message.startswith("Alloted agent runs")


# -- read retries ------------------------------------------------------------------------------


async def test_reads_retry_5xx_with_full_jitter_backoff(
    client: CodegenClient,
    state: EmulatorState,
    sleep: RecordingSleep,
    observer: RecordingObserver,
) -> None:
    run = await client.create_run(PROMPT)
    state.script.fail_next_read(503, times=2)
    assert (await client.get_run(run.id)).id == run.id
    assert len(sleep.delays) == 2
    assert 0 <= sleep.delays[0] <= 0.5
    assert 0 <= sleep.delays[1] <= 1.0
    assert observer.events[1:] == [("get_run", 503), ("get_run", 503), ("get_run", 200)]


async def test_reads_give_up_after_read_retries(
    make_client: ClientFactory, state: EmulatorState, sleep: RecordingSleep
) -> None:
    client = make_client(read_retries=3)
    state.script.fail_next_read(502, times=10)
    with pytest.raises(Unavailable) as caught:
        await client.list_runs()
    assert caught.value.status_code == 502
    assert len(state.calls("list_runs")) == 4  # one attempt and three retries
    assert len(sleep.delays) == 3


async def test_a_short_429_on_a_read_is_waited_out(
    client: CodegenClient, state: EmulatorState, sleep: RecordingSleep
) -> None:
    state.script.fail_next_read(429, retry_after=2)
    assert (await client.current_user()).id == state.me.id
    assert sleep.delays == [2.0]


async def test_a_long_429_on_a_read_goes_back_to_the_caller(
    make_client: ClientFactory,
    install: Callable[[EmulatorState], str],
    sleep: RecordingSleep,
    clock: FakeClock,
) -> None:
    state = EmulatorState(token=SECRET_TOKEN, org_id=ORG_ID, clock=clock, reads_per_30s=2)
    client = make_client(base_url=install(state))
    await client.current_user()
    await client.list_repos()
    with pytest.raises(RateLimited) as caught:
        await client.current_user()
    assert caught.value.retry_after == 30.0
    assert sleep.delays == []
    assert state.rate_limited_count == 1


async def test_a_read_that_times_out_is_retried(
    make_client: ClientFactory, state: EmulatorState, sleep: RecordingSleep
) -> None:
    client = make_client(timeout=0.2)
    state.script.delay_next_read(5)
    assert (await client.current_user()).id == state.me.id
    assert len(sleep.delays) == 1


async def test_backoff_delay_is_bounded_by_the_doubling_ceiling() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 8.0)]:
        delays = [
            full_jitter(
                attempt, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS, rand=rng.random()
            )
            for _ in range(200)
        ]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the whole range


# -- observer ----------------------------------------------------------------------------------


async def test_a_broken_observer_does_not_break_calls(
    make_client: ClientFactory, state: EmulatorState
) -> None:
    def explode(endpoint: str, status: int | None) -> None:
        raise RuntimeError("metrics down")

    client = make_client(observer=explode)
    assert (await client.current_user()).id == state.me.id


async def test_every_endpoint_reports_its_name(
    client: CodegenClient, state: EmulatorState, observer: RecordingObserver, clock: FakeClock
) -> None:
    state.script.next_run_ends("PAUSED")
    run = await client.create_run(PROMPT)
    clock.advance(10)
    await client.get_run(run.id)
    await client.list_runs()
    await client.resume_run(ResumeAgentRunInput(agent_run_id=run.id, prompt="go"))
    await client.current_user()
    await client.list_repos()
    assert [name for name, _ in observer.events] == [
        "create_run",
        "get_run",
        "list_runs",
        "resume_run",
        "current_user",
        "list_repos",
    ]


# -- the token stays secret --------------------------------------------------------------------


async def test_the_token_never_appears_in_errors_repr_or_logs(
    make_client: ClientFactory, state: EmulatorState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(timeout=0.2, read_retries=1)
    errors: list[CodegenError] = []

    async def collect(call: Any) -> None:
        try:
            await call
        except CodegenError as error:
            errors.append(error)

    for status in (402, 403, 404, 422, 429, 500):
        state.script.fail_next_create(status, retry_after=3 if status == 429 else None)
        await collect(client.create_run(PROMPT))
    state.script.fail_next_read(503, times=2)
    await collect(client.get_run(1))
    state.script.create_then_hang(5)
    await collect(client.create_run(PROMPT))
    unreachable = make_client(base_url=f"http://127.0.0.1:{closed_loopback_port()}")
    await collect(unreachable.current_user())
    broken = make_client(transport=httpx.MockTransport(lambda r: httpx.Response(200, text="x")))
    await collect(broken.get_run(1))

    assert len(errors) == 10
    for error in errors:
        assert SECRET_TOKEN not in str(error)
        assert SECRET_TOKEN not in repr(error)
        assert SECRET_TOKEN not in repr(vars(error))
    assert SECRET_TOKEN not in repr(client)
    assert SECRET_TOKEN not in str(client)
    assert "retry" in caplog.text  # the retry was logged ...
    assert SECRET_TOKEN not in caplog.text  # ... without the token
    for record in caplog.records:
        assert SECRET_TOKEN not in record.getMessage()


async def test_the_token_is_sent_as_a_bearer_header(make_client: ClientFactory) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 1, "organization_id": ORG_ID})

    await make_client(transport=httpx.MockTransport(handler)).get_run(1)
    assert seen[0].headers["Authorization"] == f"Bearer {SECRET_TOKEN}"
    assert SECRET_TOKEN not in str(seen[0].url)


async def test_running_emulator_serves_the_client(state: EmulatorState) -> None:
    async with (
        running_emulator(state) as url,
        CodegenClient(base_url=url, token=SECRET_TOKEN, org_id=ORG_ID) as client,
    ):
        run = await client.create_run(PROMPT)
        assert run.web_url == f"{url}/runs/{run.id}"


async def test_the_http_client_and_its_tls_context_are_made_at_the_first_request(
    state: EmulatorState,
) -> None:
    """Start-up makes no TLS context (the CA bundle, about 20 ms); the first request does,
    once, and every later client asking the same shared_tls gets that one."""
    made: list[ssl.SSLContext] = []
    shared = shared_tls()

    def tls() -> ssl.SSLContext:
        context = shared()
        made.append(context)
        return context

    async with running_emulator(state) as url:
        first = CodegenClient(base_url=url, token=SECRET_TOKEN, org_id=ORG_ID, verify=tls)
        second = CodegenClient(base_url=url, token=SECRET_TOKEN, org_id=ORG_ID, verify=tls)
        assert made == []
        await first.current_user()
        await first.current_user()
        assert len(made) == 1
        await second.current_user()
        assert len(made) == 2 and made[0] is made[1]
        await first.aclose()
        await second.aclose()
    never_used = CodegenClient(base_url=url, token=SECRET_TOKEN, org_id=ORG_ID, verify=tls)
    await never_used.aclose()
    with pytest.raises(RuntimeError):
        await never_used.current_user()  # closed before it was ever made
    assert len(made) == 2


async def test_the_client_is_an_async_context_manager(base_url: str) -> None:
    async with CodegenClient(base_url=base_url, token=SECRET_TOKEN, org_id=ORG_ID) as client:
        assert (await client.current_user()).github_username
    with pytest.raises(RuntimeError):
        await client.current_user()  # closed


# -- Retry-After parsing -----------------------------------------------------------------------
# (pure functions, written async only because the module's tests share one event loop)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        ("999999", 3600.0),
        (format_datetime(NOW + timedelta(seconds=45), usegmt=True), 45.0),
        ("Thu, 01 Jan 2026 12:02:00 -0000", 120.0),
        (format_datetime(NOW - timedelta(seconds=45), usegmt=True), 0.0),
        (None, 60.0),
        ("", 60.0),
        ("soon", 60.0),
        ("nan", 60.0),
        ("inf", 60.0),
    ],
)
async def test_parse_retry_after(value: str | None, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


async def test_parse_retry_after_default_is_configurable() -> None:
    assert parse_retry_after("garbage", now=NOW, default=5.0) == 5.0
