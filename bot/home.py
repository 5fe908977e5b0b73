"""App Home: published when a person opens it, and again when their runs change.

Only people who opened Home at least once are kept fresh (bot.store.homes), each at most once
every HOME_QUIET_SECONDS on changes, at low priority in views.publish's budget, so status cards
and final replies never wait behind it. Replicas share the work through the store: each moves a
person's `published_at` forward only from the value it read, so one of them publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bot.background import BackgroundTasks
from bot.clock import Clock
from bot.config import Settings
from bot.errors import SlackError
from bot.intake.answers import Answers
from bot.runs.budget import CREATE, LOGS, PR_EDIT, READ, OrgBudget
from bot.slack.budget import Priority
from bot.slack.gateway import SlackGateway
from bot.slack.home import AdminView, BudgetLine, DefaultsSection, render_home
from bot.store.store import Store
from bot.store.tables import HomeTab

log = logging.getLogger(__name__)

HOME_TICK_SECONDS = 2.0
# A person's Home follows their runs at most this often (views.publish is Tier 4, 100 a
# minute per workspace; a card may change every few seconds).
HOME_QUIET_SECONDS = 10.0
HOMES_PER_TICK = 20
RECENT_RUNS = 10
CHANNELS_SHOWN = 3
_BUDGET_NAMES = {
    CREATE: "Creates",
    READ: "Reads",
    PR_EDIT: "Pull request changes",
    LOGS: "Progress reads (run logs)",
}


class AppHome:
    def __init__(
        self,
        *,
        store: Store,
        slack: SlackGateway,
        answers: Answers,
        settings: Settings,
        budget: OrgBudget,
        clock: Clock,
        may_not_change_defaults: Callable[..., str | None] = lambda **_: None,
    ) -> None:
        """`may_not_change_defaults(user_id=…, channel_id=…)`: why the person may not change
        a channel's defaults, or None (bot.intake.Intake's policy)."""
        self.may_not_change_defaults = may_not_change_defaults
        self.store = store
        self.slack = slack
        self.answers = answers
        self.settings = settings
        self.budget = budget
        self.clock = clock
        self._background = BackgroundTasks()

    def opened(self, *, team_id: str, user_id: str) -> None:
        """A person opened the Home tab (after the ack): publish it for them now."""
        self._background.start(self._open(team_id=team_id, user_id=user_id))

    async def tick(self) -> None:
        """Publish again the Homes whose person's runs changed since (quiet ones first)."""
        rows = await self.store.homes.stale(
            now=self.clock.now(),
            quiet=timedelta(seconds=HOME_QUIET_SECONDS),
            limit=HOMES_PER_TICK,
        )
        for row in rows:
            await self._publish(row, priority=Priority.LOW)

    async def idle(self) -> None:
        await self._background.idle()

    async def _open(self, *, team_id: str, user_id: str) -> None:
        try:
            row = await self.store.homes.opened(
                team_id=team_id, user_id=user_id, now=self.clock.now()
            )
            await self._publish(row, priority=Priority.HIGH)
        except Exception:
            log.exception("App Home for %s could not be published", user_id)

    async def _publish(self, row: HomeTab, *, priority: Priority) -> None:
        now = self.clock.now()
        read = row.published_at
        key = {"team_id": row.team_id, "user_id": row.user_id}
        if not await self.store.homes.claim(**key, read=read, now=now):
            return  # another replica is publishing it
        try:
            view = await self.view_for(row.user_id)
            await self.slack.publish_home(user_id=row.user_id, view=view, priority=priority)
        except SlackError as error:
            # Busy or refused: the next tick tries again (the person's Home stays as it was).
            log.info("App Home for %s not published: %s", row.user_id, error)
            await self.store.homes.unclaim(**key, claimed=now, back_to=read)

    async def view_for(self, user_id: str) -> dict[str, Any]:
        recent = await self.answers.recent_lines(user_id, limit=RECENT_RUNS)
        channels = await self.answers.recent_channels(user_id, limit=CHANNELS_SHOWN)
        defaults = [
            DefaultsSection(
                channel_id=channel,
                text=await self.answers.config(channel),
                changeable=self.may_not_change_defaults(user_id=user_id, channel_id=channel)
                is None,
            )
            for channel in channels
        ]
        admin = None
        if user_id in self.settings.admin_slack_users:
            admin = AdminView(
                allowed_users=self.settings.allowed_slack_users,
                allowed_channels=self.settings.allowed_slack_channels,
                admins=self.settings.admin_slack_users,
                members_only=self.settings.codegen_members_only,
                budgets=[
                    BudgetLine(
                        name=_BUDGET_NAMES.get(usage.bucket, usage.bucket),
                        spent=usage.spent,
                        limit=usage.limit,
                        window_seconds=usage.window_seconds,
                        blocked_until=usage.blocked_until,
                    )
                    for usage in await self.budget.usage()
                ],
            )
        return render_home(
            recent=recent, channel_defaults=defaults, admin=admin, now=self.clock.now()
        )
