"""Logging: secrets never reach the output; JSON lines parse and carry the context fields."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from bot.logs import (
    REDACTED,
    RedactingFilter,
    Redactor,
    bind,
    configure_logging,
    current_context,
    log_context,
    unbind,
)

BOT_TOKEN = "xoxb-1111111111-2222222222-AbCdEfGhIjKlMnOpQrStUvWx"
APP_TOKEN = "xapp-1-A0123456789-1234567890123-0f0e0d0c0b0a09080706050403020100"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CODEGEN_TOKEN = "sk-codegen-5e1c7a2b9d8f4e3a"  # no recognisable shape: only the list catches it
SECRETS = [BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, CODEGEN_TOKEN]
# Token-shaped values that are *not* in the configured list: the patterns must catch them.
STRAY_USER_TOKEN = "xoxp-9999-8888-7777-ffffeeeeddddcccc"
STRAY_ROTATING = "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAtMTIzNDU2Nzg5MA"
STRAY_BEARER = "eyJhbGciOiJIUzI1NiJ9.payload.sig"
ALL_SECRETS = [*SECRETS, STRAY_USER_TOKEN, STRAY_ROTATING, STRAY_BEARER, "xyz-bearer-value"]


@pytest.fixture
def configure() -> Iterator[Callable[..., io.StringIO]]:
    """configure_logging into a StringIO; the root logger is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    touched = ["uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"]
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).propagate) for n in touched}

    def _configure(log_format: str = "json", **kwargs: object) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(
            log_format=log_format,  # type: ignore[arg-type]
            secrets=kwargs.pop("secrets", SECRETS),  # type: ignore[arg-type]
            stream=stream,
            **kwargs,  # type: ignore[arg-type]
        )
        return stream

    yield _configure

    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved_level)
    for name, (level, propagate) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).propagate = propagate
    logging.captureWarnings(False)


def _assert_clean(output: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in output, f"secret leaked: {secret!r}"
    # Fragments too: a token must not survive partially either.
    assert "AbCdEfGhIjKlMnOpQrStUvWx" not in output
    assert "5e1c7a2b9d8f4e3a" not in output


def _log_everything() -> None:
    logging.getLogger("bot.runs.dispatcher").info("starting with token %s", BOT_TOKEN)
    logging.getLogger("bot.app").warning("app token in message: " + APP_TOKEN)
    logging.getLogger("bot.codegen.client").error(
        "request failed", extra={"headers": {"Authorization": f"Bearer {CODEGEN_TOKEN}"}}
    )
    logging.getLogger("httpx").warning(
        "HTTP Request headers: Authorization: Bearer %s", "xyz-bearer-value"
    )
    logging.getLogger("httpcore.http11").warning(
        "send_request_headers.started request=<Request [b'POST']> headers=%r",
        [(b"Authorization", f"Bearer {STRAY_BEARER}".encode())],
    )
    logging.getLogger("slack_sdk.web.base_client").warning(
        "Sending a request - url: https://slack.com/api/auth.test?token=%s", STRAY_USER_TOKEN
    )
    logging.getLogger("slack_bolt.App").warning("rotated token %s", STRAY_ROTATING)
    logging.getLogger("uvicorn.error").warning("signature secret %s", SIGNING_SECRET)
    try:
        raise RuntimeError(f"Slack said invalid_auth for {BOT_TOKEN} / {CODEGEN_TOKEN}")
    except RuntimeError:
        logging.getLogger("bot.slack.gateway").exception("posting failed with %s", APP_TOKEN)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_secret_reaches_the_output(
    configure: Callable[..., io.StringIO], log_format: str
) -> None:
    stream = configure(log_format)
    _log_everything()
    output = stream.getvalue()
    _assert_clean(output)
    assert output.count(REDACTED) >= 10
    assert REDACTED + "]" not in output  # redacting twice must not mangle the marker
    # What is around the secrets survives.
    assert "starting with token [REDACTED]" in output
    assert "Authorization: Bearer [REDACTED]" in output
    assert "RuntimeError: Slack said invalid_auth for [REDACTED] / [REDACTED]" in output
    assert "Traceback (most recent call last)" in output


def test_json_lines_parse_and_carry_fields(configure: Callable[..., io.StringIO]) -> None:
    stream = configure("json")
    log = logging.getLogger("bot.runs.tracker")
    with log_context(request_id="req-1", channel_id="C123", user_id="U456"):
        log.info("queued")
        with log_context(run_id=42):
            log.info("polled %d runs", 3, extra={"status": "RUNNING"})
        log.info("override", extra={"channel_id": "C999"})
    log.info("outside")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [entry["message"] for entry in lines] == [
        "queued",
        "polled 3 runs",
        "override",
        "outside",
        "failed",
    ]
    first = lines[0]
    assert set(first) >= {"ts", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "bot.runs.tracker"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert (first["request_id"], first["channel_id"], first["user_id"]) == ("req-1", "C123", "U456")
    assert "run_id" not in first
    assert lines[1]["run_id"] == 42 and lines[1]["status"] == "RUNNING"
    assert lines[1]["request_id"] == "req-1"
    assert lines[2]["channel_id"] == "C999"  # extra= beats the context
    assert "request_id" not in lines[3]
    assert lines[4]["level"] == "ERROR"
    assert "ValueError: boom" in lines[4]["exc_info"]


def test_third_party_loggers_get_context_and_format(
    configure: Callable[..., io.StringIO],
) -> None:
    stream = configure("json")
    with log_context(request_id="req-7"):
        logging.getLogger("slack_bolt.AsyncApp").warning("listener error")
        logging.getLogger("uvicorn.access").warning("POST /slack/events 200")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["request_id"]) for e in lines] == [
        ("slack_bolt.AsyncApp", "req-7"),
        ("uvicorn.access", "req-7"),
    ]


