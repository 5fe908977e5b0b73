"""The organization's repositories, cached: `repo=owner/name` becomes a repo id.

Every page read is paid from the organization's shared read budget (when given), like the
tracker's reads, so a lookup never pushes the org over Codegen's read limit.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
from datetime import datetime, timedelta
from typing import Protocol

from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.codegen.models import RepoResponse
from bot.errors import (
    BudgetExhausted,
    CodegenError,
    LookupUnavailable,
    RateLimited,
    RequestRefused,
)
from bot.slack.text import sentence

log = logging.getLogger(__name__)

REPO_PAGE = 100


class ReadBudget(Protocol):
    """The organization's shared read budget (bot.runs.budget.OrgBudget)."""

    async def spend_read(self) -> None:
        """Wait for a read slot; BudgetExhausted when none comes soon enough."""
        ...

    async def block_reads(self, seconds: float) -> None:
        """Codegen answered 429: no reads for `seconds`."""
        ...


class RepoCatalog:
    def __init__(
        self,
        *,
        codegen: CodegenClient,
        clock: Clock,
        ttl: float = 300.0,
        budget: ReadBudget | None = None,
    ) -> None:
        self.codegen = codegen
        self.clock = clock
        self.ttl = ttl
        self.budget = budget
        self._repos: list[RepoResponse] | None = None
        self._loaded_at: datetime | None = None
        self._lock = asyncio.Lock()

    def fresh(self) -> list[RepoResponse] | None:
        """The list when it was read within the TTL, else None (no I/O: the ack path)."""
        if self._repos is None or self._loaded_at is None:
            return None
        if self.clock.now() - self._loaded_at > timedelta(seconds=self.ttl):
            return None
        return self._repos

    def refusal_now(self, value: str) -> str | None:
        """Why `value` (an id or owner/name) names no repository, judged from a fresh list
        without I/O; None when it does, or when the list is not fresh enough to say."""
        repos = self.fresh()
        if repos is None:
            return None
        if value.isdigit():
            if any(r.id == int(value) for r in repos):
                return None
            return _unknown(f"#{value}", repos)
        if any(r.full_name.lower() == value.lower() for r in repos):
            return None
        return _unknown(value, repos)

    async def repos(self) -> list[RepoResponse]:
        async with self._lock:
            now = self.clock.now()
            stale = self._loaded_at is None or now - self._loaded_at > timedelta(seconds=self.ttl)
            if self._repos is None or stale:
                try:
                    self._repos = await self._load()
                except (CodegenError, BudgetExhausted) as error:
                    if self._repos is None:
                        raise
                    # An older list beats none: repositories rarely disappear.
                    log.warning("could not refresh the repository list (%s); using the last", error)
                    return self._repos
                self._loaded_at = now
            return self._repos

    async def _load(self) -> list[RepoResponse]:
        repos: list[RepoResponse] = []
        while True:
            if self.budget is not None:
                await self.budget.spend_read()
            try:
                page = await self.codegen.list_repos(skip=len(repos), limit=REPO_PAGE)
            except RateLimited as error:
                if self.budget is not None:
                    await self.budget.block_reads(error.retry_after)
                raise
            repos.extend(page.items)
            # An empty page ends the walk even if `total` claims more: never loop forever.
            if not page.items or len(repos) >= page.total:
                return repos

    async def resolve(self, value: str) -> tuple[int, str]:
        """(repo id, label) for a numeric id or owner/name.

        RequestRefused (with the closest names) for a name Codegen does not know;
        LookupUnavailable when Codegen cannot be asked right now."""
        if value.isdigit():
            repo_id = int(value)
            try:
                repos = await self.repos()
            except (CodegenError, BudgetExhausted):
                return repo_id, f"#{repo_id}"  # an id needs no lookup; the API will judge it
            label = next((r.full_name for r in repos if r.id == repo_id), f"#{repo_id}")
            return repo_id, label
        try:
            repos = await self.repos()
        except BudgetExhausted as error:
            raise LookupUnavailable(f"looking up repository `{value}`: {error}") from None
        except CodegenError as error:
            if error.retryable:
                raise LookupUnavailable(
                    f"looking up repository `{value}`: {error.message}"
                ) from None
            raise RequestRefused(
                sentence(f"I could not look up repository `{value}` in Codegen: {error.message}")
            ) from None
        found = next((r for r in repos if r.full_name.lower() == value.lower()), None)
        if found is not None:
            return found.id, found.full_name
        raise RequestRefused(_unknown(value, repos))


def _unknown(value: str, repos: list[RepoResponse]) -> str:
    """The refusal for a repository the organization does not have, with the closest names."""
    by_name = {r.full_name.lower(): r for r in repos}
    closest = difflib.get_close_matches(value.lower(), list(by_name), n=3, cutoff=0.4)
    hint = (
        "Closest: " + ", ".join(f"`{by_name[n].full_name}`" for n in closest) + "."
        if closest
        else "Known: " + ", ".join(f"`{r.full_name}`" for r in repos[:10]) + "."
    )
    return f"No repository `{value}` in this Codegen organization. {hint}"
