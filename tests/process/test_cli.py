"""The `codegen-bot` command: its subcommands, `run` picking the console in a terminal and
refusing without one, `manifest --http`, `migrate`, and `run` in HTTP mode end to end as a real
process (health, metrics, a whole run, JSON logs without secrets, clean exit on SIGTERM)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import logging
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import yaml
from aiohttp import WSMsgType, web

from bot.cli import build_parser, main
from bot.codegen.models import AgentRunResponse, GithubPullRequestResponse
from bot.config import Settings
from bot.devtools.emulator import EmulatorState, running_emulator
from bot.devtools.slack import FakeSlack
from bot.devtools.terminal import render_text
from bot.requests import ResolvedOption, ResolvedOptions
from bot.slack.render import CardView, render_card, render_final_reply
from bot.store.db import create_engine, migrate, pending_migrations
from tests.process.support import (
    REPO_ROOT,
    bot_env,
    free_port,
    signed_headers,
    slash_body,
    until,
)

TEAM = "T0FAKETEAM"

SUBCOMMANDS = ["run", "console", "emulator", "migrate", "manifest", "doctor", "rotate-key"]
BOT_TOKEN = "xoxb-cli-test-bot-token-77"
SIGNING_SECRET = "cli-test-signing-secret-77"
CODEGEN_TOKEN = "cg-cli-test-token-77"
ORG_ID = 9


def bot_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", *args]


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """Commands run in-process configure the root logger; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


# -- help, manifest, migrate -----------------------------------------------------------------


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert re.search(rf"^\s+{re.escape(name)}(\s|$)", out, re.M), f"{name} missing:\n{out}"
    assert sorted(build_parser()._subparsers._group_actions[0].choices) == sorted(SUBCOMMANDS)  # type: ignore[union-attr]


def test_installed_entry_point_runs() -> None:
    """The `codegen-bot` script pyproject.toml installs (what `make run` calls)."""
    script = Path(sys.executable).with_name("codegen-bot")
    if not script.exists():
        pytest.skip("codegen-bot is not installed next to this interpreter")
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=bot_env(), timeout=60
    )
    assert result.returncode == 0
    assert all(name in result.stdout for name in SUBCOMMANDS)


def test_manifest_http_fills_in_the_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "--http", "https://bot.example.com/"]) == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    url = "https://bot.example.com/slack/events"
    assert manifest["settings"]["socket_mode_enabled"] is False
    assert manifest["settings"]["event_subscriptions"]["request_url"] == url
    assert manifest["settings"]["interactivity"]["request_url"] == url
    assert [c["url"] for c in manifest["features"]["slash_commands"]] == [url]


def test_manifest_default_is_socket_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest"]) == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in manifest["settings"]["event_subscriptions"]


def test_manifest_refuses_a_bad_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "--http", "bot.example.com"]) == 2
    assert "must be an https:// URL" in capsys.readouterr().err


