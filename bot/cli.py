"""The `codegen-bot` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError
from bot.logs import configure_logging

if TYPE_CHECKING:
    from bot.config import Settings

log = logging.getLogger("bot")

BANNER_RULE = "=" * 78
DEFAULT_CONSOLE_WAIT = 120.0
# The console's log, in the temporary directory (overwritten by the next console).
CONSOLE_LOG_NAME = "codegen-bot-console.log"


def loud(lines: list[str]) -> None:
    print(BANNER_RULE, *lines, BANNER_RULE, sep="\n", file=sys.stderr, flush=True)


def _load_settings() -> Settings:
    from bot.config import load_settings  # pydantic: after `run` has paused the collector

    return load_settings()


#: The collector's thresholds once serving (Python's: 700, 10, 10). Under a burst, Python's
#: collected the young generation every 4-5 acks and everything (about 10 ms) every thousand
#: or so: 65-90 ms of collection a thousand acks (bench/acks.py). With these: 11-36 ms, no
#: full collection, at the cost of up to 10,000 objects of garbage waiting a little longer.
GC_THRESHOLDS = (10_000, 20, 50)


def _start_up_done() -> None:
    """What start-up made (modules, classes, table mappings, models: about half a million
    objects) lives as long as the process. Collecting while it was made cost about a fifth of
    the start; scanning it again in every full collection would stall acks later. Frozen, the
    collector leaves it alone from now on, and collects what serving makes less often."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.enable()


async def run_bot(settings: Settings, mode: str) -> None:
    """Run until SIGINT/SIGTERM: Socket Mode or HTTP mode, with the ticks in this loop."""
    from bot.app import build_bolt_app, build_runtime, build_web_app
    from bot.serving import serve_http

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform
            loop.add_signal_handler(signum, stop.set)

    runtime = await build_runtime(settings)
    bolt = build_bolt_app(runtime)
    runtime.start_ticks()
    runtime.mark_ready()
    try:
        if mode == "http":
            web = build_web_app(runtime, bolt)
            async with serve_http(web, host="0.0.0.0", port=settings.port) as port:
                _start_up_done()
                log.info(
                    "HTTP mode: Slack posts to http://<this host>:%s/slack/events; "
                    "health on /healthz and /readyz, metrics on /metrics",
                    port,
                )
                await stop.wait()
        else:
            await _socket_mode(settings, runtime, bolt, stop)
    finally:
        log.info("shutting down")
        await runtime.close()


async def _socket_mode(settings: Settings, runtime: Any, bolt: Any, stop: asyncio.Event) -> None:
    """Socket Mode; /healthz, /readyz and /metrics on PORT only when PORT is set."""
    from bot.app import build_web_app
    from bot.serving import serve_http
    from bot.socket_mode import SocketLink

    assert settings.slack_app_token is not None
    link = SocketLink(
        bolt, app_token=settings.slack_app_token.get_secret_value(), clock=runtime.clock
    )
    runtime.health.socket = link
    async with contextlib.AsyncExitStack() as stack:
        if "port" in settings.model_fields_set:
            web = build_web_app(runtime, None)
            port = await stack.enter_async_context(
                serve_http(web, host="0.0.0.0", port=settings.port)
            )
            log.info("Socket Mode; health and metrics on port %s", port)
        else:
            log.info("Socket Mode (set PORT to serve /healthz, /readyz and /metrics)")
        _start_up_done()
        await link.run(stop)


def cmd_run(args: argparse.Namespace) -> int:
    settings = _load_settings()
    configure_logging(log_format=settings.log_format, secrets=settings.secrets())
    mode = settings.resolved_mode(stdin_is_tty=sys.stdin.isatty())
    if mode == "console":
        gc.enable()  # a conversation in the terminal: no ack path to keep clear
        return _console(settings, wait=DEFAULT_CONSOLE_WAIT, verbose=False)
    missing = settings.missing_for_mode(mode)
    if missing:
        needed = ", ".join(f"{name} ({_WHAT[name]})" for name in missing)
        raise ConfigError(f"BOT_MODE={mode} needs {needed}")
    if settings.codegen_api_token is None or settings.codegen_org_id is None:
        # Real people in a real workspace must never get invented results: the emulator is
        # for the console and tests (or a CODEGEN_API_URL pointed at it on purpose, with a
        # token).
        unset = [
            name
            for name, value in (
                ("CODEGEN_API_TOKEN", settings.codegen_api_token),
                ("CODEGEN_ORG_ID", settings.codegen_org_id),
            )
            if value is None
        ]
        raise ConfigError(
            f"BOT_MODE={mode} talks to a real Slack workspace but {' and '.join(unset)} "
            f"{'is' if len(unset) == 1 else 'are'} not set: set CODEGEN_API_TOKEN and "
            "CODEGEN_ORG_ID (https://codegen.com/token). Without them "
            "runs would go to the built-in emulator and people would get invented results. "
            "To try the bot without Codegen, run `codegen-bot console`."
        )
    try:
        asyncio.run(run_bot(settings, mode))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"PORT {settings.port} is already in use; set PORT to a free port"
            ) from None
        raise
    return 0


_WHAT = {
    "SLACK_BOT_TOKEN": "the bot's xoxb- token",
    "SLACK_SIGNING_SECRET": "to verify Slack's requests",
    "SLACK_APP_TOKEN": "an xapp- app-level token",
}


def cmd_console(args: argparse.Namespace) -> int:
    settings = _load_settings()
    return _console(
        settings,
        wait=args.wait,
        verbose=args.verbose,
        pending=args.emulator_pending,
        active=args.emulator_active,
    )


