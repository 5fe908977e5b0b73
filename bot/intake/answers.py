"""Answers to `/codegen status|list|config`: read the store, return Slack text."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from bot.clock import Clock
from bot.codegen.models import StatusKind, classify_status
from bot.config import Settings
from bot.errors import LookupUnavailable, RequestRefused
from bot.intake.catalog import RepoCatalog
from bot.intake.options import (
    ConfigSetCommand,
    channel_options,
    org_options,
    resolve_options,
)
from bot.requests import OptionField, RunOptions
from bot.slack.render import status_emoji
from bot.slack.text import format_duration, shorten_mrkdwn, slack_escape
from bot.store.store import Store
from bot.store.tables import ChannelDefaultsChange, RequestStatus

log = logging.getLogger(__name__)

LIST_LIMIT = 10
# `/codegen config repo=owner/name` checks the name with Codegen before the ack, which Slack
# wants within 3 s; a slower answer saves the value unchecked (runs check it again).
REPO_CHECK_SECONDS = 2.0
_LABELS = {"repo": "repo", "model": "model", "agent_type": "agent"}


class Answers:
    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        clock: Clock,
        catalog: RepoCatalog | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.catalog = catalog

    async def status(self, run_id: int, *, user_id: str, channel_id: str) -> str:
        """A run's state for anyone; its summary only for the requester or in the run's
        channel, since a run started in a DM may summarise private work."""
        run = await self.store.runs.get(run_id)
        if run is None:
            return f"I am not following a run #{run_id}. `/codegen list` shows your recent runs."
        state = run.status or "PENDING"
        link = f"<{run.web_url}|#{run.id}>" if run.web_url else f"#{run.id}"
        age = _age(run.started_at, self.clock.now())
        lines = [f"{status_emoji(run.status)} Run {link} is *{state}* (started {age} ago)."]
        may_read = user_id == run.user_id or channel_id == run.channel_id
        finished = classify_status(run.status) in (StatusKind.SUCCESS, StatusKind.FAILURE)
        if may_read and run.summary and finished:
            lines.append(f"> {run.summary[:500]}")
        if not run.tracking and run.stop_reason:
            lines.append(run.stop_reason)
        return "\n".join(lines)

    async def recent(self, user_id: str) -> str:
        lines = await self.recent_lines(user_id)
        if not lines:
            return "You have not started any Codegen runs from Slack yet."
        return "\n".join(["*Your recent Codegen requests*", *lines])

    async def recent_lines(self, user_id: str, *, limit: int = LIST_LIMIT) -> list[str]:
        """One line per recent request of the person, newest first: its run's status and
        link, or why it did not start, or how long it has been queued (also App Home)."""
        rows = await self.store.requests.recent(user_id=user_id, limit=limit)
        runs = {r.id: r for r in await self.store.runs.many([x.run_id for x in rows if x.run_id])}
        now = self.clock.now()
        lines = []
        for row in rows:
            typed = " ".join((row.request_json or {}).get("prompt", row.prompt).split())
            prompt = shorten_mrkdwn(slack_escape(typed), 60)  # typed text: never markup
            run = runs.get(row.run_id) if row.run_id else None
            if run is not None:
                link = f"<{run.web_url}|#{run.id}>" if run.web_url else f"#{run.id}"
                lines.append(
                    f"{status_emoji(run.status)} {link} {run.status or 'PENDING'}: {prompt}"
                )
            elif row.status == RequestStatus.FAILED:
                reason = shorten_mrkdwn(row.error or "", 80).rstrip(".")
                lines.append(f"❌ not started ({reason}): {prompt}")
            else:
                lines.append(f"⏳ queued {_age(row.created_at, now)} ago: {prompt}")
        return lines

    async def recent_channels(self, user_id: str, *, limit: int) -> list[str]:
        """The channels of the person's recent requests, most recent first (App Home)."""
        rows = await self.store.requests.recent(user_id=user_id, limit=LIST_LIMIT)
        channels: list[str] = []
        for row in rows:
            if row.channel_id not in channels and not row.channel_id.startswith("D"):
                channels.append(row.channel_id)
        return channels[:limit]

    async def config(self, channel_id: str) -> str:
        defaults = await self.store.channels.defaults(channel_id)
        resolved = resolve_options(
            RunOptions(), channel_options(defaults), org_options(self.settings)
        )
        lines = [f"*Defaults for runs started in <#{channel_id}>*"]
        for name, option in resolved.items():
            label = _LABELS[name]
            if option.value is None:
                lines.append(f"• {label}: Codegen's organization default")
            else:
                lines.append(f"• {label}: `{option.value}` ({option.source})")
        change = await self.store.channels.last_change(channel_id)
        if change is not None:
            lines.append(describe_change(change, now=self.clock.now()))
        who = (
            "Admins (ADMIN_SLACK_USERS) change them"
            if self.settings.admin_slack_users
            else "Change them"
        )
        lines.append(
            f"{who} with `/codegen config repo=… model=… agent=…`; "
            "`/codegen config reset` clears the channel's defaults."
        )
        return "\n".join(lines)

    async def set_config(self, channel_id: str, command: ConfigSetCommand, *, user_id: str) -> str:
        values: dict[OptionField, str | None] = {
            "repo": command.options.repo,
            "model": command.options.model,
            "agent_type": command.options.agent_type,
        }
        values = {name: value for name, value in values.items() if value is not None}
        values.update({name: None for name in command.clear})
        note = ""
        repo = values.get("repo")
        if repo is not None and self.catalog is not None:
            try:
                values["repo"], note = await self._check_repo(repo)
            except RequestRefused as refused:
                return f"{refused.message} Nothing was saved."
        await self.store.channels.set_defaults(
            channel_id, values=values, user_id=user_id, now=self.clock.now()
        )
        return "Saved. " + note + await self.config(channel_id)

    async def _check_repo(self, value: str) -> tuple[str, str]:
        """(the value to save, a note): owner/name as Codegen spells it, or RequestRefused."""
        assert self.catalog is not None
        try:
            repo_id, label = await asyncio.wait_for(
                self.catalog.resolve(value), timeout=REPO_CHECK_SECONDS
            )
        except (TimeoutError, LookupUnavailable):
            log.warning("repository lookup for %s failed or took too long; saved unchecked", value)
            return value, (
                f"(I could not check `{value}` with Codegen in time; runs will check it.)\n"
            )
        if value.isdigit():
            return str(repo_id), ""
        return label, ""

    async def reset_config(self, channel_id: str, *, user_id: str) -> str:
        await self.store.channels.reset(channel_id, user_id=user_id, now=self.clock.now())
        return "Channel defaults cleared. " + await self.config(channel_id)


def describe_change(change: ChannelDefaultsChange, *, now: datetime) -> str:
    """ "Last changed by @who 3 min ago: repo `a` → `b`, model not set → `x`." """
    parts = []
    for field, label in _LABELS.items():
        old, new = change.before.get(field), change.after.get(field)
        if old != new:
            parts.append(f"{label} {_shown(old)} → {_shown(new)}")
    what = ", ".join(parts) or "no difference"
    return f"Last changed by <@{change.user_id}> {_age(change.changed_at, now)} ago: {what}."


def _shown(value: str | None) -> str:
    return f"`{slack_escape(value)}`" if value else "not set"


def _age(start: datetime, now: datetime) -> str:
    return format_duration(max(0.0, (now - start).total_seconds()))
