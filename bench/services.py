"""The fake Slack (its rates on the wall clock) and the Codegen emulator in a process of their
own, so the benches that run the bot as a process do not share a CPU with them.

    python bench/services.py --bot-token xoxb-… --codegen-token … --org-id 7 --channels 20

Prints one JSON line ({"slack_api_url", "codegen_api_url", "response_urls"}: as many
response URLs as `--response-urls`, for the slash commands) once both answer, then serves
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.devtools.emulator import EmulatorState, running_emulator  # noqa: E402
from bot.devtools.slack import FakeSlack  # noqa: E402


def channel_names(count: int) -> list[str]:
    return [f"C{k:03d}" for k in range(count)]


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    emulator = EmulatorState(token=args.codegen_token, org_id=args.org_id)
    async with contextlib.AsyncExitStack() as stack:
        slack = await stack.enter_async_context(
            FakeSlack.running(bot_token=args.bot_token, team_id=args.team)
        )
        for name in channel_names(args.channels):
            slack.add_channel(name, name=name.lower())
        codegen_url = await stack.enter_async_context(running_emulator(emulator))
        urls = [slack.response_url() for _ in range(args.response_urls)]
        print(
            json.dumps(
                {
                    "slack_api_url": slack.api_url,
                    "codegen_api_url": codegen_url,
                    "response_urls": urls,
                }
            )
        )
        sys.stdout.flush()
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bot-token", required=True)
    parser.add_argument("--codegen-token", required=True)
    parser.add_argument("--org-id", type=int, required=True)
    parser.add_argument("--team", default="T0BENCH")
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--response-urls", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
