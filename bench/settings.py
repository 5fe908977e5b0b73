"""The bot's settings in the benches that drive its tracker, kept apart from the emulator and
the fake Slack so that a bench process holding only the bot imports no more than the bot."""

from __future__ import annotations

from typing import Any

from bot.config import Settings

TOKEN = "bench-codegen-token"
BOT_TOKEN = "xoxb-bench"
ORG_ID = 7


def bench_settings(
    *, slack_api_url: str, codegen_url: str, database_url: str, **overrides: Any
) -> Settings:
    """The bot's settings in the tracker benches (HTTP mode, no .env file read)."""
    return Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret="bench-secret",
        slack_api_url=slack_api_url,
        codegen_api_token=TOKEN,
        codegen_org_id=ORG_ID,
        codegen_api_url=codegen_url,
        database_url=database_url,
        bot_mode="http",
        _env_file=None,  # type: ignore[call-arg]
        **overrides,
    )
