"""The baseline the bot's acks and start are measured against: a bare Bolt AsyncApp that
only acks `/codegen`, served like the bot (Starlette behind uvicorn, bot.serving) with a
/healthz route. It imports what any Bolt app over HTTP must, and nothing else.

    python bench/bare_bolt.py --port 8001     # SLACK_SIGNING_SECRET from the environment
    python bench/bare_bolt.py --port 8001 --libraries

With --libraries it first imports the libraries the bot is built on (SQLAlchemy's asyncio
extension and ORM with the SQLite driver, pydantic-settings, httpx, APScheduler,
prometheus_client) and nothing of the bot: the least any bot on this stack pays to start, shown
beside the bot's start so the share that is the bot's own code can be read off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler  # noqa: E402
from slack_bolt.async_app import AsyncAck, AsyncApp  # noqa: E402
from slack_bolt.authorization import AuthorizeResult  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bot.serving import serve_http  # noqa: E402


def build_app(signing_secret: str) -> Starlette:
    async def authorize(**_kwargs: object) -> AuthorizeResult:
        # Known at once: a bare app over loopback must never ask Slack (auth.test) first.
        return AuthorizeResult(
            enterprise_id=None, team_id="T0BENCH", bot_token="xoxb-bare-baseline"
        )

    bolt = AsyncApp(signing_secret=signing_secret, authorize=authorize)

    @bolt.command("/codegen")
    async def codegen(ack: AsyncAck, command: dict[str, str]) -> None:
        await ack(f"Queued: {command.get('text', '')}")

    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/slack/events", events, methods=["POST"]), Route("/healthz", healthz)]
    )


async def serve(port: int) -> None:
    app = build_app(os.environ["SLACK_SIGNING_SECRET"])
    async with serve_http(app, host="127.0.0.1", port=port):
        await asyncio.Event().wait()


def import_libraries() -> None:
    import apscheduler.schedulers.asyncio  # noqa: F401
    import httpx  # noqa: F401
    import prometheus_client  # noqa: F401
    import pydantic_settings  # noqa: F401
    import sqlalchemy.dialects.sqlite.aiosqlite
    import sqlalchemy.ext.asyncio
    import sqlalchemy.orm  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--libraries", action="store_true", help="import the bot's libraries")
    args = parser.parse_args()
    if args.libraries:
        import_libraries()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
