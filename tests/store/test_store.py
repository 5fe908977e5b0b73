"""The store's promises, on SQLite and on the real PostgreSQL: one claimer per row, fenced
writes, shared budgets, de-duplicated events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from bot.clock import FakeClock
from bot.requests import StoredOptions, Trigger
from bot.store.budgets import Window
from bot.store.db import create_engine
from bot.store.leases import new_lease_owner
from bot.store.requests import new_request
from bot.store.runs import ReplyStep
from bot.store.store import Store
from bot.store.tables import QueuedRequest, ReplyKind, RequestStatus, TrackedRun


def make_request(clock: FakeClock, **overrides: object) -> QueuedRequest:
    now = clock.now()
    fields: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "org_id": 1,
        "prompt": "fix the login page",
        "images": [],
        "skipped_files": [],
        "options": StoredOptions(),
        "run_metadata": {},
        "team_id": "T1",
        "channel_id": "C1",
        "user_id": "U1",
        "trigger": Trigger.SLASH_COMMAND,
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
        await store.requests.add(
            make_request(clock, created_at=clock.now() + timedelta(milliseconds=index))
        )
    # Separate engines: separate connection pools, as separate replicas would have.
    engines = [create_engine(database_url) for _ in range(4)]
    stores = [Store(engine) for engine in engines]
    claimed: list[str] = []

    async def claimer(replica: Store, name: str) -> None:
        while True:
            rows = await replica.requests.claim_due(
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
    request = make_request(clock)
    assert await store.requests.add(request)
    first = new_lease_owner("a")
    assert [
        r.id
        for r in await store.requests.claim_due(
            owner=first, now=clock.now(), lease_seconds=30, limit=10
        )
    ] == [request.id]
    # While the lease holds, nobody else gets it.
    assert (
        await store.requests.claim_due(
            owner=new_lease_owner("b"), now=clock.now(), lease_seconds=30, limit=10
        )
        == []
    )
    clock.advance(31)
    second = new_lease_owner("b")
    assert (
        len(
            await store.requests.claim_due(
                owner=second, now=clock.now(), lease_seconds=30, limit=10
            )
        )
        == 1
    )
    assert not await store.requests.record_failed(
        request.id, owner=first, error="x", now=clock.now()
    )
    assert await store.requests.record_failed(
        request.id, owner=second, error="402", now=clock.now()
    )
    row = await store.requests.get(request.id)
    assert row is not None and row.status == RequestStatus.FAILED and row.error == "402"


async def test_requests_wait_for_their_next_attempt(store: Store, clock: FakeClock) -> None:
    request = make_request(clock)
    assert await store.requests.add(request)
    owner = new_lease_owner("a")
    await store.requests.claim_due(owner=owner, now=clock.now(), lease_seconds=30, limit=1)
    later = clock.now() + timedelta(seconds=20)
    assert await store.requests.record_retry(
        request.id,
        owner=owner,
        next_attempt_at=later,
        ambiguous=True,
        error="timeout",
        now=clock.now(),
    )
    assert (
        await store.requests.claim_due(
            owner=new_lease_owner("a"), now=clock.now(), lease_seconds=30, limit=1
        )
        == []
    )
    clock.advance(20)
    rows = await store.requests.claim_due(
        owner=new_lease_owner("a"), now=clock.now(), lease_seconds=30, limit=1
    )
    assert [(r.id, r.attempts, r.ambiguous) for r in rows] == [(request.id, 1, True)]


async def test_dispatch_records_the_run_and_closes_the_request_atomically(
    store: Store, clock: FakeClock
) -> None:
    request = make_request(clock)
    assert await store.requests.add(request)
    owner = new_lease_owner("a")
    await store.requests.claim_due(owner=owner, now=clock.now(), lease_seconds=30, limit=1)
    assert await store.requests.record_dispatched(
        request.id, owner=owner, run=make_run(clock, 1001, request.id), now=clock.now()
    )
    saved = await store.requests.get(request.id)
    assert saved is not None and saved.status == RequestStatus.DISPATCHED and saved.run_id == 1001
    latest = await store.runs.latest_in_thread(channel_id="C1", thread_ts="100.1")
    assert latest is not None and latest.id == 1001
    # A second dispatch of the same request by a stale holder is refused.
    assert not await store.requests.record_dispatched(
        request.id, owner=owner, run=make_run(clock, 1002, request.id), now=clock.now()
    )


async def test_status_and_final_reply_are_marked_once(store: Store, clock: FakeClock) -> None:
    request = make_request(clock)
    assert await store.requests.add(request)
    await store.requests.record_dispatched(
        request.id,
        owner=await claim_one(store, clock),
        run=make_run(clock, 7, request.id),
        now=clock.now(),
    )
    runs = await store.runs.claim_to_read(
        owner=(owner := new_lease_owner("a")),
        now=clock.now(),
        read_before=clock.now(),
        lease_seconds=30,
        limit=10,
    )
    assert [r.id for r in runs] == [7]
    assert await store.runs.mark_notified(7, owner=owner, key="ACTIVE")
    assert not await store.runs.mark_notified(7, owner=owner, key="ACTIVE")
    assert not await store.runs.mark_notified(7, owner="someone-else", key="COMPLETE")
    assert await store.runs.begin_reply(7, owner=owner, kind=ReplyKind.FINAL) is ReplyStep.POST
    # A crash here leaves 'posting': the next holder must look before posting again.
    assert await store.runs.begin_reply(7, owner=owner, kind=ReplyKind.FINAL) is ReplyStep.CHECK
    assert await store.runs.finish_reply(
        7, owner=owner, kind=ReplyKind.FINAL, ts="200.2", close=True
    )
    assert await store.runs.begin_reply(7, owner=owner, kind=ReplyKind.FINAL) is None


async def spend(store: Store, now: datetime) -> float:
    """One create from org 1's budget of 10 a minute: 0.0, or the wait."""
    spent = await store.budgets.try_spend(
        org_id=1, windows=[Window("create", 10, 60)], clock=lambda: now
    )
    return spent.wait


