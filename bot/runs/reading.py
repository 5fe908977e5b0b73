"""Reading runs from Codegen within the shared read budget.

One list page (100 runs, newest first, `source_type=API` so that runs started elsewhere stay
off it) costs one read, like one GET of one run. So reads are planned by page: the Reader
spends the reads a tick was given (bot.runs.tracker paces them), soonest-due run first, and a
ReadPlan says what each read is:

* ListPages (the default) remembers where each run sits in the list and reads the page that
  holds the first run when that page holds other tracked runs too (or the run's place is not
  known yet), else a GET of that run. Every tracked run a page shows is refreshed with it:
  the tracker claims those nobody holds, since their news is free.
* OneGetPerRun is the naive way, one GET per run: the benchmark's baseline.

When the budget is spent, the remaining runs simply stay due for the next tick, and the most
overdue go first then.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.codegen.client import CodegenClient
from bot.codegen.models import AgentRunResponse, Page
from bot.errors import CodegenError, RateLimited, RunNotFound
from bot.runs.budget import READ, OrgBudget
from bot.store.tables import TrackedRun

log = logging.getLogger(__name__)

PAGE = 100
# Reads of each window left to the dispatcher's look-ups after ambiguous failures.
READ_RESERVE = 4
# Positions remembered; past this, only those of runs being tracked are kept.
POSITIONS_LIMIT = 50_000
# A run held by no claim of this replica for this long is no longer counted as tracked here
# (another replica may have finished it).
TRACKED_MEMORY = timedelta(minutes=10)
# Only runs of this source are on the pages read (Codegen's own Slack app, GitHub and Linear
# start runs too: they would only push ours further down).
SOURCE_TYPE = "API"


class ListPositions:
    """Where runs sit in the API's newest-first list of runs, learned from the pages read.

    A run's rank counts the runs from the bottom of the list up to it; runs are added on top,
    so its index now is `total - rank` with the latest total. A run never seen is placed just
    below the nearest newer (higher id) run that was seen: a lower bound that the next page
    read either confirms or moves further down."""

    def __init__(self) -> None:
        self.rank: dict[int, int] = {}
        self.total = 0
        self._ids: list[int] = []
        self._sorted = True

    def learn(self, skip: int, page: Page[AgentRunResponse]) -> None:
        self.total = page.total
        for offset, item in enumerate(page.items):
            if item.id not in self.rank:
                self._sorted = False
            self.rank[item.id] = page.total - (skip + offset)

    def known(self, run_id: int) -> bool:
        return run_id in self.rank

    def index(self, run_id: int, floor: int = 0) -> int:
        """Estimated index of the run in the list (0: the newest)."""
        if run_id in self.rank:
            return max(0, self.total - self.rank[run_id])
        if not self._sorted:
            self._ids = sorted(self.rank)
            self._sorted = True
        at = bisect.bisect_right(self._ids, run_id)
        below_newer = self.index(self._ids[at]) + 1 if at < len(self._ids) else 0
        return max(below_newer, floor)

    def forget(self, run_ids: Sequence[int]) -> None:
        for run_id in run_ids:
            if self.rank.pop(run_id, None) is not None:
                self._sorted = False

    def keep_only(self, run_ids: set[int]) -> None:
        self.rank = {k: v for k, v in self.rank.items() if k in run_ids}
        self._sorted = False


# -- what to read -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GetRun:
    run_id: int


@dataclass(frozen=True)
class ListPage:
    page: int


Read = GetRun | ListPage


@dataclass
class TickState:
    """What one tick's reads have learned so far."""

    tracked_pages: Counter[int] | None = None  # tracked runs per page, counted once a tick
    fetched: set[int] = field(default_factory=set)  # page numbers read in this tick
    floor: dict[int, int] = field(default_factory=dict)  # lower bounds of unknown places
    single: set[int] = field(default_factory=set)  # not where expected: GET them
    estimate: dict[int, int] = field(default_factory=dict)  # run → page, before the last read


class ReadPlan(Protocol):
    """How the Reader spends a tick's reads."""

    #: How many runs a tick claims for each read it may make: the first decides what is read,
    #: the others what is read next (a list page brings the tracked runs it shows with it).
    heads_per_read: int

    def note_tracked(self, run_ids: Iterable[int], now: datetime) -> None:
        """These runs are tracked (claimed by this replica just now)."""
        ...

    def next_read(self, pending: Sequence[int], state: TickState) -> Read:
        """The read for the first of `pending` (the most overdue run not seen yet)."""
        ...

    def learn(
        self, page_no: int, page: Page[AgentRunResponse], unseen: Sequence[int], state: TickState
    ) -> None:
        """A list page was read; `unseen` are the due runs it did not show."""
        ...

    def forget(self, run_ids: Sequence[int]) -> None:
        """These runs are no longer tracked."""
        ...

    def prune(self, keep: set[int]) -> None:
        """Bound what the plan remembers, keeping what it knows of `keep`."""
        ...