def test_text_format_shows_context(configure: Callable[..., io.StringIO]) -> None:
    stream = configure("text")
    with log_context(request_id="req-2", run_id=7):
        logging.getLogger("bot.runs.dispatcher").info("created run")
    line = stream.getvalue().strip()
    assert " INFO bot.runs.dispatcher: created run" in line
    assert line.endswith("request_id=req-2 run_id=7")


def test_level_and_reconfigure_replace_the_handler(
    configure: Callable[..., io.StringIO],
) -> None:
    first = configure("text")
    second = configure("json", level=logging.WARNING)
    own = [h for h in logging.getLogger().handlers if getattr(h, "_codegen_bot_handler", False)]
    assert len(own) == 1
    logging.getLogger("bot").info("hidden")
    logging.getLogger("bot").warning("shown")
    assert first.getvalue() == ""
    assert [json.loads(x)["message"] for x in second.getvalue().splitlines()] == ["shown"]


async def test_context_is_per_task() -> None:
    async def worker(run_id: int) -> dict[str, object]:
        bind(run_id=run_id)
        await asyncio.sleep(0)
        return current_context()

    with log_context(request_id="outer"):
        results = await asyncio.gather(worker(1), worker(2))
        assert current_context() == {"request_id": "outer"}
    assert results == [{"request_id": "outer", "run_id": 1}, {"request_id": "outer", "run_id": 2}]
    assert current_context() == {}


def test_bind_and_unbind() -> None:
    token = bind(run_id=5, user_id=None)
    try:
        assert current_context() == {"run_id": 5}
    finally:
        unbind(token)
    assert current_context() == {}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def", "Authorization: Bearer [REDACTED]"),
        ("authorization=Token abc", "authorization=Token [REDACTED]"),
        ("{'Authorization': 'Basic dXNlcjpwYXNz'}", "{'Authorization': 'Basic [REDACTED]'}"),
        ('{"authorization": "secret-value"}', '{"authorization": "[REDACTED]"}'),
        ("got bearer abc123, retrying", "got bearer [REDACTED], retrying"),
        ("token=xoxb-123-456-abc&x=1", "token=[REDACTED]&x=1"),
        ("xoxe-1-abcDEF and xapp-1-A1-2-ff", "[REDACTED] and [REDACTED]"),
        ("nothing secret here: Bearer-less xox", "nothing secret here: Bearer-less xox"),
    ],
)
def test_redactor_patterns(text: str, expected: str) -> None:
    redact = Redactor()
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent: filter and formatter both redact


def test_filter_alone_redacts_record_in_place() -> None:
    """Other handlers after ours (e.g. a log shipper) see the redacted record."""
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "token %s and %r", (BOT_TOKEN, {"k": CODEGEN_TOKEN}), None
    )
    record.__dict__["custom"] = [CODEGEN_TOKEN, 3]
    assert RedactingFilter(SECRETS).filter(record)
    assert record.getMessage() == "token [REDACTED] and {'k': '[REDACTED]'}"
    assert record.__dict__["custom"] == ["[REDACTED]", 3]


def test_a_secret_too_short_to_redact_leaves_the_text_readable() -> None:
    """A one-character secret would turn every "s" into [REDACTED]: short secrets are not
    replaced as substrings (doctor warns about them); longer ones still are."""
    redact = Redactor(["s", "abc1234", "long-enough-secret"])
    assert redact("Will assume the long-enough-secret") == "Will assume the [REDACTED]"
    assert redact("abc1234") == "abc1234"