async def claim_one(store: Store, clock: FakeClock) -> str:
    owner = new_lease_owner("d")
    await store.requests.claim_due(owner=owner, now=clock.now(), lease_seconds=30, limit=1)
    return owner


async def test_budget_never_allows_more_than_the_limit_in_any_window(
    database_url: str, store: Store, clock: FakeClock
) -> None:
    engines = [create_engine(database_url) for _ in range(3)]
    replicas = [Store(engine) for engine in engines]
    granted = []
    try:
        for _step in range(40):
            results = await asyncio.gather(*(spend(r, clock.now()) for r in replicas))
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
    await store.budgets.block(org_id=1, bucket="create", until=until, now=clock.now())
    assert await spend(store, clock.now()) == 42
    clock.advance(42)
    assert await spend(store, clock.now()) == 0


async def test_a_spend_from_two_windows_takes_a_slot_in_each_or_none(
    database_url: str, store: Store, clock: FakeClock
) -> None:
    """A Slack post spends from its channel's window and its method's, whose rows are locked
    and counted together: replicas posting to two channels at once never overfill either
    window nor wait on each other, and a blocked window holds the other one back."""
    engines = [create_engine(database_url) for _ in range(4)]
    replicas = [Store(engine) for engine in engines]
    method = Window("post", 6, 60)
    granted: list[tuple[str, datetime]] = []

    async def post(replica: Store, channel: str) -> None:
        now = clock.now()
        spent = await replica.budgets.try_spend(
            org_id=2, windows=[method, Window(channel, 4, 60)], clock=lambda: now
        )
        if spent.wait == 0:
            assert len(spent.spend_ids) == 2
            granted.append((channel, now))
        else:
            assert spent.full_bucket in ("post", channel) and not spent.spend_ids

    try:
        for _step in range(12):
            channels = ["chan-a", "chan-b", "chan-a", "chan-b"]
            await asyncio.gather(*(post(r, c) for r, c in zip(replicas, channels, strict=True)))
            clock.advance(10)
    finally:
        for engine in engines:
            await engine.dispose()
    for _channel, start in granted:
        in_window = [(c, t) for c, t in granted if start <= t < start + timedelta(seconds=60)]
        assert len(in_window) <= 6
        for name in ("chan-a", "chan-b"):
            assert len([t for c, t in in_window if c == name]) <= 4
    assert len(granted) >= 12  # 120 s at 6 a minute: the method's window sets the pace

    clock.advance(120)  # both windows empty again; chan-c is blocked for 30 s from here
    until = clock.now() + timedelta(seconds=30)
    await store.budgets.block(org_id=2, bucket="chan-c", until=until, now=clock.now())
    held = await store.budgets.try_spend(
        org_id=2,
        windows=[method, Window("chan-c", 4, 60)],
        clock=lambda: until - timedelta(seconds=5),
    )
    assert (held.wait, held.full_bucket, held.spend_ids) == (5, "chan-c", ())
    free = await store.budgets.try_spend(
        org_id=2, windows=[method, Window("chan-c", 4, 60)], clock=lambda: until
    )
    assert free.wait == 0 and free.in_window == {"chan-c": 1, "post": 1}


