"""kill -9 of a replica that holds leases, on the real PostgreSQL: its runs' final replies come
from the other replica within 35 s (leases are short and renewed only while their holder
lives), and a replica restarted under its own BOT_REPLICA_ID takes its leases back at once.

Real processes on the real clock, against the fake Slack and the emulator in this process. The
replica to die is caught holding leases: its tracker is inside a read the emulator holds."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import text

from bot.devtools.emulator import EmulatorState, running_emulator
from bot.devtools.slack import FakeSlack
from bot.store.db import create_engine
from bot.store.leases import LEASE_SECONDS
from tests.process.support import BotProcess, bot_env, final_reply_runs, free_port, until

BOT_TOKEN = "xoxb-takeover-test-token"
SIGNING_SECRET = "takeover-test-signing-secret"
CODEGEN_TOKEN = "cg-takeover-test-token"
ORG_ID = 12
RUNS = 3


def _replica(
    name: str, *, tmp_path: Path, slack: FakeSlack, codegen_url: str, database_url: str
) -> BotProcess:
    env = bot_env(
        BOT_MODE="http",
        BOT_REPLICA_ID=name,
        PORT=str(free_port()),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        CODEGEN_API_TOKEN=CODEGEN_TOKEN,
        CODEGEN_ORG_ID=str(ORG_ID),
        CODEGEN_API_URL=codegen_url,
        DATABASE_URL=database_url,
        CODEGEN_POLL_MIN_SECONDS="0.2",
        CODEGEN_POLL_MAX_SECONDS="1",
    )
    return BotProcess(env, tmp_path, int(env["PORT"]), signing_secret=SIGNING_SECRET, name=name)


async def _leases_held_by(database_url: str, replica: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                text("SELECT count(*) FROM tracked_runs WHERE lease_owner LIKE :owner"),
                {"owner": f"{replica}:%"},
            )
    finally:
        await engine.dispose()
    return int(count or 0)


async def _kill_while_holding_leases(
    replica: BotProcess, emulator: EmulatorState, slack: FakeSlack, database_url: str
) -> float:
    """Start RUNS runs on `replica`, catch it inside a held read (its runs leased), SIGKILL
    it; returns the moment of the kill (monotonic)."""
    for n in range(RUNS):
        await replica.slash(f"task {n}", slack)
    await until(lambda: len(emulator.created_bodies()) == RUNS, "the runs to be created")
    emulator.script.delay_next_read(300)  # ended by the emulator's shutdown at the latest
    await until(lambda: emulator.holding == 1, "the tracker to be inside the held read")
    assert await _leases_held_by(database_url, replica.name) >= 1
    await replica.kill()
    return time.monotonic()


async def test_a_dead_replicas_runs_are_finished_by_the_other_within_35_s(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    emulator = EmulatorState(
        token=CODEGEN_TOKEN, org_id=ORG_ID, pending_seconds=0.5, active_seconds=3
    )
    async with (
        FakeSlack.running(bot_token=BOT_TOKEN) as slack,
        running_emulator(emulator) as codegen_url,
    ):
        slack.add_channel("C1", name="general")
        slack.add_user("U1", "alice")
        options = {"tmp_path": tmp_path, "slack": slack, "codegen_url": codegen_url}
        a = _replica("bot-a", database_url=empty_postgres_url, **options)
        b = _replica("bot-b", database_url=empty_postgres_url, **options)
        try:
            await a.start()
            killed = await _kill_while_holding_leases(a, emulator, slack, empty_postgres_url)
            await b.start()  # the survivor (started now so it is not the one held)
            await until(
                lambda: sorted(final_reply_runs(slack)) == [1000, 1001, 1002],
                "the survivor to post every final reply",
                limit=60,
            )
            took = time.monotonic() - killed
        finally:
            await a.stop()
            await b.stop()
    assert took <= 35, f"final replies {took:.1f} s after the kill\n{b.logs()}"
    assert sorted(final_reply_runs(slack)) == [1000, 1001, 1002]  # once each
    assert len(emulator.created_bodies()) == RUNS


async def test_a_replica_restarted_under_its_id_takes_its_leases_back_at_once(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    emulator = EmulatorState(
        token=CODEGEN_TOKEN, org_id=ORG_ID, pending_seconds=0.5, active_seconds=1
    )
    async with (
        FakeSlack.running(bot_token=BOT_TOKEN) as slack,
        running_emulator(emulator) as codegen_url,
    ):
        slack.add_channel("C1", name="general")
        slack.add_user("U1", "alice")
        a = _replica(
            "bot-a",
            tmp_path=tmp_path,
            slack=slack,
            codegen_url=codegen_url,
            database_url=empty_postgres_url,
        )
        try:
            await a.start()
            killed = await _kill_while_holding_leases(a, emulator, slack, empty_postgres_url)
            await a.start()
            await until(
                lambda: sorted(final_reply_runs(slack)) == [1000, 1001, 1002],
                "the restarted replica to post every final reply",
                limit=60,
            )
            took = time.monotonic() - killed
        finally:
            await a.stop()
    # Well inside a lease: nothing waited for the old leases to lapse.
    assert took < LEASE_SECONDS / 2, f"{took:.1f} s\n{a.logs()}"
    assert "replica bot-a took back" in a.logs()
    assert sorted(final_reply_runs(slack)) == [1000, 1001, 1002]
