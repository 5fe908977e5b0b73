"""Who a Slack user is in the Codegen organization: matched by email.

Slack gives the email (`users.info`, with the `users:read.email` scope); Codegen has no look-up
by email, so the organization's members are paged (`GET /v1/organizations/{org_id}/users`),
cached for a while and paid from the shared read budget, like the repository list. The match
goes into every run's metadata as `codegen_user_id`; with CODEGEN_MEMBERS_ONLY a person who
matches nobody is refused, with the email Slack has for them and what an admin can do.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.codegen.models import UserResponse
from bot.errors import BudgetExhausted, CodegenError, LookupUnavailable, RateLimited
from bot.intake.catalog import ReadBudget
from bot.slack.gateway import SlackGateway

log = logging.getLogger(__name__)

USERS_PAGE = 100


@dataclass(frozen=True)
class Member:
    """A Slack user as the organization knows them."""

    email: str | None  # what Slack has (None: Slack gave none)
    codegen_user_id: int | None  # None: no member of the organization has that email


def not_a_member_text(member: Member) -> str:
    """Why a person is refused under CODEGEN_MEMBERS_ONLY, and what an admin does about it."""
    if member.email is None:
        return (
            "I cannot tell whether you are a member of this bot's Codegen organization: Slack "
            "did not give me your email address (the app needs the users:read.email scope). "
            "Nothing was started. Ask an admin to reinstall the app from its manifest."
        )
    return (
        f"Only members of this bot's Codegen organization may start runs, and no member has "
        f"the email Slack has for you (`{member.email}`). Nothing was started. An admin can "
        "invite that address to the organization in Codegen, or you can add it to your "
        "Codegen account; then ask again."
    )


class Members:
    def __init__(
        self,
        *,
        codegen: CodegenClient,
        slack: SlackGateway,
        clock: Clock,
        budget: ReadBudget | None = None,
        ttl: float = 300.0,
    ) -> None:
        self.codegen = codegen
        self.slack = slack
        self.clock = clock
        self.budget = budget
        self.ttl = timedelta(seconds=ttl)
        self._emails: dict[str, tuple[str | None, datetime]] = {}
        self._by_email: dict[str, UserResponse] | None = None
        self._loaded_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def match(self, slack_user_id: str) -> Member:
        """The person's email and Codegen user id. SlackUnavailable and LookupUnavailable
        (raised) mean: ask again later."""
        email = await self._email(slack_user_id)
        if email is None:
            return Member(email=None, codegen_user_id=None)
        directory = await self._directory()
        found = directory.get(email.lower())
        return Member(email=email, codegen_user_id=found.id if found else None)

    async def _email(self, slack_user_id: str) -> str | None:
        now = self.clock.now()
        cached = self._emails.get(slack_user_id)
        if cached is not None and now - cached[1] <= self.ttl:
            return cached[0]
        email = await self.slack.user_email(slack_user_id)
        self._emails[slack_user_id] = (email, now)
        return email

    async def _directory(self) -> dict[str, UserResponse]:
        async with self._lock:
            now = self.clock.now()
            fresh = self._loaded_at is not None and now - self._loaded_at <= self.ttl
            if self._by_email is not None and fresh:
                return self._by_email
            try:
                users = await self._load()
            except (CodegenError, BudgetExhausted) as error:
                if self._by_email is not None:
                    # An older list beats none: members rarely leave.
                    log.warning("could not refresh the member list (%s); using the last", error)
                    return self._by_email
                raise LookupUnavailable(f"listing the organization's members: {error}") from None
            self._by_email = {u.email.lower(): u for u in users if u.email}
            self._loaded_at = now
            return self._by_email

    async def _load(self) -> list[UserResponse]:
        users: list[UserResponse] = []
        while True:
            if self.budget is not None:
                await self.budget.spend_read()
            try:
                page = await self.codegen.list_users(skip=len(users), limit=USERS_PAGE)
            except RateLimited as error:
                if self.budget is not None:
                    await self.budget.block_reads(error.retry_after)
                raise
            users.extend(page.items)
            if not page.items or len(users) >= page.total:
                return users