async def test_a_slack_event_is_seen_once(store: Store, clock: FakeClock) -> None:
    assert await store.events.first_sighting("Ev1", now=clock.now())
    assert not await store.events.first_sighting("Ev1", now=clock.now())


async def test_channel_defaults_set_and_reset(store: Store, clock: FakeClock) -> None:
    await store.channels.set_defaults(
        "C1", values={"repo": "acme/web", "model": None}, user_id="U1", now=clock.now()
    )
    await store.channels.set_defaults("C1", values={"model": "gpt"}, user_id="U2", now=clock.now())
    row = await store.channels.defaults("C1")
    assert row is not None and (row.repo, row.model, row.updated_by) == ("acme/web", "gpt", "U2")
    await store.channels.reset("C1", user_id="U3", now=clock.now())
    assert await store.channels.defaults("C1") is None
    # Every change is recorded, the last one first.
    last = await store.channels.last_change("C1")
    assert last is not None and last.user_id == "U3"
    assert (last.before, last.after) == (
        {"repo": "acme/web", "model": "gpt", "agent_type": None},
        {"repo": None, "model": None, "agent_type": None},
    )


async def test_a_replica_renews_and_takes_back_only_its_own_leases(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    owners = {
        "mine": new_lease_owner("bot_a"),
        "mine lapsed": new_lease_owner("bot_a"),
        "look-alike": new_lease_owner("botXa"),  # `_` is a LIKE wildcard: must not match
        "longer id": new_lease_owner("bot_a2"),
        "other": new_lease_owner("bot-b"),
    }
    expiry = {name: now + timedelta(seconds=5) for name in owners}
    expiry["mine lapsed"] = now - timedelta(seconds=1)
    ids = {}
    for name, owner in owners.items():
        row = make_request(clock, lease_owner=owner, lease_expires_at=expiry[name])
        assert await store.requests.add(row)
        ids[name] = row.id

    async def leases() -> dict[str, tuple[str | None, datetime | None]]:
        found = {}
        for name, request_id in ids.items():
            row = await store.requests.get(request_id)
            assert row is not None
            expires = row.lease_expires_at.replace(tzinfo=None) if row.lease_expires_at else None
            found[name] = (row.lease_owner, expires)
        return found

    later = now + timedelta(seconds=2)
    assert await store.leases.renew("bot_a", now=later, lease_seconds=20) == 1
    held = await leases()
    assert held["mine"] == (owners["mine"], (later + timedelta(seconds=20)).replace(tzinfo=None))
    for name in ("mine lapsed", "look-alike", "longer id", "other"):
        assert held[name] == (owners[name], expiry[name].replace(tzinfo=None))

    assert await store.leases.take_back("bot_a") == 2  # live or lapsed, both were its own
    held = await leases()
    assert held["mine"] == held["mine lapsed"] == (None, None)
    assert [held[n][0] for n in ("look-alike", "longer id", "other")] == [
        owners["look-alike"],
        owners["longer id"],
        owners["other"],
    ]


async def test_adding_a_request_records_its_delivery_once(store: Store, clock: FakeClock) -> None:
    first = make_request(clock)
    assert await store.requests.add(first, dedupe_key="C1:1.000001")
    assert not await store.requests.add(make_request(clock), dedupe_key="C1:1.000001")
    assert [r.id for r in await store.requests.pending(org_id=1)] == [first.id]
    assert not await store.events.first_sighting("C1:1.000001", now=clock.now())


async def test_requests_added_at_once_share_transactions_and_each_gets_its_answer(
    store: Store, clock: FakeClock
) -> None:
    rows = [make_request(clock) for _ in range(30)]
    keys: list[str | None] = [f"C1:{n}.000001" if n % 3 else None for n in range(30)]
    keys[29] = keys[28]  # the same delivery twice, in the same burst
    added = await asyncio.gather(
        *(store.requests.add(row, dedupe_key=key) for row, key in zip(rows, keys, strict=True))
    )
    assert added == [True] * 29 + [False]
    assert store.requests._adds.batches < 30  # the burst did not take 30 transactions
    pending = {r.id for r in await store.requests.pending(org_id=1)}
    assert pending == {row.id for row in rows[:29]}
    # The defaults are on the objects the preparer goes on with, as a flush would leave them.
    assert (rows[0].attempts, rows[0].prepared, rows[0].ambiguous) == (0, False, False)


async def test_a_request_the_database_refuses_fails_alone(store: Store, clock: FakeClock) -> None:
    good, bad, also_good = make_request(clock), make_request(clock), make_request(clock)
    bad.prompt = None  # type: ignore[assignment]  # NOT NULL: refused on both databases
    results = await asyncio.gather(
        *(store.requests.add(row) for row in (good, bad, also_good)), return_exceptions=True
    )
    assert results[0] is True and results[2] is True
    assert isinstance(results[1], Exception)
    pending = {r.id for r in await store.requests.pending(org_id=1)}
    assert pending == {good.id, also_good.id}


async def test_a_spend_restamped_when_its_call_left_counts_from_then(
    store: Store, clock: FakeClock
) -> None:
    async def take() -> float | tuple[int, ...]:
        spent = await store.budgets.try_spend(
            org_id=1, windows=[Window("create", 1, 60)], clock=clock.now
        )
        return spent.spend_ids if spent.wait == 0 else spent.wait

    first = await take()
    assert isinstance(first, tuple) and len(first) == 1
    left = clock.now() + timedelta(seconds=13)  # a slow write came between spend and send
    await store.budgets.restamp(first, at=left)
    await store.budgets.restamp(first, at=clock.now())  # never moved earlier
    clock.advance(60)
    assert await take() == 13  # counted from when it left, not from when it was spent


async def test_personal_tokens_are_kept_replaced_rejected_once_and_deleted(
    store: Store, clock: FakeClock
) -> None:
    from bot.store.tables import PersonalToken

    def token(sealed: str, fingerprint: str) -> PersonalToken:
        return PersonalToken(
            slack_user_id="U1",
            sealed_token=sealed,
            fingerprint=fingerprint,
            codegen_user_id=7,
            codegen_email="dev@example.com",
            created_at=clock.now(),
        )

    await store.tokens.put(token("sealed-1", "a" * 16))
    await store.tokens.put(token("sealed-2", "b" * 16))  # a new login replaces the old
    row = await store.tokens.get("U1")
    assert row is not None and (row.sealed_token, row.fingerprint) == ("sealed-2", "b" * 16)
    # Rejected once, for the token it was (an older token's rejection changes nothing).
    assert not await store.tokens.mark_rejected("U1", fingerprint="a" * 16, now=clock.now())
    assert await store.tokens.mark_rejected("U1", fingerprint="b" * 16, now=clock.now())
    assert not await store.tokens.mark_rejected("U1", fingerprint="b" * 16, now=clock.now())
    await store.tokens.reseal("U1", sealed_token="sealed-3")
    assert [r.sealed_token for r in await store.tokens.all()] == ["sealed-3"]
    assert await store.tokens.delete("U1")
    assert not await store.tokens.delete("U1")
    assert await store.tokens.get("U1") is None


async def test_home_tabs_are_published_in_turn_and_follow_their_persons_runs(
    store: Store, clock: FakeClock
) -> None:
    quiet = timedelta(seconds=10)
    opened = await store.homes.opened(team_id="T1", user_id="U1", now=clock.now())
    [stale] = await store.homes.stale(now=clock.now(), quiet=quiet, limit=10)  # never published
    assert (stale.user_id, stale.published_at) == ("U1", None)
    # Two replicas read the same row: one of them publishes.
    first = await store.homes.claim(team_id="T1", user_id="U1", read=None, now=clock.now())
    second = await store.homes.claim(team_id="T1", user_id="U1", read=None, now=clock.now())
    assert (first, second) == (True, False)
    assert await store.homes.stale(now=clock.now(), quiet=quiet, limit=10) == []

    clock.advance(3)
    request = make_request(clock)
    await store.requests.add(request)  # another person's run would not count
    await store.requests.add(make_request(clock, user_id="U2"))
    assert await store.homes.stale(now=clock.now(), quiet=quiet, limit=10) == []  # too soon
    clock.advance(7)
    [stale] = await store.homes.stale(now=clock.now(), quiet=quiet, limit=10)
    published = stale.published_at
    assert published is not None and opened.opened_at <= published
    assert await store.homes.claim(team_id="T1", user_id="U1", read=published, now=clock.now())
    # A publish that failed puts the time back, so the next pass tries again.
    await store.homes.unclaim(team_id="T1", user_id="U1", claimed=clock.now(), back_to=published)
    assert len(await store.homes.stale(now=clock.now(), quiet=quiet, limit=10)) == 1


async def _vm_steps_of_optimize(url: str) -> int:
    """SQLite virtual-machine instructions (in hundreds) that Store.optimize executes: the
    work it does, counted the same way on every machine. It writes, so it runs on the store's
    writer connection (bot.store.transactions): the one counted."""
    engine = create_engine(url)
    store = Store(engine)
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    def count_on(connection: Connection) -> None:
        connection.connection.driver_connection.set_progress_handler(count, 100)

    try:
        assert store.transactions.on_thread, "the writer connection is a SQLite file's"
        await store.transactions.run(count_on)
        await store.optimize()
    finally:
        await store.dispose()
    return steps


def _columns(row: QueuedRequest | TrackedRun) -> dict[str, object]:
    """The values `row` sets, for a Core insert of many like it (unset ones take defaults)."""
    return {
        column.key: value
        for column in type(row).__table__.columns
        if (value := getattr(row, column.key)) is not None
    }


async def _add_history(url: str, clock: FakeClock, ids: range) -> None:
    """Finished runs and their requests, as the tables keep them."""
    request = _columns(make_request(clock, status=RequestStatus.DISPATCHED))
    run = _columns(make_run(clock, 0, "", tracking=False, finished_at=clock.now()))
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(QueuedRequest), [{**request, "id": f"r{n}"} for n in ids])
            await conn.execute(
                insert(TrackedRun),
                [{**run, "id": n, "request_id": f"r{n}", "thread_ts": f"{n}.1"} for n in ids],
            )
    finally:
        await engine.dispose()