def test_migrate(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keep_logging: None,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    assert main(["migrate"]) == 0
    assert "database at head" in capsys.readouterr().out

    async def pending() -> bool:
        engine = create_engine(url)
        try:
            return await pending_migrations(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(pending()) is False


def test_rotate_key_seals_every_stored_token_under_the_new_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    keep_logging: None,
) -> None:
    from datetime import UTC, datetime

    from bot.secret_box import SecretBox, SecretUnreadable, new_key
    from bot.store.store import Store
    from bot.store.tables import PersonalToken

    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BOT_SECRET_KEY", raising=False)
    assert main(["rotate-key"]) == 2  # no key: it offers one
    offered = capsys.readouterr().err.split("BOT_SECRET_KEY=", 1)[1].strip()
    assert SecretBox([offered]).open(SecretBox([offered]).seal("x")) == "x"

    old, new = new_key(), new_key()

    async def seed() -> None:
        engine = create_engine(url)
        await migrate(engine)
        store = Store(engine)
        await store.tokens.put(
            PersonalToken(
                slack_user_id="U1",
                sealed_token=SecretBox([old]).seal("cg-a-personal-token-42"),
                fingerprint="a" * 16,
                codegen_user_id=7,
                codegen_email="dev@example.com",
                created_at=datetime(2026, 12, 3, tzinfo=UTC),
            )
        )
        await engine.dispose()

    async def sealed() -> str:
        engine = create_engine(url)
        row = await Store(engine).tokens.get("U1")
        await engine.dispose()
        assert row is not None
        return row.sealed_token

    asyncio.run(seed())
    monkeypatch.setenv("BOT_SECRET_KEY", f"{new},{old}")
    assert main(["rotate-key"]) == 0
    assert "sealed 1 personal token under the first key" in capsys.readouterr().out
    after = asyncio.run(sealed())
    assert SecretBox([new]).open(after) == "cg-a-personal-token-42"  # the old key can go
    with pytest.raises(SecretUnreadable):
        SecretBox([old]).open(after)


def test_bad_setting_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CODEGEN_CREATE_PER_MINUTE", "lots")
    assert main(["run"]) == 2
    assert "CODEGEN_CREATE_PER_MINUTE" in capsys.readouterr().err


# -- run: console in a terminal, a clear refusal without one ---------------------------------


def test_run_without_credentials_or_terminal_says_what_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        bot_command("run"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=bot_env(),
        timeout=60,
    )
    assert result.returncode == 2
    assert "SLACK_APP_TOKEN" in result.stderr and "SLACK_SIGNING_SECRET" in result.stderr
    assert "codegen-bot console" in result.stderr


@pytest.mark.parametrize(
    ("codegen", "unset"),
    [
        ({}, "CODEGEN_API_TOKEN and CODEGEN_ORG_ID are not set"),
        ({"CODEGEN_API_TOKEN": CODEGEN_TOKEN}, "CODEGEN_ORG_ID is not set"),
    ],
)
def test_run_with_slack_but_not_codegen_credentials_refuses(
    tmp_path: Path, codegen: dict[str, str], unset: str
) -> None:
    """Real people in a real workspace never get the emulator's invented results."""
    result = subprocess.run(
        bot_command("run"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=bot_env(
            BOT_MODE="http",
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            PORT=str(free_port()),
            **codegen,
        ),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"BOT_MODE=http talks to a real Slack workspace but {unset}" in result.stderr
    assert "codegen-bot console" in result.stderr
    assert "EMULATOR" not in result.stderr
    assert not (tmp_path / "codegen-bot.db").exists()  # refused before touching anything


def test_run_in_a_terminal_without_credentials_starts_the_console(tmp_path: Path) -> None:
    """What `make run` does on a fresh machine: the console, saying so loudly."""
    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        bot_command("run"),
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        cwd=tmp_path,
        env=bot_env(CODEGEN_POLL_MIN_SECONDS="0.2", CODEGEN_POLL_MAX_SECONDS="0.5"),
        close_fds=True,
    )
    os.close(child_fd)
    seen = ""

    def read_until(marker: str, timeout: float = 30.0) -> str:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{marker!r} did not appear; output so far:\n{seen}")
            ready, _, _ = select.select([main_fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(main_fd, 65536)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{marker!r} never came; output:\n{seen}")
                seen += chunk.decode(errors="replace")
        return seen

    try:
        read_until("quit ")  # the end of the banner's help
        assert "CODEGEN-BOT CONSOLE" in seen and "BUILT-IN EMULATOR" in seen
        os.write(main_fd, b"/codegen say hello\n")
        read_until("Queued. I will post the run")
        read_until("starts thread 1")
        os.write(main_fd, b"quit\n")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main_fd)


# -- run in HTTP mode, as a process ------------------------------------------------------------


async def test_run_http_mode_process_end_to_end(tmp_path: Path) -> None:
    emulator = EmulatorState(
        token=CODEGEN_TOKEN, org_id=ORG_ID, pending_seconds=0.2, active_seconds=0.4
    )
    port = free_port()
    log_path = tmp_path / "bot.log"
    async with (
        FakeSlack.running(bot_token=BOT_TOKEN) as slack,
        running_emulator(emulator) as codegen_url,
    ):
        slack.add_channel("C1", name="general")
        slack.add_user("U1", "alice")
        env = bot_env(
            BOT_MODE="http",
            PORT=str(port),
            LOG_FORMAT="json",
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
            CODEGEN_API_TOKEN=CODEGEN_TOKEN,
            CODEGEN_ORG_ID=str(ORG_ID),
            CODEGEN_API_URL=codegen_url,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            CODEGEN_POLL_MIN_SECONDS="0.2",
            CODEGEN_POLL_MAX_SECONDS="0.5",
        )
        with log_path.open("w") as log_file:
            process = await asyncio.create_subprocess_exec(
                *bot_command("run"),
                cwd=tmp_path,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:

                async def healthy() -> bool:
                    if process.returncode is not None:
                        raise AssertionError(f"the bot exited:\n{log_path.read_text()}")
                    with contextlib.suppress(httpx.HTTPError):
                        return (await http.get("/healthz")).status_code == 200
                    return False

                await until(healthy, what="/healthz")
                assert (await http.get("/readyz")).json()["status"] == "ok"

                body = slash_body(
                    "write a hello world script", response_url=slack.response_url(), team=TEAM
                )
                ack = await http.post(
                    "/slack/events",
                    content=body,
                    headers=signed_headers(
                        body,
                        secret=SIGNING_SECRET,
                        content_type="application/x-www-form-urlencoded",
                    ),
                )
                assert ack.status_code == 200 and "Queued" in ack.text

                async def finished() -> bool:
                    return any(
                        "is complete" in str(m.get("text"))
                        for m in slack.bot_messages("C1")
                        if m.get("thread_ts")
                    )

                await until(finished, what="the final reply")

                async def counted() -> bool:  # counted once the run is stored as finished
                    metrics = (await http.get("/metrics")).text
                    assert "codegen_bot_runs_created_total 1.0" in metrics
                    return 'codegen_bot_runs_finished_total{final_status="COMPLETE"} 1.0' in metrics

                await until(counted, what="runs_finished_total")
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            status = await asyncio.wait_for(process.wait(), timeout=30)

    output = log_path.read_text()
    print(output)
    assert status == 0, output  # SIGTERM is a clean shutdown
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert records, output
    assert not [line for line in output.splitlines() if line and not line.startswith("{")]
    messages = [r["message"] for r in records]
    assert any("HTTP mode" in m for m in messages)
    assert "shutting down" in messages
    created = next(r for r in records if "→ run 1000" in r["message"])
    assert created["run_id"] == 1000 and created["logger"] == "bot.runs.dispatcher"
    for secret in (BOT_TOKEN, SIGNING_SECRET, CODEGEN_TOKEN):
        assert secret not in output
    assert emulator.created_bodies()[0]["prompt"] == "write a hello world script"


async def test_run_socket_mode_process_serves_health_on_port(tmp_path: Path) -> None:
    """Socket Mode as a process: a slash command arrives over the WebSocket and is acked
    there, the run completes, /healthz and /metrics answer on PORT, SIGTERM ends it cleanly."""
    acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    emulator = EmulatorState(
        token=CODEGEN_TOKEN, org_id=ORG_ID, pending_seconds=0.2, active_seconds=0.4
    )

    async with (
        FakeSlack.running(bot_token=BOT_TOKEN) as slack,
        running_emulator(emulator) as codegen_url,
    ):
        slack.add_channel("C1", name="general")

        async def socket(request: web.Request) -> web.WebSocketResponse:
            """Slack's side of Socket Mode: hello, one slash command, then read the acks."""
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_json({"type": "hello", "num_connections": 1})
            payload = dict(
                parse_qsl(slash_body("say hello", response_url=slack.response_url(), team=TEAM))
            )
            await ws.send_json(
                {
                    "envelope_id": "envelope-1",
                    "type": "slash_commands",
                    "accepts_response_payload": True,
                    "payload": payload,
                }
            )
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    acks.put_nowait(json.loads(message.data))
            return ws

        wss = web.Application()
        wss.router.add_get("/link", socket)
        runner = web.AppRunner(wss)
        await runner.setup()
        ws_port = free_port()
        await web.TCPSite(runner, "127.0.0.1", ws_port).start()
        slack.respond(
            "apps.connections.open", {"ok": True, "url": f"ws://127.0.0.1:{ws_port}/link"}
        )
        port = free_port()
        env = bot_env(
            PORT=str(port),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_APP_TOKEN="xapp-1-A0FAKEAPP-77-cli",
            SLACK_API_URL=slack.api_url,
            CODEGEN_API_TOKEN=CODEGEN_TOKEN,
            CODEGEN_ORG_ID=str(ORG_ID),
            CODEGEN_API_URL=codegen_url,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            CODEGEN_POLL_MIN_SECONDS="0.2",
            CODEGEN_POLL_MAX_SECONDS="0.5",
        )
        log_path = tmp_path / "bot.log"
        with log_path.open("w") as log_file:
            process = await asyncio.create_subprocess_exec(
                *bot_command("run"),
                cwd=tmp_path,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
        try:
            ack = await asyncio.wait_for(acks.get(), timeout=30)
            assert ack["envelope_id"] == "envelope-1"
            assert "Queued" in ack["payload"]["text"]

            async def finished() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"the bot exited:\n{log_path.read_text()}")
                return any("is complete" in str(m.get("text")) for m in slack.bot_messages("C1"))

            await until(finished, what="the final reply")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                assert (await http.get("/healthz")).status_code == 200
                metrics = (await http.get("/metrics")).text
                assert "codegen_bot_runs_created_total 1.0" in metrics
                assert (await http.post("/slack/events")).status_code in (404, 405)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            status = await asyncio.wait_for(process.wait(), timeout=30)
            await runner.cleanup()

    output = log_path.read_text()
    print(output)
    assert status == 0, output
    assert f"health and metrics on port {port}" in output
    assert BOT_TOKEN not in output and CODEGEN_TOKEN not in output


def test_settings_port_is_explicit_only_when_set() -> None:
    """Socket Mode serves health and metrics only when PORT is set (cli._socket_mode)."""
    assert "port" not in Settings(_env_file=None).model_fields_set
    assert "port" in Settings(_env_file=None, port=8080).model_fields_set


# -- the README stays true ---------------------------------------------------------------------


def readme_examples() -> list[str]:
    """The card and final reply shown in README.md, rendered by the real code."""
    start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    url = "https://codegen.com/agent/trace/4242"
    options = ResolvedOptions(
        repo=ResolvedOption(value="acme/web", source="inline"),
        agent_type=ResolvedOption(value="codegen", source="channel default"),
    )
    card = render_card(
        CardView(
            phase="running",
            status="RUNNING",
            prompt="Fix the flaky login test in CI",
            requester_id="U0ALICE",
            run_id=4242,
            web_url=url,
            options=options,
            repo_label="acme/web",
            created_at=start,
            started_at=start + timedelta(seconds=4),
            stoppable=True,
        ),
        now=start + timedelta(minutes=3),
    )
    run = AgentRunResponse(
        id=4242,
        organization_id=7,
        status="COMPLETE",
        created_at=start.isoformat(),
        web_url=url,
        summary="The login test waited for a fixed 2 s. It now waits for the `#dashboard` "
        "element, and the retry in `ci.yml` is gone.",
        github_pull_requests=[
            GithubPullRequestResponse(
                id=1,
                title="Fix flaky login test",
                url="https://github.com/acme/web/pull/318",
                created_at=start.isoformat(),
                head_branch_name="codegen/fix-login-flake",
            )
        ],
    )
    final = render_final_reply(
        run=run, requester_id="U0ALICE", now=start + timedelta(minutes=12), pr_buttons=True
    )
    return [render_text(card), render_text(final)]


def test_readme_examples_are_real_render_output() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for example in readme_examples():
        assert f"```text\n{example}\n```" in readme, (
            "README.md's example no longer matches the rendering; paste this instead:\n" + example
        )


def test_readme_documents_every_setting_and_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`{name.upper()}`" in readme, f"{name.upper()} is not in README.md's settings"
    for command in SUBCOMMANDS:
        assert f"`codegen-bot {command}" in readme, f"codegen-bot {command} is not in README.md"
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make run" in quick_start and "make test" in quick_start


def _loaded_by(modules: str, packages: tuple[str, ...]) -> list[str]:
    """Which of `packages` (or their submodules) a fresh interpreter has loaded after
    `import <modules>`."""
    script = (
        f"import sys, {modules}\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {packages!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    return list(ast.literal_eval(done.stdout.strip()))


def test_the_bot_loads_httpx_with_its_first_http_request_not_at_start() -> None:
    """Nothing at start sends an HTTP request of its own (Slack goes through slack_sdk), so
    importing httpx (about 13 ms, 2% of start-up) waits for the first Codegen call, file
    download or response_url post (bot.http_clients)."""
    loaded = _loaded_by("bot.cli, bot.config, bot.app, bot.serving", ("httpx",))
    assert loaded == []


def test_the_command_line_loads_no_heavy_library_before_run_pauses_the_collector() -> None:
    """`run` pauses garbage collection for start-up (bot.cli._start_up_done): only what is
    imported after that point is spared the collections, so bot.cli itself stays light."""
    assert _loaded_by("bot.cli", ("pydantic", "sqlalchemy", "slack_bolt", "httpx")) == []
