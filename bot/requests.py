"""What a person asked for in Slack: the vocabulary every part of the bot shares.

A RunRequest is frozen: the handler builds it from one Slack payload, and from then on it only
travels (intake persists it, the dispatcher sends it). The Slack context is kept exactly as the
metadata contract in docs/contracts.md needs it. The options a request runs with are resolved
once, at intake, and stored with it (StoredOptions), so the card, the dispatcher and `/codegen
list` read the same values and where each came from.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.codegen.models import AgentType, PullRequestState

__all__ = [
    "AgentType",
    "OptionField",
    "OptionSource",
    "ResolvedOption",
    "ResolvedOptions",
    "RunOptions",
    "RunRequest",
    "SlackContext",
    "SlackFile",
    "StopRequest",
    "StoredOptions",
    "Trigger",
]

OptionField = Literal["repo", "model", "agent_type"]
OptionSource = Literal["inline", "channel default", "org default"]


class Trigger(StrEnum):
    SLASH_COMMAND = "slash_command"
    APP_MENTION = "app_mention"
    THREAD_REPLY = "thread_reply"
    DIRECT_MESSAGE = "direct_message"
    # A button on the bot's card or final reply (never a run's trigger: buttons stop runs
    # and change pull requests).
    BUTTON = "button"
    # Slack's own stop button on a run thread's agent session (agent_session_stopped): only
    # ever stops a run, like BUTTON.
    AGENT_SESSION = "agent_session"
    # The run form, opened by `/codegen` with no text, submitted.
    MODAL = "modal"
    # The message shortcut "Send to Codegen": the form, prefilled from a message, submitted.
    MESSAGE_SHORTCUT = "message_shortcut"

    @property
    def posts_root(self) -> bool:
        """No message asked (a command, the blank form): the bot posts one to thread on."""
        return self in (Trigger.SLASH_COMMAND, Trigger.MODAL)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class SlackContext(_Frozen):
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
    # Whose message a shortcut sent to Codegen, when not the requester's own (None otherwise).
    author_id: str | None = None


class SlackFile(BaseModel):
    """A file attached to the triggering message, as Slack describes it (not yet downloaded)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    id: str
    name: str | None = None
    mimetype: str | None = None
    size: int | None = None
    url_private: str | None = None
    url_private_download: str | None = None
    file_access: str | None = None


class RunOptions(_Frozen):
    """Options typed inline (`repo=`, `model=`, `agent=`); None means "not given here"."""

    repo: str | None = None  # a numeric id or owner/name, resolved at intake
    model: str | None = None
    agent_type: AgentType | None = None

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class RunRequest(_Frozen):
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

    def codegen_metadata(
        self, *, request_id: str, codegen_user_id: int | None = None
    ) -> dict[str, Any]:
        """The metadata stored with the run (stable keys: add, never rename)."""
        return {
            "source": "slack",
            "request_id": request_id,
            # The Codegen member the Slack user matched by email (None: no match).
            "codegen_user_id": codegen_user_id,
            "slack": {
                "team_id": self.slack.team_id,
                "channel_id": self.slack.channel_id,
                "user_id": self.slack.user_id,
                "thread_ts": self.slack.thread_ts,
                "message_ts": self.slack.message_ts,
                "trigger": self.slack.trigger.value,
                "permalink": self.slack.permalink,
                "author_id": self.slack.author_id,
            },
        }


class StopRequest(_Frozen):
    """Someone asked to stop a run: `/codegen stop <id>`, `@Codegen stop` in a run's thread, or
    the card's Stop button. `run_id` None: the latest run of the thread in `slack`."""

    run_id: int | None = None
    slack: SlackContext
    response_url: str | None = None


class PullRequestStateRequest(_Frozen):
    """Someone pressed a pull request button (Ready for review, Draft, Close, Reopen) on a
    run's final reply: put pull request `pr_id` of run `run_id` in `state`."""

    run_id: int
    pr_id: int
    state: PullRequestState
    slack: SlackContext


# -- where options came from ------------------------------------------------------------------


class ResolvedOption(_Frozen):
    value: str | None = None
    # None: nobody set it, the API uses the organization's own default.
    source: OptionSource | None = None


class ResolvedOptions(_Frozen):
    repo: ResolvedOption = ResolvedOption()
    model: ResolvedOption = ResolvedOption()
    agent_type: ResolvedOption = ResolvedOption()

    def effective(self) -> RunOptions:
        """The values to send (None: let the API decide)."""
        return RunOptions.model_validate(
            {
                "repo": self.repo.value,
                "model": self.model.value,
                "agent_type": self.agent_type.value,
            }
        )

    def items(self) -> list[tuple[OptionField, ResolvedOption]]:
        return [("repo", self.repo), ("model", self.model), ("agent_type", self.agent_type)]


class StoredOptions(BaseModel):
    """The options a request runs with, as stored with the request and its run."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    resolved: ResolvedOptions = ResolvedOptions()
    repo_id: int | None = None  # the repository the `repo` option resolved to
    repo_label: str | None = None  # "acme/web" for the card, when the option was an id

    @property
    def model(self) -> str | None:
        return self.resolved.model.value

    @property
    def agent_type(self) -> AgentType | None:
        return self.resolved.effective().agent_type
