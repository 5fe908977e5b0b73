"""Logging setup: one root handler, context fields, secret redaction, text or JSON lines.

    configure_logging(log_format=settings.log_format, secrets=settings.secrets())

    with log_context(request_id=req.id, channel_id=req.channel_id, user_id=req.user_id):
        log.info("queued")            # carries request_id, channel_id, user_id

    bind(run_id=run.id)               # adds run_id for the rest of this task
    log.info("created", extra={"web_url": url})   # extra= fields are emitted too

Context lives in a `contextvars.ContextVar`, so each asyncio task (each Slack event, each
dispatcher/tracker job) sees its own fields. The filters sit on the root *handler*, not on a
logger, so records from every library that propagates to the root (httpx, slack_sdk,
slack_bolt, uvicorn, sqlalchemy, apscheduler) are redacted too. Run uvicorn with
`log_config=None` so its records propagate here instead of to its own handlers
(configure_logging also re-routes them if uvicorn configured itself first).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO, Any, Literal

REDACTED = "[REDACTED]"

#: The context fields every line may carry (others passed to log_context/bind are kept too).
CONTEXT_FIELDS: tuple[str, ...] = ("request_id", "run_id", "channel_id", "user_id")

# Libraries that may install their own handlers; their records are sent to the root instead.
_REROUTED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
# Chatty at INFO (a line per scheduler tick, per Codegen call, per Alembic plugin); quieted
# unless the level is DEBUG. The bot's own lines and the metrics say what these would.
_QUIETED_LOGGERS = ("apscheduler", "httpx", "alembic.runtime.plugins")

_OWN_HANDLER_FLAG = "_codegen_bot_handler"

# Attributes every LogRecord has; anything else on a record came from extra= or the context.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}

# -- context ---------------------------------------------------------------------------------

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "codegen_bot_log_context", default=MappingProxyType({})
)


def current_context() -> dict[str, Any]:
    """The context fields bound in the current task."""
    return dict(_context.get())


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add fields to the context for the rest of the current task (None values are skipped).

    Returns a token for `unbind` when the fields should be dropped again before the task ends.
    """
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Restore the context as it was before the `bind` that returned `token`."""
    _context.reset(token)


@contextmanager
def log_context(
    *,
    request_id: Any = None,
    run_id: Any = None,
    channel_id: Any = None,
    user_id: Any = None,
    **fields: Any,
) -> Iterator[None]:
    """Context fields for every record logged inside the block (None values are skipped)."""
    token = bind(
        request_id=request_id, run_id=run_id, channel_id=channel_id, user_id=user_id, **fields
    )
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record; fields given with extra= win."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


# -- redaction -------------------------------------------------------------------------------

_TOKEN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers, whatever the scheme: "Authorization: Bearer x", {'authorization': 'x'}
    (
        re.compile(
            r"""(?i)(\bauthorization\b['"]?\s*[:=,]\s*(?:b(?=['"]))?['"]?)"""
            r"""((?:bearer|token|basic)\s+)?"""
            r"""(?!\[REDACTED\]|(?:bearer|token|basic)\s)[^\s'",;})\]]+"""
        ),
        r"\1\2" + REDACTED,
    ),
    # "Bearer <token>" anywhere else.
    (re.compile(r"(?i)\b(bearer\s+)(?!\[REDACTED\])[^\s'\",;})\]]+"), r"\1" + REDACTED),
    # Slack tokens: xoxb-, xoxp-, xoxa-, xoxs-, xoxr-, xoxe-, xoxe.xoxp-, xapp-.
    (re.compile(r"(?:xox[a-z]|xapp)(?:\.xox[a-z])?-[0-9A-Za-z-]+"), REDACTED),
)


_REDACTORS: weakref.WeakSet[Redactor] = weakref.WeakSet()

#: Secrets shorter than this are not replaced as substrings: a one-character secret would
#: turn every "s" in every line into [REDACTED]. `doctor` warns about such a secret instead.
MIN_REDACTED_LENGTH = 8


def too_short_to_redact(secret: str) -> bool:
    return 0 < len(secret) < MIN_REDACTED_LENGTH


class Redactor:
    """Replaces configured secret values and token-shaped strings with [REDACTED]."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        self._values = {s for s in secrets if s and not too_short_to_redact(s)}
        self._secrets: re.Pattern[str] | None = None
        self._compile()
        _REDACTORS.add(self)

    def add(self, secret: str) -> None:
        """Redact `secret` from now on too (a person's token, learned at run time)."""
        if secret and not too_short_to_redact(secret) and secret not in self._values:
            self._values.add(secret)
            self._compile()

    def _compile(self) -> None:
        values = sorted(self._values, key=len, reverse=True)
        self._secrets = (
            re.compile("|".join(re.escape(value) for value in values)) if values else None
        )

    def __call__(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        for pattern, replacement in _TOKEN_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def value(self, value: Any) -> Any:
        """Redact plain data: strings inside dicts, lists and tuples; numbers, booleans and
        None stay as they are; any other object becomes its redacted `str()`."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, bytes | bytearray):
            return self(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {str(self.value(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        return self(str(value))


def redact_also(secret: str) -> None:
    """Every installed redactor redacts `secret` from now on (tokens people log in with)."""
    for redactor in list(_REDACTORS):
        redactor.add(secret)


class RedactingFilter(logging.Filter):
    """Redacts the message, its arguments, exception and stack text, and extra= fields.

    The record is rewritten in place (message fully formatted, args dropped, exception text
    cached), so every handler after this filter sees only the redacted form.
    """

    def __init__(self, secrets: Sequence[str] = (), redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor if redactor is not None else Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        redact = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # bad format args: keep both parts, redacted, for the error report
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            # The cached text is what formatters print; dropping the live exception keeps a
            # formatter from re-rendering the unredacted original.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _RECORD_ATTRS:
                record.__dict__[key] = redact.value(value)
        return True


# -- formatters ------------------------------------------------------------------------------


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Context fields first (in CONTEXT_FIELDS order), then other extra= fields."""
    extras = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}
    ordered = {k: extras.pop(k) for k in CONTEXT_FIELDS if k in extras}
    ordered.update(sorted(extras.items()))
    return ordered


class TextFormatter(logging.Formatter):
    """`2025-01-01T12:00:00.000Z INFO bot.runs.dispatcher: created run request_id=… run_id=…`"""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = _extra_fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_plain(v)}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return self.redactor(line) if self.redactor is not None else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, context and extra fields,
    exc_info (formatted traceback) and stack_info when present."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            payload.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        if self.redactor is not None:
            payload = self.redactor.value(payload)
        return json.dumps(payload, default=str, ensure_ascii=False)


def _plain(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if (not text or " " in text) else text


# -- setup -----------------------------------------------------------------------------------


def configure_logging(
    *,
    log_format: Literal["text", "json"],
    secrets: Sequence[str],
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Install the bot's single root handler (replacing one installed earlier).

    Handlers installed by others on the root logger (e.g. pytest's capture) are left alone.
    Returns the handler, mainly for tests.
    """
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _OWN_HANDLER_FLAG, True)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter(redactor=redactor))
    formatter: logging.Formatter = (
        JsonFormatter(redactor) if log_format == "json" else TextFormatter(redactor)
    )
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _OWN_HANDLER_FLAG, False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level)

    for name in _REROUTED_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    quiet = isinstance(numeric, int) and numeric > logging.DEBUG
    for name in _QUIETED_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    logging.captureWarnings(True)
    return handler
