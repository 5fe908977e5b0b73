"""The App Home tab: a person's recent runs, the defaults of the channels they run in, and for
admins the allow-lists and the organization's budgets. Pure: it takes what to show and `now`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.slack.text import format_duration, shorten_mrkdwn

# Slack's limit on a section's text; the lines are cut before it, never inside markup.
SECTION_LIMIT = 3000


@dataclass(frozen=True)
class BudgetLine:
    name: str
    spent: int
    limit: int
    window_seconds: float
    blocked_until: datetime | None = None


@dataclass(frozen=True)
class DefaultsSection:
    """A channel's defaults as `/codegen config` says them there; `changeable`: the person may
    change them (a Change button opens the defaults form)."""

    channel_id: str
    text: str
    changeable: bool = False


#: The Change button of a channel's defaults on Home (`value`: the channel id).
EDIT_DEFAULTS_ACTION_ID = "edit_channel_defaults"


@dataclass(frozen=True)
class AdminView:
    allowed_users: Sequence[str]
    allowed_channels: Sequence[str]
    admins: Sequence[str]
    members_only: bool
    budgets: Sequence[BudgetLine]


def _section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": shorten_mrkdwn(text, SECTION_LIMIT)},
    }


def _people(ids: Sequence[str]) -> str:
    return ", ".join(f"<@{i}>" for i in ids)


def _channels(ids: Sequence[str]) -> str:
    return ", ".join(f"<#{i}>" for i in ids)


def admin_lines(admin: AdminView, *, now: datetime) -> list[str]:
    users = _people(admin.allowed_users) if admin.allowed_users else "everyone"
    channels = _channels(admin.allowed_channels) if admin.allowed_channels else "every channel"
    lines = [
        f"• May start runs: {users}"
        + (", members of the organization only" if admin.members_only else ""),
        f"• In: {channels}",
        f"• Admins (may stop any run and change channel defaults): {_people(admin.admins)}",
    ]
    for budget in admin.budgets:
        left = max(0, budget.limit - budget.spent)
        line = (
            f"• {budget.name}: {budget.spent} of {budget.limit} spent in the last "
            f"{format_duration(budget.window_seconds)}, {left} left"
        )
        if budget.blocked_until is not None:
            wait = max(0.0, (budget.blocked_until - now).total_seconds())
            line += f"; Codegen asked to wait {format_duration(wait)} more (429)"
        lines.append(line)
    return lines


def _defaults_section(defaults: DefaultsSection) -> dict[str, Any]:
    block = _section(defaults.text)
    if defaults.changeable:
        block["accessory"] = {
            "type": "button",
            "action_id": EDIT_DEFAULTS_ACTION_ID,
            "text": {"type": "plain_text", "text": "Change"},
            "value": defaults.channel_id,
        }
    return block


def render_home(
    *,
    recent: Sequence[str],
    channel_defaults: Sequence[DefaultsSection],
    admin: AdminView | None,
    now: datetime,
) -> dict[str, Any]:
    """The Home view. `recent`: one mrkdwn line per recent request; `channel_defaults`: the
    defaults of the channels the person ran in, with a Change button where they may."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Codegen"}},
        _section(
            "*Your recent runs*\n"
            + (
                "\n".join(recent)
                if recent
                else "You have not started any Codegen runs from Slack yet. Type "
                "`/codegen &lt;what to build or fix&gt;` in a channel, or mention @Codegen."
            )
        ),
    ]
    if channel_defaults:
        blocks.append({"type": "divider"})
        blocks += [_defaults_section(section) for section in channel_defaults]
    if admin is not None:
        blocks.append({"type": "divider"})
        blocks.append(
            _section(
                "*Admin: who may ask, and the organization's budgets*\n"
                + "\n".join(admin_lines(admin, now=now))
            )
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"Updated <!date^{int(now.timestamp())}^{{time}}|{now:%H:%M} UTC>. "
                    "`/codegen help` says what I can do.",
                }
            ],
        }
    )
    return {"type": "home", "blocks": blocks}
