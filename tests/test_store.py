"""The store's promises, on SQLite and on the real PostgreSQL: one claimer per row, fenced
writes, shared budgets, de-duplicated events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from bot.clock import FakeClock
from bot.store.db import create_engine
from bot.store.store import REPLY_FINAL, Store, new_lease_owner
from bot.store.tables import QueuedRequest, RequestStatus, TrackedRun


def make_request(clock: FakeClock, **overrides: object) -> QueuedRequest:
    now = clock.now()
    fields: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "org_id": 1,
        "prompt": "fix the login page",
        "images": [],
        "skipped_files": [],
        "options": {},
        "run_metadata": {},
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "trigger": "slash_command",
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }
    fields.update(overrides)
    return QueuedRequest(**fields)


def make_run(clock: FakeClock, run_id: int, request_id: str, **overrides: object) -> TrackedRun:
    now = clock.now()
    fields: dict[str, object] = {
        "id": run_id,
        "org_id": 1,
        "request_id": request_id,
        "status": "PENDING",
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "thread_ts": "100.1",
        "next_poll_at": now,
        "poll_interval": 5.0,
        "created_at": now,
        "started_at": now,
        "last_change_at": now,
    }
    fields.update(overrides)
    return TrackedRun(**fields)


async def test_concurrent_claimers_never_receive_the_same_row(
    database_url: str, store: Store, clock: FakeClock
) -> None:
    total = 120
    for index in range(total):
        await store.add_request(
            make_request(clock, created_at=clock.now() + timedelta(milliseconds=index))
        )
    # Separate engines: separate connection pools, as separate replicas would have.
    engines = [create_engine(database_url) for _ in range(4)]
    stores = [Store(engine) for engine in engines]
    claimed: list[str] = []

    async def claimer(replica: Store, name: str) -> None:
        while True:
            rows = await replica.claim_requests(
                owner=new_lease_owner(name), now=clock.now(), lease_seconds=60, limit=7
            )
            if not rows:
                return
            claimed.extend(row.id for row in rows)

    try:
        await asyncio.gather(
            *(claimer(replica, f"r{i}") for i, replica in enumerate(stores) for _ in range(2))
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert len(claimed) == total
    assert len(set(claimed)) == total


async def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out(
    store: Store, clock: FakeClock
) -> None:
    request = await store.add_request(make_request(clock))
    first = new_lease_owner("a")
    assert [
        r.id
        for r in await store.claim_requests(
            owner=first, now=clock.now(), lease_seconds=30, limit=10
        )
    ] == [request.id]
    # While the lease holds, nobody else gets it.
    assert (
        await store.claim_requests(
            owner=new_lease_owner("b"), now=clock.now(), lease_seconds=30, limit=10
        )
        == []
    )
    clock.advance(31)
    second = new_lease_owner("b")
    assert (
        len(await store.claim_requests(owner=second, now=clock.now(), lease_seconds=30, limit=10))
        == 1
    )
    assert not await store.record_failed(request.id, owner=first, error="x", now=clock.now())
    assert await store.record_failed(request.id, owner=second, error="402", now=clock.now())
    row = await store.get_request(request.id)
    assert row is not None and row.status == RequestStatus.FAILED and row.error == "402"


async def test_requests_wait_for_their_next_attempt(store: Store, clock: FakeClock) -> None:
    request = await store.add_request(make_request(clock))
    owner = new_lease_owner("a")
    await store.claim_requests(owner=owner, now=clock.now(), lease_seconds=30, limit=1)
    later = clock.now() + timedelta(seconds=20)
    assert await store.record_retry(
        request.id,
        owner=owner,
        next_attempt_at=later,
        ambiguous=True,
        error="timeout",
        now=clock.now(),
    )
    assert (
        await store.claim_requests(
            owner=new_lease_owner("a"), now=clock.now(), lease_seconds=30, limit=1
        )
        == []
    )
    clock.advance(20)
    rows = await store.claim_requests(
        owner=new_lease_owner("a"), now=clock.now(), lease_seconds=30, limit=1
    )
    assert [(r.id, r.attempts, r.ambiguous) for r in rows] == [(request.id, 1, True)]


async def test_dispatch_records_the_run_and_closes_the_request_atomically(
    store: Store, clock: FakeClock
) -> None:
    request = await store.add_request(make_request(clock))
    owner = new_lease_owner("a")
    await store.claim_requests(owner=owner, now=clock.now(), lease_seconds=30, limit=1)
    assert await store.record_dispatched(
        request.id, owner=owner, run=make_run(clock, 1001, request.id), now=clock.now()
    )
    saved = await store.get_request(request.id)
    assert saved is not None and saved.status == RequestStatus.DISPATCHED and saved.run_id == 1001
    latest = await store.latest_run_in_thread(channel_id="C1", thread_ts="100.1")
    assert latest is not None and latest.id == 1001
    # A second dispatch of the same request by a stale holder is refused.
    assert not await store.record_dispatched(
        request.id, owner=owner, run=make_run(clock, 1002, request.id), now=clock.now()
    )


async def test_status_and_final_reply_are_marked_once(store: Store, clock: FakeClock) -> None:
    request = await store.add_request(make_request(clock))
    await store.record_dispatched(
        request.id,
        owner=await _claim_one(store, clock),
        run=make_run(clock, 7, request.id),
        now=clock.now(),
    )
    runs = await store.claim_runs(
        owner=(owner := new_lease_owner("a")), now=clock.now(), lease_seconds=30, limit=10
    )
    assert [r.id for r in runs] == [7]
    assert await store.mark_notified(7, owner=owner, status="ACTIVE")
    assert not await store.mark_notified(7, owner=owner, status="ACTIVE")
    assert not await store.mark_notified(7, owner="someone-else", status="COMPLETE")
    assert await store.begin_reply(7, owner=owner, kind=REPLY_FINAL) == "post"
    # A crash here leaves 'posting': the next holder must look before posting again.
    assert await store.begin_reply(7, owner=owner, kind=REPLY_FINAL) == "check"
    assert await store.finish_reply(7, owner=owner, kind=REPLY_FINAL, ts="200.2")
    assert await store.begin_reply(7, owner=owner, kind=REPLY_FINAL) is None


async def _claim_one(store: Store, clock: FakeClock) -> str:
    owner = new_lease_owner("d")
    await store.claim_requests(owner=owner, now=clock.now(), lease_seconds=30, limit=1)
    return owner


async def test_budget_never_allows_more_than_the_limit_in_any_window(
    database_url: str, store: Store, clock: FakeClock
) -> None:
    engines = [create_engine(database_url) for _ in range(3)]
    replicas = [Store(engine) for engine in engines]
    granted = []
    try:
        for _step in range(40):
            results = await asyncio.gather(
                *(
                    r.try_spend(org_id=1, bucket="create", limit=10, window=60, now=clock.now())
                    for r in replicas
                )
            )
            granted.extend(clock.now() for wait in results if wait == 0)
            clock.advance(5)
    finally:
        for engine in engines:
            await engine.dispose()
    for start in granted:
        in_window = [t for t in granted if start <= t < start + timedelta(seconds=60)]
        assert len(in_window) <= 10
    # 200 s of offers at 3 per 5 s: the budget, not the offers, sets the pace.
    assert len(granted) >= 30


async def test_a_block_from_429_stops_spending_until_it_ends(
    store: Store, clock: FakeClock
) -> None:
    until = clock.now() + timedelta(seconds=42)
    await store.block_budget(org_id=1, bucket="create", until=until, now=clock.now())
    wait = await store.try_spend(org_id=1, bucket="create", limit=10, window=60, now=clock.now())
    assert wait == 42
    clock.advance(42)
    assert (
        await store.try_spend(org_id=1, bucket="create", limit=10, window=60, now=clock.now()) == 0
    )


async def test_a_slack_event_is_seen_once(store: Store, clock: FakeClock) -> None:
    assert await store.first_sighting("Ev1", now=clock.now())
    assert not await store.first_sighting("Ev1", now=clock.now())


async def test_channel_defaults_set_and_reset(store: Store, clock: FakeClock) -> None:
    await store.set_channel_defaults(
        "C1", values={"repo": "acme/web", "model": None}, user_id="U1", now=clock.now()
    )
    await store.set_channel_defaults("C1", values={"model": "gpt"}, user_id="U2", now=clock.now())
    row = await store.channel_defaults("C1")
    assert row is not None and (row.repo, row.model, row.updated_by) == ("acme/web", "gpt", "U2")
    await store.reset_channel_defaults("C1")
    assert await store.channel_defaults("C1") is None
