"""The organization's Codegen call budgets, kept in the store so every replica shares them.

Codegen's limits (docs/contracts.md): 10 creates/min, 60 reads/30 s and 30 pull request
edits/min, never more in any window of that length. Run logs (alpha, "60 per 60 s per
token") have a small budget of their own (20 a minute by default): progress never takes a
read from status polling, and the two together stay inside 60/30 s even if Codegen counts
them in one pool.

A create is stamped again when it leaves (`take`, then `left`), since the API's limiter counts
it when it arrives; a small safety margin on each window covers the trip there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.errors import BudgetExhausted
from bot.limits import queue_etas
from bot.metrics import Metrics
from bot.store.budgets import Spend, Window
from bot.store.store import Store

log = logging.getLogger(__name__)

CREATE = "create"
READ = "read"
# Pull request state changes (the final reply's buttons): a limit of their own, so pressing
# them never spends the reads the tracker polls with.
PR_EDIT = "pr_edit"
CREATE_WINDOW = 60.0
READ_WINDOW = 30.0
READS_PER_WINDOW = 60
PR_EDIT_WINDOW = 60.0
PR_EDITS_PER_WINDOW = 30
# Run logs (live progress): a small budget of their own, never the tracker's reads.
LOGS = "logs"
LOGS_WINDOW = 60.0
LOGS_PER_WINDOW = 20


@dataclass(frozen=True)
class BudgetUsage:
    bucket: str
    spent: int
    limit: int
    window_seconds: float
    blocked_until: datetime | None


class OrgBudget:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        org_id: int,
        creates_per_minute: int,
        reads_per_window: int = READS_PER_WINDOW,
        logs_per_window: int = LOGS_PER_WINDOW,
        margin: float = 1.0,
        metrics: Metrics | None = None,
        token: str | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.org_id = org_id
        # A person's own token (its fingerprint) has budgets of its own, apart from the
        # organization token's; None: the organization's.
        self.token = token
        self._margin = margin
        self.limits = {
            CREATE: (creates_per_minute, CREATE_WINDOW + margin),
            READ: (reads_per_window, READ_WINDOW + margin),
            PR_EDIT: (PR_EDITS_PER_WINDOW, PR_EDIT_WINDOW + margin),
            LOGS: (logs_per_window, LOGS_WINDOW + margin),
        }
        self.metrics = metrics

    async def try_spend(self, bucket: str, *, reserve: int = 0) -> float:
        """Spend one call if it fits now: 0.0, else the seconds until one would.

        `reserve` leaves that many calls of the window to others: the tracker, which could
        use every read, keeps a few for the dispatcher's look-ups after ambiguous failures."""
        return (await self.take(bucket, reserve=reserve)).wait

    async def take(self, bucket: str, *, reserve: int = 0) -> Spend:
        """As try_spend, with the spend's ids: a caller whose call may leave later than now
        (a create, after a database write) passes it to `left` when it does."""
        limit, window = self.limits[bucket]
        name = self._name(bucket)
        spend = await self.store.budgets.try_spend(
            org_id=self.org_id,
            windows=[Window(name, max(1, limit - reserve), window)],
            clock=self.clock.now,
        )
        if self.metrics is not None and self.token is None:
            self.metrics.rate_limit_waited(bucket, spend.wait)
            self.metrics.budget_seen(bucket, spent=spend.in_window.get(name, 0), limit=limit)
        return spend

    def for_token(self, fingerprint: str) -> OrgBudget:
        """The budgets of a person's own token (keyed by its fingerprint, shared by every
        replica): Codegen counts its calls apart from the organization token's."""
        return OrgBudget(
            store=self.store,
            clock=self.clock,
            org_id=self.org_id,
            creates_per_minute=self.limits[CREATE][0],
            reads_per_window=self.limits[READ][0],
            logs_per_window=self.limits[LOGS][0],
            margin=self._margin,
            token=fingerprint,
        )

    def _name(self, bucket: str) -> str:
        return bucket if self.token is None else f"{bucket}:{self.token}"

    async def left(self, spend: Spend, *, at: datetime) -> None:
        """The call paid for by `spend` left at `at` (read just before sending it)."""
        await self.store.budgets.restamp(spend.spend_ids, at=at)

    async def spend_now(self, bucket: str) -> None:
        """Spend one call now or raise BudgetExhausted (with the wait)."""
        wait = await self.try_spend(bucket)
        if wait > 0:
            raise BudgetExhausted(bucket, wait)

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

    async def block_reads(self, seconds: float) -> None:
        await self.block(READ, seconds)

    async def block(self, bucket: str, seconds: float) -> None:
        now = self.clock.now()
        log.warning("codegen answered 429: %s calls blocked for %.1f s", bucket, seconds)
        await self.store.budgets.block(
            org_id=self.org_id,
            bucket=self._name(bucket),
            until=now + timedelta(seconds=seconds),
            now=now,
        )

    async def usage(self) -> list[BudgetUsage]:
        """What each budget has spent in its current window, and any 429 block (App Home)."""
        now = self.clock.now()
        usage = []
        for bucket, (limit, window) in self.limits.items():
            state = await self.store.budgets.state(
                org_id=self.org_id, bucket=self._name(bucket), window=window, now=now
            )
            blocked = (
                state.blocked_until if state.blocked_until and state.blocked_until > now else None
            )
            usage.append(
                BudgetUsage(
                    bucket=bucket,
                    spent=len(state.spent),
                    limit=limit,
                    window_seconds=window - self._margin,
                    blocked_until=blocked,
                )
            )
        return usage

    async def queue_etas(self, count: int) -> list[float]:
        """Seconds until each of the next `count` waiting creates can go out."""
        limit, window = self.limits[CREATE]
        now = self.clock.now()
        state = await self.store.budgets.state(
            org_id=self.org_id, bucket=CREATE, window=window, now=now
        )
        return queue_etas(
            state.spent,
            count=count,
            limit=limit,
            window=window,
            now=now,
            blocked_until=state.blocked_until,
        )
