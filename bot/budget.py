"""The organization's Codegen call budgets, kept in the store so every replica shares them.

DESIGN.md: 10 creates/min and 60 reads/30 s, never more in any window of that length. A small
safety margin is added to each window because our clock stamps a call when it leaves, and the
API's limiter stamps it when it arrives.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bot import ratelimit
from bot.clock import Clock
from bot.metrics import Metrics
from bot.store.store import Store

log = logging.getLogger(__name__)

CREATE = "create"
READ = "read"
CREATE_WINDOW = 60.0
READ_WINDOW = 30.0
READS_PER_WINDOW = 60


class BudgetExhausted(Exception):
    def __init__(self, bucket: str, wait: float) -> None:
        super().__init__(f"{bucket} budget spent; next call in {wait:.1f} s")
        self.bucket = bucket
        self.wait = wait


class OrgBudget:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        org_id: int,
        creates_per_minute: int,
        reads_per_window: int = READS_PER_WINDOW,
        margin: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.org_id = org_id
        self.limits = {
            CREATE: (creates_per_minute, CREATE_WINDOW + margin),
            READ: (reads_per_window, READ_WINDOW + margin),
        }
        self.metrics = metrics

    async def try_spend(self, bucket: str, *, reserve: int = 0) -> float:
        """Spend one call if it fits now: 0.0, else the seconds until one would.

        `reserve` leaves that many calls of the window to others: the tracker, which could
        use every read, keeps a few for the dispatcher's look-ups after ambiguous failures."""
        limit, window = self.limits[bucket]
        limit = max(1, limit - reserve)
        wait = await self.store.try_spend(
            org_id=self.org_id, bucket=bucket, limit=limit, window=window, now=self.clock.now()
        )
        if self.metrics is not None:
            self.metrics.rate_limit_waited(bucket, wait)
        return wait

    async def spend_read(self, *, max_wait: float = 35.0) -> None:
        """Wait (on the clock) for a read slot; raise BudgetExhausted past `max_wait`."""
        waited = 0.0
        while True:
            wait = await self.try_spend(READ)
            if wait <= 0:
                return
            if waited + wait > max_wait:
                raise BudgetExhausted(READ, wait)
            await self.clock.sleep(wait)
            waited += wait

    async def block(self, bucket: str, seconds: float) -> None:
        now = self.clock.now()
        log.warning("codegen answered 429: %s calls blocked for %.1f s", bucket, seconds)
        await self.store.block_budget(
            org_id=self.org_id, bucket=bucket, until=now + timedelta(seconds=seconds), now=now
        )

    async def queue_etas(self, count: int) -> list[float]:
        """Seconds until each of the next `count` waiting creates can go out."""
        limit, window = self.limits[CREATE]
        now = self.clock.now()
        state = await self.store.budget_state(
            org_id=self.org_id, bucket=CREATE, window=window, now=now
        )
        start = max(now, state.blocked_until) if state.blocked_until else now
        slots = ratelimit.slot_times(
            state.spent, count=count, limit=limit, window=window, now=start
        )
        return [max(0.0, (slot - now).total_seconds()) for slot in slots]
