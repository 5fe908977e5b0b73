"""The repository catalog: every page of the organization's repositories, names resolved with
the closest ones offered. The emulator is reached in-process: no socket is needed here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.clock import FakeClock
from bot.codegen.client import CodegenClient
from bot.devtools.emulator import EmulatorState, create_emulator_app, default_repos
from bot.errors import LookupUnavailable, RequestRefused
from bot.intake.catalog import RepoCatalog

ORG_ID = 3
TOKEN = "catalog-test-token"


@pytest.fixture
def state(clock: FakeClock) -> EmulatorState:
    return EmulatorState(token=TOKEN, org_id=ORG_ID, clock=clock)


@pytest.fixture
async def client(state: EmulatorState) -> AsyncIterator[CodegenClient]:
    transport = httpx.ASGITransport(app=create_emulator_app(state))
    async with CodegenClient(
        base_url="http://emulator", token=TOKEN, org_id=ORG_ID, transport=transport, read_retries=0
    ) as client:
        yield client


async def test_every_page_is_read(
    client: CodegenClient, state: EmulatorState, clock: FakeClock
) -> None:
    template = default_repos(ORG_ID)[0]
    state.repos = [
        template.model_copy(update={"id": 1 + i, "full_name": f"acme/r{i}"}) for i in range(230)
    ]
    repos = await RepoCatalog(codegen=client, clock=clock).repos()
    assert [r.id for r in repos] == list(range(1, 231))
    assert [c.query["skip"] for c in state.calls("list_repos")] == ["0", "100", "200"]


async def test_names_resolve_and_typos_get_the_closest(
    client: CodegenClient, clock: FakeClock
) -> None:
    catalog = RepoCatalog(codegen=client, clock=clock)
    assert await catalog.resolve("ACME/Web") == (101, "acme/web")
    assert await catalog.resolve("102") == (102, "acme/api")
    with pytest.raises(RequestRefused) as refused:
        await catalog.resolve("acme/webb")
    assert "Closest: `acme/web`" in refused.value.message


async def test_the_list_is_cached_and_an_old_one_beats_none(
    client: CodegenClient, state: EmulatorState, clock: FakeClock
) -> None:
    catalog = RepoCatalog(codegen=client, clock=clock, ttl=300)
    first = await catalog.repos()
    assert await catalog.repos() == first
    assert len(state.calls("list_repos")) == 1
    clock.advance(301)
    state.script.fail_next_read(503)
    assert await catalog.repos() == first  # it asked again, failed, and kept the last list
    assert [c.status for c in state.calls("list_repos")] == [200, 503]


async def test_codegen_down_before_any_list_is_a_lookup_to_try_later(
    client: CodegenClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.script.fail_next_read(503)
    with pytest.raises(LookupUnavailable):
        await RepoCatalog(codegen=client, clock=clock).resolve("acme/web")