class ListPages:
    def __init__(self, *, heads_per_read: int = 10) -> None:
        self.heads_per_read = heads_per_read
        self.positions = ListPositions()
        self.tracked: dict[int, datetime] = {}  # run → when this replica last held it

    def note_tracked(self, run_ids: Iterable[int], now: datetime) -> None:
        for run_id in run_ids:
            self.tracked[run_id] = now

    def _tracked_pages(self, state: TickState) -> Counter[int]:
        """Where the runs tracked here sit, by page (those whose place is known)."""
        if state.tracked_pages is None:
            newest = max(self.tracked.values(), default=None)
            if newest is not None:
                stale = [r for r, at in self.tracked.items() if at < newest - TRACKED_MEMORY]
                for run_id in stale:
                    del self.tracked[run_id]
            state.tracked_pages = Counter(
                self.positions.index(rid) // PAGE
                for rid in self.tracked
                if self.positions.known(rid)
            )
        return state.tracked_pages

    def next_read(self, pending: Sequence[int], state: TickState) -> Read:
        head = pending[0]
        state.estimate = {
            rid: self.positions.index(rid, state.floor.get(rid, 0)) // PAGE
            for rid in pending
            if rid not in state.single
        }
        page_no = state.estimate.get(head)
        # Other runs on the head's page make the page worth reading: the ones claimed now and
        # the tracked ones (their news comes for free).
        by_page = Counter(state.estimate.values())
        if page_no is not None and by_page[page_no] == 1:
            by_page[page_no] = max(1, self._tracked_pages(state)[page_no])
        if (
            page_no is None
            or page_no in state.fetched
            or (self.positions.known(head) and by_page[page_no] == 1)
        ):
            return GetRun(head)
        return ListPage(page_no)

    def learn(
        self, page_no: int, page: Page[AgentRunResponse], unseen: Sequence[int], state: TickState
    ) -> None:
        state.fetched.add(page_no)
        self.positions.learn(page_no * PAGE, page)
        ids = [item.id for item in page.items]
        for rid in unseen:
            if rid in state.single or self.positions.known(rid):
                continue
            if ids and min(ids) > rid and len(ids) == PAGE:
                # Everything on this page is newer: the run is further down.
                state.floor[rid] = max(state.floor.get(rid, 0), (page_no + 1) * PAGE)
            elif state.estimate.get(rid) == page_no or not ids or min(ids) > rid:
                state.single.add(rid)  # where it should be, it is not: ask for it alone

    def forget(self, run_ids: Sequence[int]) -> None:
        self.positions.forget(run_ids)
        for run_id in run_ids:
            self.tracked.pop(run_id, None)

    def prune(self, keep: set[int]) -> None:
        if len(self.positions.rank) > POSITIONS_LIMIT:
            self.positions.keep_only(keep)


class OneGetPerRun:
    """The naive plan."""

    heads_per_read = 1

    def note_tracked(self, run_ids: Iterable[int], now: datetime) -> None:
        pass

    def next_read(self, pending: Sequence[int], state: TickState) -> Read:
        return GetRun(pending[0])

    def learn(
        self, page_no: int, page: Page[AgentRunResponse], unseen: Sequence[int], state: TickState
    ) -> None:
        raise AssertionError("OneGetPerRun never reads list pages")

    def forget(self, run_ids: Sequence[int]) -> None:
        pass

    def prune(self, keep: set[int]) -> None:
        pass


# -- reading ----------------------------------------------------------------------------------


@dataclass
class Reading:
    """What a tick's reads found."""

    seen: dict[int, AgentRunResponse] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)  # Codegen no longer knows them
    extra: list[TrackedRun] = field(default_factory=list)  # claimed on the way (page neighbours)
    list_calls: int = 0
    get_calls: int = 0


ClaimNeighbours = Callable[[list[int]], Awaitable[list[TrackedRun]]]


class Reader:
    def __init__(
        self,
        *,
        codegen: CodegenClient,
        budget: OrgBudget,
        plan: ReadPlan,
        read_reserve: int = READ_RESERVE,
    ) -> None:
        self.codegen = codegen
        self.budget = budget
        self.plan = plan
        self.read_reserve = read_reserve

    async def read(
        self,
        runs: Sequence[TrackedRun],
        *,
        claim: ClaimNeighbours,
        max_reads: int,
        now: datetime,
    ) -> Reading:
        """Fetch what `max_reads` and the budget allow for `runs` (soonest due first).
        `claim(ids)` claims the tracked runs among the other runs a list page showed, to
        refresh them too."""
        reading = Reading()
        seen, gone = reading.seen, reading.gone
        wanted = {run.id for run in runs}
        self.plan.note_tracked(wanted, now)
        order = [run.id for run in runs]
        state = TickState()
        while reading.list_calls + reading.get_calls < max_reads:
            pending = [rid for rid in order if rid not in seen and rid not in gone]
            if not pending:
                break
            step = self.plan.next_read(pending, state)
            if not await self._spend():
                break
            if isinstance(step, GetRun):
                reading.get_calls += 1
                try:
                    seen[step.run_id] = await self.codegen.get_run(step.run_id)
                except RunNotFound:
                    gone.add(step.run_id)
                except CodegenError as error:
                    await self._failed(error)
                    break
                continue
            reading.list_calls += 1
            try:
                page = await self.codegen.list_runs(
                    skip=step.page * PAGE, limit=PAGE, source_type=SOURCE_TYPE
                )
            except CodegenError as error:
                await self._failed(error)
                break
            more = await claim([item.id for item in page.items if item.id not in wanted])
            reading.extra += more
            wanted.update(run.id for run in more)
            self.plan.note_tracked((run.id for run in more), now)
            for item in page.items:
                if item.id in wanted and item.id not in seen:
                    seen[item.id] = item
            self.plan.learn(step.page, page, [rid for rid in pending if rid not in seen], state)
        return reading

    async def _spend(self) -> bool:
        return await self.budget.try_spend(READ, reserve=self.read_reserve) <= 0

    async def _failed(self, error: CodegenError) -> None:
        if isinstance(error, RateLimited):
            await self.budget.block(READ, error.retry_after)
        log.warning("refreshing runs failed: %s", error.message)
