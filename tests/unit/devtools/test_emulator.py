"""The emulator behaves like the documented Codegen API (raw HTTP, no client of ours)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.clock import FakeClock
from bot.devtools.emulator import EmulatorState, create_emulator_app, running_emulator
from tests.unit.codegen.support import ORG_ID, SECRET_TOKEN

RUNS = f"/v1/organizations/{ORG_ID}/agent/runs"
RUN = f"/v1/organizations/{ORG_ID}/agent/run"
RESUME = f"/v1/organizations/{ORG_ID}/agent/run/resume"
AUTH = {"Authorization": f"Bearer {SECRET_TOKEN}"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def state(clock: FakeClock) -> EmulatorState:
    return EmulatorState(token=SECRET_TOKEN, org_id=ORG_ID, clock=clock)


@pytest.fixture
async def http(state: EmulatorState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_emulator_app(state))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://emulator.test", headers=AUTH
    ) as client:
        yield client


async def create(http: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await http.post(RUN, json={"prompt": "Fix the login bug", **body})


# -- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": ""},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {SECRET_TOKEN}"},
    ],
)
async def test_a_wrong_or_missing_token_is_forbidden(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answer = await http.post(RUN, json={"prompt": "x"}, headers=headers)
    assert answer.status_code == 403
    assert answer.json() == {
        "message": "You do not have access to this organization.",
        "status_code": 403,
    }
    assert (await http.get("/v1/users/me", headers=headers)).status_code == 403


async def test_another_org_is_forbidden(http: httpx.AsyncClient, state: EmulatorState) -> None:
    assert (await http.get(f"/v1/organizations/{ORG_ID + 1}/agent/runs")).status_code == 403
    answer = await http.post(f"/v1/organizations/{ORG_ID + 1}/agent/run", json={"prompt": "x"})
    assert answer.status_code == 403
    assert state.runs == {}


async def test_the_token_is_never_recorded(http: httpx.AsyncClient, state: EmulatorState) -> None:
    await create(http)
    await http.get(RUNS)
    assert state.received
    assert SECRET_TOKEN not in repr(state.received)
    assert SECRET_TOKEN not in repr(state)


# -- validation --------------------------------------------------------------------------------


async def test_missing_prompt_is_a_fastapi_style_422(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    answer = await http.post(RUN, json={"repo_id": 101})
    assert answer.status_code == 422
    [item] = answer.json()["detail"]
    assert item["loc"] == ["body", "prompt"]
    assert item["type"] == "missing"
    assert item["msg"] == "Field required"
    assert state.runs == {}


async def test_unknown_fields_and_bad_values_are_refused(http: httpx.AsyncClient) -> None:
    answer = await create(http, priority="high", agent_type="gpt")
    assert answer.status_code == 422
    found = {(tuple(i["loc"]), i["type"]) for i in answer.json()["detail"]}
    assert found == {
        (("body", "priority"), "extra_forbidden"),
        (("body", "agent_type"), "literal_error"),
    }


async def test_bodies_that_are_not_json_objects(http: httpx.AsyncClient) -> None:
    json_header = {"Content-Type": "application/json"}
    broken = await http.post(RUN, content=b"{not json", headers=json_header)
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["type"] == "json_invalid"
    assert broken.json()["detail"][0]["loc"][0] == "body"

    empty = await http.post(RUN)
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["loc"] == ["body"]

    a_list = await http.post(RUN, json=["prompt"])
    assert a_list.status_code == 422


async def test_validation_comes_before_auth_as_in_fastapi(http: httpx.AsyncClient) -> None:
    answer = await http.post(RUN, json={}, headers={"Authorization": "Bearer nope"})
    assert answer.status_code == 422


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("limit=0", ["query", "limit"]),
        ("limit=101", ["query", "limit"]),
        ("skip=-1", ["query", "skip"]),
        ("user_id=abc", ["query", "user_id"]),
        ("source_type=CARRIER_PIGEON", ["query", "source_type"]),
    ],
)
async def test_query_parameters_are_validated(
    http: httpx.AsyncClient, query: str, loc: list[str]
) -> None:
    answer = await http.get(f"{RUNS}?{query}")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == loc


async def test_path_parameters_are_validated(http: httpx.AsyncClient) -> None:
    answer = await http.get(f"{RUN}/not-a-number")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["path", "agent_run_id"]


async def test_unknown_paths_answer_like_fastapi(http: httpx.AsyncClient) -> None:
    answer = await http.get("/v1/nothing-here")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "Not Found"}
    assert (await http.delete(RUN)).status_code == 405


# -- rate limits -------------------------------------------------------------------------------


async def test_exactly_ten_creates_a_minute_then_429_until_the_window_slides(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    for _ in range(10):
        assert (await create(http)).status_code == 200
    refused = await create(http)
    assert refused.status_code == 429
    assert refused.json() == {
        "message": "Rate limit exceeded. Please try again later.",
        "status_code": 429,
    }
    assert refused.headers["Retry-After"] == "60"

    clock.advance(59.5)
    late = await create(http)
    assert late.status_code == 429
    assert late.headers["Retry-After"] == "1"

    clock.advance(0.5)  # the first ten leave the window exactly 60 s after they were made
    assert (await create(http)).status_code == 200
    assert state.rate_limited_count == 2
    assert len(state.runs) == 11


async def test_the_create_window_slides_entry_by_entry(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    for _ in range(5):
        assert (await create(http)).status_code == 200
    clock.advance(30)
    for _ in range(5):
        assert (await create(http)).status_code == 200
    clock.advance(15)  # t=45: all ten still inside the window
    refused = await create(http)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "15"
    clock.advance(15)  # t=60: the first five have left
    for _ in range(5):
        assert (await create(http)).status_code == 200
    assert (await create(http)).status_code == 429
    assert state.rate_limited_count == 2


async def test_resumes_share_the_create_budget(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.script.next_run_ends("PAUSED")
    run_id = (await create(http)).json()["id"]
    clock.advance(10)
    for _ in range(9):
        assert (await create(http)).status_code == 200
    answer = await http.post(RESUME, json={"agent_run_id": run_id, "prompt": "go on"})
    assert answer.status_code == 429


async def test_sixty_reads_per_thirty_seconds(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    for i in range(60):
        path = RUNS if i % 2 else "/v1/users/me"
        assert (await http.get(path)).status_code == 200
    refused = await http.get(RUNS)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    # Reads and creates are separate budgets.
    assert (await create(http)).status_code == 200
    clock.advance(30)
    assert (await http.get(RUNS)).status_code == 200
    assert state.rate_limited_count == 1


async def test_refused_requests_do_not_extend_the_window(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    for _ in range(10):
        await create(http)
    for _ in range(5):
        clock.advance(10)
        assert (await create(http)).status_code == 429
    clock.advance(10)  # t=60: hammering in between did not push the window out
    assert (await create(http)).status_code == 200


# -- lifecycle ---------------------------------------------------------------------------------


async def test_a_run_goes_pending_active_complete_on_the_clock(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    metadata = {
        "source": "slack",
        "request_id": "3f1c",
        "slack": {"team_id": "T1", "channel_id": "C1", "thread_ts": "1.2", "n": [1, None, 2.5]},
    }
    created = await create(http, metadata=metadata, repo_id=102)
    run = created.json()
    assert created.status_code == 200
    assert run["id"] == 1000
    assert run["organization_id"] == ORG_ID
    assert run["status"] == "PENDING"
    assert run["source_type"] == "API"
    assert run["metadata"] == metadata
    assert run["web_url"].endswith("/runs/1000")
    assert run["github_pull_requests"] == []

    clock.advance(1.0)
    assert (await http.get(f"{RUN}/1000")).json()["status"] == "ACTIVE"
    clock.advance(2.9)
    assert (await http.get(f"{RUN}/1000")).json()["status"] == "ACTIVE"
    clock.advance(0.1)
    done = (await http.get(f"{RUN}/1000")).json()
    assert done["status"] == "COMPLETE"
    assert done["summary"]
    assert done["result"]
    [pr] = done["github_pull_requests"]
    assert set(pr) == {"id", "title", "url", "created_at", "head_branch_name"}
    assert pr["url"].startswith("https://github.com/acme/api/pull/")
    assert done["metadata"] == metadata


async def test_a_scripted_failure_ends_with_an_explanation(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.script.next_run_ends("FAILED")
    state.script.next_run_ends("MAX_ITERATIONS_REACHED")
    first = (await create(http)).json()["id"]
    second = (await create(http)).json()["id"]
    third = (await create(http)).json()["id"]
    clock.advance(10)
    failed = (await http.get(f"{RUN}/{first}")).json()
    assert failed["status"] == "FAILED"
    assert "could not finish" in failed["summary"]
    assert failed["github_pull_requests"] == []
    assert (await http.get(f"{RUN}/{second}")).json()["status"] == "MAX_ITERATIONS_REACHED"
    assert (await http.get(f"{RUN}/{third}")).json()["status"] == "COMPLETE"


async def test_set_status_pins_a_run(http: httpx.AsyncClient, state: EmulatorState) -> None:
    run_id = (await create(http)).json()["id"]
    state.set_status(run_id, "EVALUATION")
    assert (await http.get(f"{RUN}/{run_id}")).json()["status"] == "EVALUATION"
    state.set_status(run_id, "COMPLETE")
    assert len((await http.get(f"{RUN}/{run_id}")).json()["github_pull_requests"]) == 1
    assert state.status_of(run_id) == "COMPLETE"


async def test_unknown_run_is_404(http: httpx.AsyncClient) -> None:
    answer = await http.get(f"{RUN}/999999")
    assert answer.status_code == 404
    assert answer.json() == {"message": "Agent run not found.", "status_code": 404}


# -- resume ------------------------------------------------------------------------------------


async def test_a_paused_run_resumes_and_then_completes(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.script.next_run_ends("PAUSED")
    run_id = (await create(http)).json()["id"]
    clock.advance(4)
    paused = (await http.get(f"{RUN}/{run_id}")).json()
    assert paused["status"] == "PAUSED"
    assert paused["result"]  # the agent's question

    resumed = await http.post(RESUME, json={"agent_run_id": run_id, "prompt": "Use main"})
    assert resumed.status_code == 200
    assert resumed.json()["status"] == "ACTIVE"
    assert state.resume_bodies() == [{"agent_run_id": run_id, "prompt": "Use main"}]
    assert state.run(run_id).resume_prompts == ["Use main"]

    clock.advance(3)
    assert (await http.get(f"{RUN}/{run_id}")).json()["status"] == "COMPLETE"


async def test_only_a_paused_run_can_be_resumed(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    run_id = (await create(http)).json()["id"]
    active = await http.post(RESUME, json={"agent_run_id": run_id, "prompt": "more"})
    assert active.status_code == 422
    assert active.json()["detail"][0]["loc"] == ["body", "agent_run_id"]
    unknown = await http.post(RESUME, json={"agent_run_id": 424242, "prompt": "more"})
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "Agent run not found."
    assert state.resume_bodies() == []


async def test_a_resume_can_pause_again(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.script.next_run_ends("PAUSED")
    state.script.next_resume_ends("PAUSED")
    run_id = (await create(http)).json()["id"]
    clock.advance(4)
    await http.post(RESUME, json={"agent_run_id": run_id, "prompt": "one"})
    clock.advance(3)
    assert state.status_of(run_id) == "PAUSED"
    await http.post(RESUME, json={"agent_run_id": run_id, "prompt": "two"})
    clock.advance(3)
    assert state.status_of(run_id) == "COMPLETE"
    assert state.run(run_id).resume_prompts == ["one", "two"]


# -- lists -------------------------------------------------------------------------------------


async def test_runs_are_listed_newest_first_with_paging(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    for _ in range(5):
        await create(http)
        clock.advance(1)
    page = (await http.get(f"{RUNS}?limit=2&skip=2")).json()
    assert [r["id"] for r in page["items"]] == [1002, 1001]
    assert (page["total"], page["page"], page["size"], page["pages"]) == (5, 2, 2, 3)
    everything = (await http.get(RUNS)).json()
    assert [r["id"] for r in everything["items"]] == [1004, 1003, 1002, 1001, 1000]


async def test_runs_made_in_the_same_instant_are_still_newest_first(
    http: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        await create(http)
    assert [r["id"] for r in (await http.get(RUNS)).json()["items"]] == [1002, 1001, 1000]


async def test_run_filters(http: httpx.AsyncClient, state: EmulatorState) -> None:
    await create(http)
    mine = (await http.get(f"{RUNS}?user_id={state.me.id}&source_type=API")).json()
    assert mine["total"] == 1
    assert (await http.get(f"{RUNS}?user_id=999")).json()["total"] == 0
    assert (await http.get(f"{RUNS}?source_type=SLACK")).json()["items"] == []


async def test_users_and_repos(http: httpx.AsyncClient, state: EmulatorState) -> None:
    me = (await http.get("/v1/users/me")).json()
    assert me["id"] == state.me.id
    assert me["github_username"]
    users = (await http.get(f"/v1/organizations/{ORG_ID}/users?limit=1")).json()
    assert users["total"] == 2
    assert len(users["items"]) == 1
    repos = (await http.get(f"/v1/organizations/{ORG_ID}/repos")).json()
    names = [r["full_name"] for r in repos["items"]]
    assert "acme/web" in names
    assert "acme/api" in names
    assert all(r["organization_id"] == ORG_ID for r in repos["items"])


async def test_no_repos_means_create_answers_404(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.repos = []
    answer = await create(http)
    assert answer.status_code == 404
    assert answer.json() == {
        "message": "No repos found in the organization. Please add some repos and try again.",
        "status_code": 404,
    }
    assert (await http.get(f"/v1/organizations/{ORG_ID}/repos")).json()["items"] == []
    assert state.created_bodies() == []


async def test_an_unknown_repo_is_refused(http: httpx.AsyncClient) -> None:
    answer = await create(http, repo_id=99999)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "repo_id"]


# -- records and scripting ---------------------------------------------------------------------


async def test_everything_received_is_recorded(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    await create(http, metadata={"k": "v"})
    clock.advance(2)
    await http.get(f"{RUNS}?limit=5")
    await http.post(RUN, json={})
    assert [(c.kind, c.status) for c in state.received] == [
        ("create_run", 200),
        ("list_runs", 200),
        ("create_run", 422),
    ]
    listed = state.calls("list_runs")[0]
    assert listed.query == {"limit": "5"}
    assert listed.at == clock.now()
    assert listed.method == "GET"
    assert state.created_bodies() == [{"prompt": "Fix the login bug", "metadata": {"k": "v"}}]


async def test_scripted_create_failures_are_used_once_in_order(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.script.fail_next_create(402)
    state.script.fail_next_create(429, retry_after=12)
    state.script.fail_next_create(503, message="upstream down")
    first = await create(http)
    assert first.status_code == 402
    assert first.json()["message"].startswith("Alloted agent runs")
    second = await create(http)
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "12"
    third = await create(http)
    assert third.status_code == 503
    assert third.text == "upstream down"
    assert (await create(http)).status_code == 200
    assert state.rate_limited_count == 1
    assert len(state.runs) == 1


async def test_a_failure_after_creating_leaves_the_run(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.script.fail_next_create(500, after_creating=True)
    assert (await create(http)).status_code == 500
    assert len(state.runs) == 1
    assert len(state.created_bodies()) == 1


async def test_scripted_read_failures(http: httpx.AsyncClient, state: EmulatorState) -> None:
    state.script.fail_next_read(404, message="gone", times=2)
    assert (await http.get("/v1/users/me")).json()["message"] == "gone"
    assert (await http.get(RUNS)).status_code == 404
    assert (await http.get(RUNS)).status_code == 200


async def test_a_scripted_422_can_carry_its_own_detail(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    detail = [{"loc": ["body", "images", 0], "msg": "Image too large", "type": "value_error"}]
    state.script.fail_next_create(422, detail=detail)
    answer = await create(http)
    assert answer.json() == {"detail": detail}


# -- over real HTTP ----------------------------------------------------------------------------


async def test_running_emulator_serves_on_loopback(state: EmulatorState) -> None:
    async with running_emulator(state) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=base_url, headers=AUTH) as client:
            run = (await client.post(RUN, json={"prompt": "<b>hi</b>"})).json()
            assert run["web_url"] == f"{base_url}/runs/{run['id']}"
            page = await client.get(f"/runs/{run['id']}", headers={"Authorization": ""})
            assert page.status_code == 200
            assert "&lt;b&gt;hi&lt;/b&gt;" in page.text


# -- people and their tokens -------------------------------------------------------------------


async def test_each_token_is_a_person_with_their_own_runs_and_limits(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    erin = state.add_person("erin-token-0001", email="erin@example.com", name="Erin Example")
    outsider = state.add_person(
        "out-token-0001", email="o@example.com", name="O", org_ids=frozenset()
    )
    theirs = {"Authorization": "Bearer erin-token-0001"}
    me = (await http.get("/v1/users/me", headers=theirs)).json()
    assert (me["id"], me["email"]) == (erin.id, "erin@example.com")
    assert erin in state.users and outsider not in state.users  # the org's member list

    made = await http.post(RUN, json={"prompt": "hers"}, headers=theirs)
    assert made.status_code == 200
    [call] = state.calls("create_run")
    assert call.caller_id == erin.id  # which token made it, without keeping the token
    assert state.run(made.json()["id"]).user_id == erin.id

    # Limits are per token: the organization's token still has all its creates.
    for _ in range(9):
        assert (await http.post(RUN, json={"prompt": "x"}, headers=theirs)).status_code == 200
    assert (await http.post(RUN, json={"prompt": "x"}, headers=theirs)).status_code == 429
    assert (await create(http)).status_code == 200

    # A token of nobody in the organization, and a revoked one, are refused.
    outside = {"Authorization": "Bearer out-token-0001"}
    assert (await http.get(RUNS, headers=outside)).status_code == 403
    state.revoke("erin-token-0001")
    assert (await http.get("/v1/users/me", headers=theirs)).status_code == 403


# -- run logs (alpha) --------------------------------------------------------------------------


async def test_logs_grow_as_a_run_works_and_stop_when_it_ends(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.active_seconds = 12  # pending 1 s, then a step every 3 s: four steps
    run_id = (await create(http)).json()["id"]
    logs = f"/v1/alpha/organizations/{ORG_ID}/agent/run/{run_id}/logs"
    assert (await http.get(logs)).json()["logs"] == []  # still PENDING
    clock.advance(7.5)
    first = (await http.get(logs)).json()
    assert [e["tool_name"] for e in first["logs"]] == ["ripgrep_search", "file_view"]
    assert {e["message_type"] for e in first["logs"]} == {"ACTION"}
    clock.advance(60)
    done = (await http.get(logs, params={"reverse": "true", "limit": 2})).json()
    assert done["status"] == "COMPLETE"
    assert (done["total_logs"], done["page"], done["size"], done["pages"]) == (5, 1, 2, 3)
    assert [e["message_type"] for e in done["logs"]] == ["FINAL_ANSWER", "ACTION"]
    assert done["logs"][1]["tool_name"] == "run_command"
    assert (await http.get(logs, params={"limit": 0})).status_code == 422
    assert (await http.get(f"/v1/alpha/organizations/{ORG_ID}/agent/run/9/logs")).json() == {
        "message": "Agent run not found.",
        "status_code": 404,
    }


async def test_logs_allow_sixty_a_minute_apart_from_reads_and_can_be_missing(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    run_id = (await create(http)).json()["id"]
    logs = f"/v1/alpha/organizations/{ORG_ID}/agent/run/{run_id}/logs"
    for _ in range(60):
        assert (await http.get(logs)).status_code == 200
    refused = await http.get(logs)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) == 60
    assert (await http.get(f"{RUN}/{run_id}")).status_code == 200  # reads are counted apart
    assert len(state.calls("run_logs")) == 61 and len(state.calls("get_run")) == 1
    clock.advance(60)
    state.logs_supported = False
    missing = await http.get(logs)
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
