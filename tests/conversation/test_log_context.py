"""Logs of a real conversation: JSON lines that carry the request, run, channel and user ids,
and never a token, even at DEBUG where the Slack SDK logs its request headers."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.logs import REDACTED, configure_logging
from tests.harness import BOT_TOKEN, CODEGEN_TOKEN, SIGNING_SECRET, Conversation


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The bot's root handler writing JSON lines into a buffer; logging restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ["uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "httpx"]
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in names}
    stream = io.StringIO()
    configure_logging(
        log_format="json",
        secrets=[BOT_TOKEN, CODEGEN_TOKEN, SIGNING_SECRET],
        level=logging.DEBUG,
        stream=stream,
    )
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, (old_level, propagate) in saved.items():
        logging.getLogger(name).setLevel(old_level)
        logging.getLogger(name).propagate = propagate
    logging.captureWarnings(False)


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_conversation_logs_carry_ids_and_no_secrets(
    sqlite_url: str, captured: io.StringIO
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        await chat.slash("fix the flaky login test")
        await chat.run_until_idle()
        [request_id] = [row.id for row in await chat.queued_requests()]

    output = captured.getvalue()
    lines = records(captured)
    ids = {"request_id": request_id, "channel_id": "C1", "user_id": "U1"}

    # Intake: the Slack calls made while queuing the request carry its ids.
    intake = [
        r
        for r in lines
        if r["logger"].startswith("slack_sdk") and "chat.postMessage" in r["message"]
    ]
    assert intake, "the Slack SDK logged no chat.postMessage at DEBUG"
    assert all(r.get(k) == v for r in intake[:1] for k, v in ids.items()), intake[0]
    # Dispatcher: the run it created, with the request's ids.
    created = next(
        r for r in lines if r["logger"] == "bot.runs.dispatcher" and "→ run" in r["message"]
    )
    assert created["run_id"] == 1000
    assert {k: created.get(k) for k in ids} == ids
    # Tracker: every status change names the run and where it reports.
    changes = [r for r in lines if r["logger"] == "bot.runs.reporting" and " is " in r["message"]]
    assert [r["message"] for r in changes][-1] == "run 1000 is COMPLETE"
    for record in changes:
        assert record["run_id"] == 1000
        assert {k: record.get(k) for k in ids} == ids

    # Secrets: the SDK did log its Authorization header, and only the redacted form got out.
    assert REDACTED in output
    for secret in (BOT_TOKEN, CODEGEN_TOKEN, SIGNING_SECRET):
        assert secret not in output
