"""/healthz, /readyz and /metrics over HTTP, on the bot as it runs a conversation."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from bot.serving import serve_http
from tests.harness import Conversation

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(chat: Conversation) -> Samples:
    response = await chat.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


async def test_health_and_readiness_when_all_is_well(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        health = await chat.http.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready = await chat.http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"database": "ok", "slack": "ok"}}
        # Readiness really asked Slack, with the bot token.
        assert (
            chat.slack.last_call("auth.test").token
            == chat.settings.slack_bot_token.get_secret_value()
        )  # type: ignore[union-attr]

        chat.runtime.health.ready = False  # still starting
        assert (await chat.http.get("/healthz")).status_code == 503
        assert (await chat.http.get("/readyz")).status_code == 503


class _Socket:
    """Socket Mode's link as the probes see it, set by the test."""

    def __init__(self) -> None:
        self.up = False
        self.long_down = False

    async def connected(self) -> bool:
        return self.up

    def unhealthy(self) -> bool:
        return self.long_down


async def test_socket_mode_down_is_not_ready_and_in_time_not_healthy(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        socket = _Socket()
        chat.runtime.health.socket = socket
        ready = await chat.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["socket"] == "error: Socket Mode is not connected"
        assert (await chat.http.get("/healthz")).status_code == 200  # down only briefly
        socket.long_down = True
        health = await chat.http.get("/healthz")
        assert (health.status_code, health.json()) == (503, {"status": "socket down"})
        socket.up, socket.long_down = True, False
        assert (await chat.http.get("/readyz")).json()["checks"]["socket"] == "ok"
        assert (await chat.http.get("/healthz")).status_code == 200


async def test_readyz_is_503_when_slack_refuses_the_token(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        chat.slack.fail_next("auth.test", "invalid_auth")
        ready = await chat.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": "ok", "slack": "error: invalid_auth"}
        assert (await chat.http.get("/healthz")).status_code == 200  # alive all the same
        samples = await scrape(chat)
        assert (
            value(
                samples, "codegen_bot_slack_errors_total", method="auth.test", error="invalid_auth"
            )
            == 1
        )
        assert (await chat.http.get("/readyz")).status_code == 200  # and back


async def test_readyz_is_503_when_slack_is_down(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slack.stop()  # nothing listens on Slack's address any more
        ready = await chat.http.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"] == "ok"
        assert checks["slack"].startswith("error: ")


async def test_readyz_is_503_when_the_database_is_down(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    async with Conversation.start(database_url=f"sqlite+aiosqlite:///{folder / 'bot.db'}") as chat:
        assert (await chat.http.get("/readyz")).status_code == 200
        # The database goes away: pooled connections closed, its directory gone.
        await chat.runtime.store.engine.dispose()
        folder.rename(tmp_path / "elsewhere")
        ready = await chat.http.get("/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["database"].startswith("error: ")
        assert checks["slack"] == "ok"
        assert (await chat.http.get("/healthz")).status_code == 200
        # It comes back.
        (tmp_path / "elsewhere").rename(folder)
        assert (await chat.http.get("/readyz")).status_code == 200


async def test_metrics_move_in_a_conversation(sqlite_url: str) -> None:
    """Each metric the bot exports moves when its event happens in a real conversation."""
    async with Conversation.start(database_url=sqlite_url, codegen_create_per_minute=1) as chat:
        before = await scrape(chat)
        assert value(before, "codegen_bot_runs_created_total") == 0
        assert value(before, "codegen_bot_requests_queued_total", trigger="app_mention") == 0

        chat.slack.fail_next("chat.update", "channel_not_found")  # one card edit fails
        await chat.slash("first job")
        chat.emulator.script.next_run_ends("FAILED")
        await chat.slash("second job")  # over the budget of 1 create per minute: it waits
        waiting = await scrape(chat)
        assert value(waiting, "codegen_bot_requests_waiting") == 1
        assert value(waiting, "codegen_bot_rate_limit_waits_total", bucket="create") >= 1
        assert value(waiting, "codegen_bot_rate_limit_wait_seconds_count") >= 1

        await chat.run_until_idle()
        chat.emulator.script.fail_next_create(402, message="Agent run limit reached")
        await chat.mention("third job")
        await chat.run_until_idle()

        after = await scrape(chat)
        print("\n".join(f"{k[0]} {dict(k[1])} {v}" for k, v in sorted(after.items(), key=str)))
        queued = "codegen_bot_requests_queued_total"
        assert value(after, queued, trigger="slash_command") == 2
        assert value(after, queued, trigger="app_mention") == 1
        assert value(after, "codegen_bot_requests_waiting") == 0
        assert value(after, "codegen_bot_runs_created_total") == 2
        finished = "codegen_bot_runs_finished_total"
        assert value(after, finished, final_status="COMPLETE") == 1
        assert value(after, finished, final_status="FAILED") == 1
        calls = "codegen_bot_codegen_calls_total"
        assert value(after, calls, endpoint="create_run", status_code="200") == 2
        assert value(after, calls, endpoint="create_run", status_code="402") == 1
        assert value(after, calls, endpoint="list_runs", status_code="200") >= 2
        assert value(after, "codegen_bot_poll_lag_seconds_count") >= 2
        slack_errors = "codegen_bot_slack_errors_total"
        assert value(after, slack_errors, method="chat.update", error="channel_not_found") == 1
        slack_calls = "codegen_bot_slack_calls_total"
        assert value(after, slack_calls, method="chat.update", outcome="refused") == 1
        assert value(after, slack_calls, method="chat.update", outcome="ok") >= 3
        assert value(after, slack_calls, method="chat.postMessage", outcome="ok") >= 3
        # Every request was counted as an ack in flight while it was handled (bot.traffic).
        assert chat.runtime.traffic.answered >= 3
        assert chat.runtime.traffic.in_flight == 0
        # What the emulator saw agrees with the counters.
        assert len(chat.emulator.created_bodies()) == 2
        assert len(chat.emulator.calls("create_run")) == 3


async def test_serve_http_refuses_a_taken_port() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(OSError):
            async with serve_http(Starlette(), host="127.0.0.1", port=taken.getsockname()[1]):
                pass
    finally:
        taken.close()