def _console(
    settings: Settings,
    *,
    wait: float,
    verbose: bool,
    pending: float | None = None,
    active: float | None = None,
) -> int:
    from bot.devtools import console

    # The terminal is the conversation: the bot's own log lines go to a file, or to stderr
    # when asked for (-v).
    secrets = [*settings.secrets(), console.CONSOLE_BOT_TOKEN]
    if verbose:
        configure_logging(log_format=settings.log_format, secrets=secrets, level=logging.INFO)
        where = "on stderr (-v)"
        log_file = None
    else:
        path = Path(tempfile.gettempdir()) / CONSOLE_LOG_NAME
        log_file = path.open("w", encoding="utf-8")
        configure_logging(
            log_format=settings.log_format, secrets=secrets, level=logging.INFO, stream=log_file
        )
        where = f"{path} (-v shows it here)"
    try:
        return console.run_console(
            settings,
            wait_seconds=wait,
            pending_seconds=console.DEFAULT_PENDING_SECONDS if pending is None else pending,
            active_seconds=console.DEFAULT_ACTIVE_SECONDS if active is None else active,
            log=where,
        )
    finally:
        if log_file is not None:
            log_file.flush()


def cmd_emulator(args: argparse.Namespace) -> int:
    from bot.devtools.emulator import serve

    settings = _load_settings()
    serve(
        port=args.port,
        token=settings.effective_codegen_token,
        org_id=settings.effective_org_id,
        token_is_secret=settings.codegen_api_token is not None,
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _load_settings()
    configure_logging(log_format=settings.log_format, secrets=settings.secrets())
    from bot.store.db import create_engine, migrate

    async def go() -> None:
        engine = create_engine(settings.database_url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(go())
    print(f"database at head: {settings.database_url_shown}")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """Seal every stored personal token again under BOT_SECRET_KEY's first key."""
    settings = _load_settings()
    configure_logging(log_format=settings.log_format, secrets=settings.secrets())
    from bot.secret_box import SecretBox, SecretUnreadable, new_key

    key = settings.bot_secret_key
    if key is None or not key.get_secret_value().strip():
        print(
            "BOT_SECRET_KEY is not set, so nothing is sealed. A new key to set it to:\n"
            f"  BOT_SECRET_KEY={new_key()}",
            file=sys.stderr,
        )
        return 2
    box = SecretBox.from_keys(key.get_secret_value())
    assert box is not None

    async def go() -> tuple[int, int]:
        from bot.store.db import create_engine, migrate
        from bot.store.store import Store

        engine = create_engine(settings.database_url)
        await migrate(engine)
        store = Store(engine)
        resealed = unreadable = 0
        try:
            for row in await store.tokens.all():
                try:
                    sealed = box.reseal(row.sealed_token)
                except SecretUnreadable:
                    unreadable += 1
                    continue
                await store.tokens.reseal(row.slack_user_id, sealed_token=sealed)
                resealed += 1
        finally:
            await engine.dispose()
        return resealed, unreadable

    resealed, unreadable = asyncio.run(go())
    print(f"sealed {resealed} personal token{'s' if resealed != 1 else ''} under the first key")
    if unreadable:
        print(
            f"{unreadable} could not be opened with any key in BOT_SECRET_KEY: those people "
            "must `/codegen login` again",
            file=sys.stderr,
        )
        return 1
    if box.key_count > 1:
        print("Now remove the old keys from BOT_SECRET_KEY, keeping only the first.")
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from bot.slack.manifest import dump_manifest, http_manifest, load_manifest

    try:
        manifest = http_manifest(args.http) if args.http else load_manifest()
    except ValueError as error:
        raise ConfigError(str(error)) from None
    print(dump_manifest(manifest), end="")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from bot.doctor import run_doctor

    return run_doctor()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codegen-bot",
        description="Start Codegen agent runs from Slack and follow them in the thread.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the bot (Socket Mode, HTTP mode or console; see BOT_MODE)")
    console = sub.add_parser("console", help="talk to the bot in this terminal, no Slack needed")
    console.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_CONSOLE_WAIT,
        metavar="SECONDS",
        help="at end of input, wait this long for started runs to finish (default %(default)s)",
    )
    console.add_argument(
        "--emulator-pending",
        type=float,
        metavar="SECONDS",
        help="with the built-in emulator: how long a run stays PENDING (default 2)",
    )
    console.add_argument(
        "--emulator-active",
        type=float,
        metavar="SECONDS",
        help="with the built-in emulator: how long a run stays ACTIVE (default 4)",
    )
    console.add_argument(
        "-v", "--verbose", action="store_true", help="show the bot's log lines (INFO) on stderr"
    )
    emulator = sub.add_parser("emulator", help="serve the local Codegen API emulator")
    emulator.add_argument("--port", type=int, default=8765)
    sub.add_parser("migrate", help="apply database migrations and exit")
    manifest = sub.add_parser("manifest", help="print the Slack app manifest")
    manifest.add_argument(
        "--http", metavar="BASE_URL", help="HTTP-mode variant with request URLs under BASE_URL"
    )
    sub.add_parser("doctor", help="check settings, database, Slack and Codegen; print fixes")
    sub.add_parser(
        "rotate-key",
        help="seal stored personal tokens again under BOT_SECRET_KEY's first key "
        "(put the new key first, the old one after a comma)",
    )
    return parser


COMMANDS = {
    "run": cmd_run,
    "console": cmd_console,
    "emulator": cmd_emulator,
    "migrate": cmd_migrate,
    "manifest": cmd_manifest,
    "doctor": cmd_doctor,
    "rotate-key": cmd_rotate_key,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    if args.command == "run":
        gc.disable()  # until serving: see _start_up_done
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"codegen-bot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        gc.enable()


if __name__ == "__main__":
    sys.exit(main())
