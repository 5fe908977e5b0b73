"""What a person asked for in Slack, as the handlers hand it to the bot.

A RunRequest is frozen: the handler builds it from one Slack payload, and from then on it only
travels (intake persists it, the dispatcher sends it). The Slack context is kept exactly as the
metadata contract in DESIGN.md needs it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AgentType = Literal["codegen", "claude_code"]


class Trigger(StrEnum):
    SLASH_COMMAND = "slash_command"
    APP_MENTION = "app_mention"
    THREAD_REPLY = "thread_reply"
    DIRECT_MESSAGE = "direct_message"


class SlackContext(BaseModel):
    model_config = ConfigDict(frozen=True)

    team_id: str
    channel_id: str
    user_id: str
    # The thread the bot reports to; None until the bot has posted a root message for a slash
    # command (intake fills it in).
    thread_ts: str | None = None
    # The message that asked (None for a slash command, which has no message).
    message_ts: str | None = None
    trigger: Trigger
    permalink: str | None = None


class SlackFile(BaseModel):
    """A file attached to the triggering message, as Slack describes it (not yet downloaded)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    name: str | None = None
    mimetype: str | None = None
    size: int | None = None
    url_private: str | None = None
    url_private_download: str | None = None
    file_access: str | None = None


class RunOptions(BaseModel):
    """Options typed inline (`repo=`, `model=`, `agent=`); None means "not given here"."""

    model_config = ConfigDict(frozen=True)

    repo: str | None = None  # a numeric id or owner/name, resolved at intake
    model: str | None = None
    agent_type: AgentType | None = None

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class RunRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: str
    options: RunOptions = Field(default_factory=RunOptions)
    slack: SlackContext
    files: tuple[SlackFile, ...] = ()
    # "<channel>:<message ts>" for message-borne requests: a Slack retry, and the app_mention
    # and message/file_share events that one message can produce, share it, so the message
    # is handled once. None for slash commands (Slack does not retry them).
    dedupe_key: str | None = None
    # For slash commands: where to send ephemeral replies after the ack.
    response_url: str | None = None

    def codegen_metadata(self, *, request_id: str) -> dict[str, Any]:
        """The metadata stored with the run (stable keys: add, never rename)."""
        return {
            "source": "slack",
            "request_id": request_id,
            "slack": {
                "team_id": self.slack.team_id,
                "channel_id": self.slack.channel_id,
                "user_id": self.slack.user_id,
                "thread_ts": self.slack.thread_ts,
                "message_ts": self.slack.message_ts,
                "trigger": self.slack.trigger.value,
                "permalink": self.slack.permalink,
            },
        }
