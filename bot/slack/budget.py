"""Slack's rate limits, kept in the store like Codegen's so every replica shares them.

Slack limits each Web API method per workspace (tiers: Tier 2 about 20 a minute, Tier 3
about 50, Tier 4 about 100) and chat.postMessage per channel (about 1 a second, short bursts
allowed). Past them it answers 429 with Retry-After, and a storm of low-value calls (a queue
of 2,000 cards each told its new place) would push a final reply behind it. So:

* every call spends from its method's window (and chat.postMessage also from its channel's)
  before it leaves; a 429 blocks the method for its Retry-After, for all replicas;
* calls have a priority: HIGH (final replies, status changes, cards, roots) may use the whole
  window; LOW (queue-position refreshes) only part of it (LOW_SHARE), so a storm of them
  never delays a status change;
* nobody sleeps for a slot while holding work: a call without one raises SlackUnavailable
  with the wait, and its caller does it on a later pass (a card edit on the next tick, a
  request's preparation when the outbox hands it out again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from bot.clock import Clock
from bot.errors import SlackUnavailable
from bot.store.budgets import Window
from bot.store.store import Store

#: Budgets live beside Codegen's, under an organization id Codegen never uses.
SLACK_SCOPE = 0
MINUTE = 60.0


@dataclass(frozen=True)
class Rate:
    limit: int
    window: float


TIER_2 = Rate(20, MINUTE)
TIER_3 = Rate(50, MINUTE)
TIER_4 = Rate(100, MINUTE)

#: The documented tier of each method the bot calls (docs.slack.dev/reference/methods); any
#: other method is treated as Tier 3.
METHOD_RATES: dict[str, Rate] = {
    "chat.postMessage": Rate(600, MINUTE),  # "several hundred a minute" per workspace
    "chat.update": TIER_3,
    "chat.delete": TIER_3,
    "chat.postEphemeral": TIER_4,
    "chat.getPermalink": TIER_4,
    "reactions.add": TIER_3,
    "reactions.remove": TIER_3,
    "conversations.replies": TIER_3,
    "conversations.history": TIER_3,
    "conversations.info": TIER_3,
    "conversations.open": TIER_3,
    "users.info": TIER_4,
    "files.info": TIER_4,
    "auth.test": TIER_4,
    "views.open": TIER_4,
    "views.publish": TIER_4,
    "agents.sessions.setStatus": TIER_3,
}
#: chat.postMessage in one channel: 1 a second, with bursts of up to ten.
CHANNEL_POST_RATE = Rate(10, 10.0)
CHANNEL_RATED = frozenset({"chat.postMessage"})

#: Full windows remembered at most (per-channel ones come and go).
FULL_MEMORY = 1000

#: The part of a window LOW calls may use; the rest is kept for HIGH ones.
LOW_SHARE = 0.5


class Priority(Enum):
    HIGH = "high"
    LOW = "low"


def method_bucket(method: str) -> str:
    return f"slack:{method}"


def channel_bucket(method: str, channel: str) -> str:
    return f"slack:{method}:{channel}"


class SlackBudget:
    """Spends from Slack's per-method (and per-channel) windows, shared through the store."""

    def __init__(self, *, store: Store, clock: Clock, margin: float = 1.0) -> None:
        self.store = store
        self.clock = clock
        self.margin = margin
        # Windows found full, and until when: nobody can free a slot early (spends only add,
        # blocks only extend), so until then a call is refused without asking the store.
        self._full_until: dict[tuple[str, Priority], datetime] = {}

    def wait_hint(self, method: str, *, channel: str | None, priority: Priority) -> float:
        """Seconds a call of `method` is known to wait (0.0: it may fit; ask by spending)."""
        now = self.clock.now()
        waits = [
            (until - now).total_seconds()
            for bucket, _rate in self._buckets(method, channel)
            if (until := self._full_until.get((bucket, priority))) is not None
        ]
        return max([0.0, *waits])

    def _buckets(self, method: str, channel: str | None) -> list[tuple[str, Rate]]:
        """The windows a call spends from, one slot in each or none: its channel's (for a
        post) and its method's."""
        buckets = []
        if method in CHANNEL_RATED and channel:
            buckets.append((channel_bucket(method, channel), CHANNEL_POST_RATE))
        buckets.append((method_bucket(method), METHOD_RATES.get(method, TIER_3)))
        return buckets

    async def spend(self, method: str, *, channel: str | None, priority: Priority) -> None:
        """Spend one call of `method` (in `channel`) now, or raise SlackUnavailable with the
        seconds until one would fit (nothing is spent then)."""
        known = self.wait_hint(method, channel=channel, priority=priority)
        if known > 0:
            raise SlackUnavailable(method, f"no budget for {math.ceil(known)} s", wait=known)
        spend = await self.store.budgets.try_spend(
            org_id=SLACK_SCOPE,
            windows=[
                Window(bucket, _limit(rate, priority), rate.window + self.margin)
                for bucket, rate in self._buckets(method, channel)
            ],
            clock=self.clock.now,
        )
        if spend.wait > 0 and spend.full_bucket is not None:
            until = self.clock.now() + timedelta(seconds=spend.wait)
            self._full_until[(spend.full_bucket, priority)] = until
            if priority is Priority.HIGH:  # what HIGH cannot have, LOW cannot either
                self._full_until[(spend.full_bucket, Priority.LOW)] = until
            if len(self._full_until) > FULL_MEMORY:
                self._forget_past()
        if spend.wait > 0:
            raise SlackUnavailable(
                method, f"no budget for {math.ceil(spend.wait)} s", wait=spend.wait
            )

    def _forget_past(self) -> None:
        now = self.clock.now()
        self._full_until = {k: t for k, t in self._full_until.items() if t > now}

    async def block(self, method: str, *, channel: str | None, seconds: float) -> None:
        """Slack answered 429: nobody calls `method` (in `channel`, for a per-channel limit)
        before Retry-After has passed."""
        now = self.clock.now()
        until = now + timedelta(seconds=seconds)
        # The tighter window is the likelier cause: a post's 429 blocks its channel only.
        bucket, _rate = self._buckets(method, channel)[0]
        await self.store.budgets.block(org_id=SLACK_SCOPE, bucket=bucket, until=until, now=now)


def _limit(rate: Rate, priority: Priority) -> int:
    """What a call of `priority` may use of a window: LOW calls only LOW_SHARE of it."""
    return rate.limit if priority is Priority.HIGH else max(1, int(rate.limit * LOW_SHARE))
