"""`codegen-bot doctor` against the fake Slack and the Codegen emulator: all green, then each
thing an operator gets wrong, one at a time, with the fix the doctor prints for it."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.config import Settings
from bot.devtools.emulator import EmulatorState, default_repos, running_emulator
from bot.devtools.slack import DEFAULT_SCOPES, FakeSlack
from bot.doctor import CheckResult, format_results, run_checks, run_doctor
from bot.slack.manifest import BOT_SCOPES
from bot.store.db import create_engine, migrate

BOT_TOKEN = "xoxb-doctor-test-token-0001"
APP_TOKEN = "xapp-1-A0DOCTOR-0001-abcdef"
SIGNING_SECRET = "doctor-signing-secret"
CODEGEN_TOKEN = "cg-doctor-token-0001"
ORG_ID = 42
REPO_ROOT = Path(__file__).resolve().parents[2]

ALL_CHECKS = [
    "mode",
    "codegen settings",
    "secret key",
    "database",
    "migrations",
    "codegen stop",
    "agent sessions",
    "progress",
    "personal tokens",
    "slack token",
    "slack scopes",
    "codegen token",
    "codegen org",
    "codegen members",
]


@dataclass
class World:
    slack: FakeSlack
    emulator: EmulatorState
    codegen_url: str
    database_url: str

    def settings(self, **overrides: Any) -> Settings:
        fields: dict[str, Any] = {
            "_env_file": None,
            "bot_mode": "http",
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_app_token": None,
            "slack_api_url": self.slack.api_url,
            "codegen_api_token": CODEGEN_TOKEN,
            "codegen_org_id": ORG_ID,
            "codegen_api_url": self.codegen_url,
            "database_url": self.database_url,
        }
        fields.update(overrides)
        return Settings(**fields)


# One fake Slack and one emulator for the module (each test gets them reset): starting and
# stopping servers for every test would cost more than the checks themselves.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def servers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    database_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('doctor') / 'bot.db'}"
    engine = create_engine(database_url)
    await migrate(engine)
    await engine.dispose()
    emulator = EmulatorState(token=CODEGEN_TOKEN, org_id=ORG_ID)
    async with (
        FakeSlack.running(bot_token=BOT_TOKEN) as slack,
        running_emulator(emulator) as codegen_url,
    ):
        yield World(slack, emulator, codegen_url, database_url)


@pytest_asyncio.fixture(loop_scope="module")
async def world(servers: World) -> World:
    servers.slack.scopes = list(DEFAULT_SCOPES)
    servers.slack.forget("apps.connections.open")
    servers.slack.calls.clear()
    servers.emulator.repos = default_repos(ORG_ID)
    servers.emulator.received.clear()
    servers.emulator.clear_rate_limits()
    return servers


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def failures(results: list[CheckResult]) -> list[str]:
    return [r.name for r in results if r.status == "fail"]


async def test_all_green(world: World) -> None:
    results = await run_checks(world.settings())
    report = format_results(results)
    print(report)
    assert [r.name for r in results] == ALL_CHECKS
    assert failures(results) == []
    assert all(r.status == "ok" for r in results)
    checks = by_name(results)
    assert "HTTP mode" in checks["mode"].detail
    assert "U0FAKEBOT" in checks["slack token"].detail
    assert f"all {len(BOT_SCOPES)} scopes" in checks["slack scopes"].detail
    assert "dev@example.com" in checks["codegen token"].detail
    assert f"organization {ORG_ID}: 3 repositories" in checks["codegen org"].detail
    assert report.splitlines()[-1] == "Everything checked is in order."
    # It really asked: auth.test at Slack, /users/me and the repositories at Codegen.
    assert world.slack.calls_to("auth.test")
    assert [c.kind for c in world.emulator.received] == [
        "current_user",
        "list_repos",
        "list_users",
    ]
    assert "2 members, matched to Slack users by email" in checks["codegen members"].detail
    for secret in (BOT_TOKEN, SIGNING_SECRET, CODEGEN_TOKEN):
        assert secret not in report


async def test_bad_database_url(world: World) -> None:
    results = await run_checks(world.settings(database_url="not a database url"))
    assert failures(results) == ["database"]
    checks = by_name(results)
    assert "DATABASE_URL" in (checks["database"].fix or "")
    assert checks["migrations"].status == "skip"


async def test_unreachable_database_hides_its_password(world: World) -> None:
    url = "postgresql+asyncpg://bot:hunter2-secret@127.0.0.1:1/codegen"
    results = await run_checks(world.settings(database_url=url), wait=5)
    assert failures(results) == ["database"]
    checks = by_name(results)
    assert "cannot connect" in checks["database"].detail
    assert "server is running" in (checks["database"].fix or "")
    assert "hunter2-secret" not in format_results(results)


async def test_sync_driver_url_asks_for_an_async_driver(world: World) -> None:
    results = await run_checks(world.settings(database_url="sqlite:///./x.db"))
    assert failures(results) == ["database"]
    assert "aiosqlite" in (by_name(results)["database"].fix or "")


async def test_an_unmigrated_database_is_not_a_failure(world: World, tmp_path: Path) -> None:
    """The bot migrates when it starts: a fresh install is green."""
    empty = tmp_path / "empty.db"
    engine = create_engine(f"sqlite+aiosqlite:///{empty}")
    async with engine.connect() as conn:  # the file exists, without tables
        await conn.exec_driver_sql("SELECT 1")
    await engine.dispose()
    results = await run_checks(world.settings(database_url=f"sqlite+aiosqlite:///{empty}"))
    assert failures(results) == []
    migrations = by_name(results)["migrations"]
    assert migrations.status == "ok"
    assert "the bot applies the missing ones when it starts" in migrations.detail


async def test_a_fresh_install_is_green_and_its_file_is_not_created(
    world: World, tmp_path: Path
) -> None:
    missing = tmp_path / "later.db"
    results = await run_checks(world.settings(database_url=f"sqlite+aiosqlite:///{missing}"))
    assert failures(results) == []
    assert "the bot creates its tables when it starts" in by_name(results)["migrations"].detail
    assert format_results(results).splitlines()[-1] == "Everything checked is in order."
    assert not missing.exists()


async def test_a_default_repository_that_does_not_exist_is_red(world: World) -> None:
    results = await run_checks(world.settings(codegen_default_repo_id=999))
    assert failures(results) == ["codegen default repo"]
    check = by_name(results)["codegen default repo"]
    assert "CODEGEN_DEFAULT_REPO_ID=999 is not a repository of this organization" in check.detail
    assert "acme/web" in (check.fix or "")
    green = by_name(await run_checks(world.settings(codegen_default_repo_id=102)))
    assert green["codegen default repo"].status == "ok"
    assert "acme/api" in green["codegen default repo"].detail


async def test_a_stop_codegen_refused_is_reported(world: World) -> None:
    from datetime import UTC, datetime

    from bot.store.store import Store

    store = Store(create_engine(world.database_url))
    try:
        when = datetime(2026, 12, 3, 9, 15, tzinfo=UTC)
        await store.stop_refusals.record(ORG_ID, status_code=405, message="Not allowed", now=when)
        check = by_name(await run_checks(world.settings()))["codegen stop"]
        assert check.status == "warn"
        assert "Codegen refused a stop at 2026-12-03 09:15 UTC (HTTP 405" in check.detail
        assert "hidden until the bot restarts" in check.detail
    finally:
        await store.stop_refusals.forget(ORG_ID)
        await store.dispose()


async def test_bad_slack_token(world: World) -> None:
    results = await run_checks(world.settings(slack_bot_token="xoxb-revoked-or-mistyped"))
    assert failures(results) == ["slack token"]
    checks = by_name(results)
    assert checks["slack token"].detail == "auth.test: invalid_auth"
    assert "SLACK_BOT_TOKEN" in (checks["slack token"].fix or "")
    assert checks["slack scopes"].status == "skip"
    assert "xoxb-revoked-or-mistyped" not in format_results(results)


async def test_user_token_instead_of_bot_token(world: World) -> None:
    results = await run_checks(world.settings(slack_bot_token="xoxp-a-user-token"))
    assert failures(results) == ["slack token"]
    assert "user token" in by_name(results)["slack token"].detail


async def test_missing_scopes(world: World) -> None:
    world.slack.scopes = [s for s in world.slack.scopes if s not in ("chat:write", "files:read")]
    results = await run_checks(world.settings())
    assert failures(results) == ["slack scopes"]
    check = by_name(results)["slack scopes"]
    assert check.detail == "missing chat:write, files:read"
    assert "reinstall the app" in (check.fix or "")


async def test_slack_unreachable(world: World) -> None:
    results = await run_checks(world.settings(slack_api_url="http://127.0.0.1:1/api/"), wait=5)
    assert failures(results) == ["slack token"]
    assert "cannot reach Slack" in by_name(results)["slack token"].detail


async def test_bad_codegen_token(world: World) -> None:
    results = await run_checks(world.settings(codegen_api_token="cg-wrong-token"))
    assert failures(results) == ["codegen token"]
    checks = by_name(results)
    assert "refused CODEGEN_API_TOKEN (403" in checks["codegen token"].detail
    assert "CODEGEN_API_TOKEN" in (checks["codegen token"].fix or "")
    assert checks["codegen org"].status == "skip"
    assert "cg-wrong-token" not in format_results(results)


async def test_wrong_org(world: World) -> None:
    results = await run_checks(world.settings(codegen_org_id=43))
    assert failures(results) == ["codegen org"]
    check = by_name(results)["codegen org"]
    assert "no access to organization 43" in check.detail
    assert "CODEGEN_ORG_ID" in (check.fix or "")


async def test_org_without_repositories(world: World) -> None:
    world.emulator.repos = []
    results = await run_checks(world.settings())
    assert failures(results) == ["codegen org"]
    assert "has no repositories" in by_name(results)["codegen org"].detail


async def test_codegen_unreachable(world: World) -> None:
    results = await run_checks(world.settings(codegen_api_url="http://127.0.0.1:1"), wait=5)
    assert failures(results) == ["codegen token"]
    assert "CODEGEN_API_URL" in (by_name(results)["codegen token"].fix or "")


async def test_no_codegen_credentials(world: World) -> None:
    results = await run_checks(world.settings(codegen_api_token=None, codegen_org_id=None))
    assert failures(results) == ["codegen settings"]
    checks = by_name(results)
    assert "emulator" in checks["codegen settings"].detail
    assert checks["codegen token"].status == checks["codegen org"].status == "skip"


async def test_no_way_to_reach_slack(world: World) -> None:
    results = await run_checks(world.settings(bot_mode="auto", slack_signing_secret=None))
    assert failures(results) == ["mode"]
    assert "SLACK_APP_TOKEN" in (by_name(results)["mode"].fix or "")


async def test_socket_mode_app_token(world: World) -> None:
    world.slack.respond("apps.connections.open", {"ok": True, "url": "wss://example.invalid/"})
    results = await run_checks(world.settings(bot_mode="auto", slack_app_token=APP_TOKEN))
    assert failures(results) == []
    checks = by_name(results)
    assert "Socket Mode" in checks["mode"].detail
    assert checks["slack app token"].status == "ok"
    assert world.slack.last_call("apps.connections.open").token == APP_TOKEN

    world.slack.respond("apps.connections.open", {"ok": False, "error": "invalid_auth"})
    results = await run_checks(world.settings(bot_mode="auto", slack_app_token=APP_TOKEN))
    assert failures(results) == ["slack app token"]
    assert "connections:write" in (by_name(results)["slack app token"].fix or "")

    # A bot token pasted as the app token is named before Slack is asked; and the app token is
    # checked even when the bot token is refused.
    calls = len(world.slack.calls_to("apps.connections.open"))
    results = await run_checks(world.settings(bot_mode="auto", slack_app_token=BOT_TOKEN))
    assert "not an app-level token" in by_name(results)["slack app token"].detail
    assert len(world.slack.calls_to("apps.connections.open")) == calls
    world.slack.respond("apps.connections.open", {"ok": True, "url": "wss://example.invalid/"})
    results = await run_checks(
        world.settings(
            bot_mode="auto", slack_app_token=APP_TOKEN, slack_bot_token="xoxb-revoked-0000"
        )
    )
    assert by_name(results)["slack app token"].status == "ok"


async def test_a_secret_too_short_to_redact_is_a_warning(world: World) -> None:
    results = await run_checks(world.settings(slack_signing_secret="abc"))
    checks = by_name(results)
    assert checks["secrets"].status == "warn" and checks["secrets"].ok
    assert "SLACK_SIGNING_SECRET is shorter than 8 characters" in checks["secrets"].detail
    assert "WARN  secrets" in format_results(results)
    assert "abc" not in checks["secrets"].detail
    assert "secrets" not in by_name(await run_checks(world.settings()))


async def test_report_format(world: World) -> None:
    results = await run_checks(world.settings(codegen_org_id=43))
    lines = format_results(results).splitlines()
    assert lines[0].startswith("ok    mode")
    failed = next(i for i, line in enumerate(lines) if line.startswith("FAIL  codegen org"))
    assert lines[failed + 1].strip().startswith("fix: Set CODEGEN_ORG_ID")
    assert lines[-1] == "1 problem found."


async def test_doctor_command_exit_status(world: World, tmp_path: Path) -> None:
    """The command itself: all green exits 0; a bad token exits 1 with the fix, no secret."""

    async def doctor(**env: str) -> tuple[int, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "CODEGEN_", "DATABASE_", "BOT_", "ALLOWED_"))
        }
        base.update(
            PYTHONPATH=str(REPO_ROOT),
            BOT_MODE="http",
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=world.slack.api_url,
            CODEGEN_API_TOKEN=CODEGEN_TOKEN,
            CODEGEN_ORG_ID=str(ORG_ID),
            CODEGEN_API_URL=world.codegen_url,
            DATABASE_URL=world.database_url,
        )
        base.update(env)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "doctor",
            cwd=tmp_path,
            env=base,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        return int(process.returncode or 0), output.decode()

    status, output = await doctor()
    assert status == 0, output
    assert "Everything checked is in order." in output
    status, output = await doctor(CODEGEN_API_TOKEN="cg-not-the-token")
    assert status == 1, output
    assert "FAIL  codegen token" in output and "fix: Create a new API token" in output
    assert "cg-not-the-token" not in output and BOT_TOKEN not in output


async def test_doctor_names_a_bad_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CODEGEN_POLL_MIN_SECONDS", "soon")
    out = io.StringIO()
    assert run_doctor(out=out) == 1
    report = out.getvalue()
    assert report.startswith("FAIL  settings")
    assert "CODEGEN_POLL_MIN_SECONDS" in report and "fix: Correct the variable" in report


async def test_members_only_needs_a_member_list(world: World) -> None:
    green = by_name(await run_checks(world.settings(codegen_members_only=True)))
    assert "only they start runs (CODEGEN_MEMBERS_ONLY)" in green["codegen members"].detail
    world.emulator.script.fail_next_read(403, kind="list_users")
    results = await run_checks(world.settings(codegen_members_only=True))
    assert failures(results) == ["codegen members"]
    assert "nobody could start a run" in by_name(results)["codegen members"].detail
    world.emulator.script.fail_next_read(403, kind="list_users")
    results = await run_checks(world.settings())
    assert failures(results) == []
    assert by_name(results)["codegen members"].status == "warn"


async def test_the_secret_key_and_the_tokens_it_seals(world: World) -> None:
    from datetime import UTC, datetime

    from bot.secret_box import SecretBox, new_key
    from bot.store.store import Store
    from bot.store.tables import PersonalToken

    bad = by_name(await run_checks(world.settings(bot_secret_key="not-a-key")))
    assert bad["secret key"].status == "fail" and "Fernet" in bad["secret key"].detail
    old, new = new_key(), new_key()
    store = Store(create_engine(world.database_url))
    try:
        await store.tokens.put(
            PersonalToken(
                slack_user_id="U9",
                sealed_token=SecretBox([old]).seal("cg-someones-token-123"),
                fingerprint="f" * 16,
                codegen_user_id=9,
                codegen_email=None,
                created_at=datetime(2026, 12, 3, tzinfo=UTC),
            )
        )
        locked = by_name(await run_checks(world.settings(bot_secret_key=new)))
        assert locked["personal tokens"].status == "fail"
        assert "1 of 1 cannot be opened" in locked["personal tokens"].detail
        assert "rotate-key" in (locked["personal tokens"].fix or "")
        both = by_name(await run_checks(world.settings(bot_secret_key=f"{new},{old}")))
        assert both["personal tokens"].status == "ok"
        assert "2 keys: the first seals, all open" in both["secret key"].detail
    finally:
        await store.tokens.delete("U9")
        await store.dispose()