async def test_refreshing_sqlites_statistics_does_not_grow_with_the_history_kept(
    sqlite_url: str, clock: FakeClock
) -> None:
    """Store.optimize runs ANALYZE at start and every 10 minutes, holding SQLite's write lock
    while every ack's insert waits: its work must stay the same however many finished runs
    and requests the tables keep (a full ANALYZE reads every row of every index: about 180 ms
    at 160,000 of each)."""
    await _add_history(sqlite_url, clock, range(1, 1_501))
    at_1_500 = await _vm_steps_of_optimize(sqlite_url)
    await _add_history(sqlite_url, clock, range(1_501, 6_001))
    at_6_000 = await _vm_steps_of_optimize(sqlite_url)
    assert at_6_000 < 1.5 * at_1_500, (at_1_500, at_6_000)


async def test_a_request_added_as_columns_reads_back_with_the_tables_defaults(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    columns = new_request(
        id=str(uuid.uuid4()),
        org_id=1,
        prompt="fix the login page",
        team_id="T1",
        channel_id="C1",
        user_id="U1",
        trigger=Trigger.SLASH_COMMAND,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    assert await store.requests.add(columns, dedupe_key="C1:2.000001")
    stored = await store.requests.get(columns["id"])
    assert stored is not None
    row = QueuedRequest(**columns)  # what intake prepares: the row as stored
    assert _columns(stored) == _columns(row)
    assert (stored.attempts, stored.prepared, stored.images, stored.options) == (
        0,
        False,
        [],
        StoredOptions(),
    )
    assert not await store.requests.add(
        new_request(**{**columns, "id": "x"}), dedupe_key="C1:2.000001"
    )
    with pytest.raises(TypeError, match="not columns of a request: colour"):
        new_request(colour="blue")
