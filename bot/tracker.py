"""Due runs → status changes, within the read budget.

Each run has its own next poll time (adaptive: soon after a change, less often while nothing
happens, with jitter). A tick claims the due runs, most overdue first, and refreshes them
through the list endpoint (newest first, 100 runs per call). The tracker remembers where each
run sits in that list, so it reads only the pages that hold due runs, in the order of their most
overdue run; a run alone on its page, or one the list did not return, gets a GET of its own
(the same price: one read). Every call is paid from the shared read budget, so any number of
runs stays within 60 reads per 30 s: when the budget is spent, the remaining runs simply stay
due for the next tick, and the most overdue go first then.

Reporting is exactly once: a status change is put on the card only by the holder of the run's
lease, and only if the conditional update of `notified_status` says it was not shown before.
The final reply (and the reply asking for input when a run is PAUSED) goes through a
none → posting → posted state kept in the store; a holder that finds "posting" (a crash
between posting and recording) looks in the thread before posting again.
"""

from __future__ import annotations

import bisect
import enum
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.backoff import next_poll_interval
from bot.budget import READ, OrgBudget
from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.codegen.errors import CodegenError, RateLimited, RunNotFound
from bot.codegen.models import AgentRunResponse, Page, StatusKind, classify_status, is_terminal
from bot.config import Settings
from bot.logs import log_context
from bot.metrics import Metrics
from bot.notify import (
    RunCards,
    SlackGateway,
    SlackUnavailable,
    notified_key,
    notified_status,
    phase_reaction,
    run_phase,
    status_reaction,
)
from bot.render import format_duration
from bot.store.store import REPLY_FINAL, REPLY_PAUSE, REPLY_STATES, Store, new_lease_owner
from bot.store.tables import TrackedRun

log = logging.getLogger(__name__)

LEASE_SECONDS = 120.0
BATCH = 1000
PAGE = 100
# Reads of each window left to the dispatcher's look-ups after ambiguous failures.
READ_RESERVE = 4
# Positions remembered; past this, only those of runs being tracked are kept.
POSITIONS_LIMIT = 50_000


@dataclass(frozen=True)
class Verdict:
    note: str | None = None
    kind: str | None = None  # stable name of the note: the card is edited when it changes
    stop: bool = False


@dataclass(frozen=True)
class Watchdog:
    """When a run looks stuck, and when the bot stops following it."""

    pending_alert: timedelta = timedelta(minutes=15)
    stale_alert: timedelta = timedelta(hours=3)
    max_age: timedelta = timedelta(hours=24)

    def verdict(
        self, *, status: str | None, started_at: datetime, last_change_at: datetime, now: datetime
    ) -> Verdict:
        """A note for the card, and whether tracking stops. Pure."""
        age = now - started_at
        if age >= self.max_age:
            return Verdict(
                f"The bot stopped following this run after {format_duration(age.total_seconds())}"
                "; open it in Codegen for its current state.",
                "max_age",
                True,
            )
        if (status or "").upper() == "PENDING" and age >= self.pending_alert:
            return Verdict(
                f"Still PENDING after {format_duration(age.total_seconds())}: Codegen has not "
                "started it yet.",
                "pending",
            )
        quiet = now - last_change_at
        waiting = classify_status(status) is StatusKind.WAITING_FOR_INPUT
        if quiet >= self.stale_alert and not waiting:
            return Verdict(
                f"No change for {format_duration(quiet.total_seconds())}; it may be stuck.",
                "stale",
            )
        return Verdict()


@dataclass
class TickReport:
    claimed: int = 0
    refreshed: int = 0
    list_calls: int = 0
    get_calls: int = 0
    deferred: int = 0  # due runs left for the next tick (read budget spent)
    changed: list[int] = field(default_factory=list)


def observation_changed(run: TrackedRun, seen: AgentRunResponse) -> bool:
    prs = [pr.model_dump(mode="json") for pr in seen.github_pull_requests or []]
    return (
        seen.status != run.status
        or (seen.web_url is not None and seen.web_url != run.web_url)
        or (seen.summary is not None and seen.summary != run.summary)
        or prs != (run.pull_requests or [])
    )


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


class Shown(enum.Enum):
    EDITED = "edited"  # the card shows the new state now
    ALREADY = "already"  # nothing to do: shown before (or by another holder)
    RETRY = "retry"  # Slack is unavailable for now: try again soon


class Tracker:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        codegen: CodegenClient,
        budget: OrgBudget,
        cards: RunCards,
        slack: SlackGateway,
        clock: Clock,
        replica_id: str,
        metrics: Metrics,
        watchdog: Watchdog | None = None,
        rand: Callable[[], float] = random.random,
        batch: int = BATCH,
        lease_seconds: float = LEASE_SECONDS,
        use_list: bool = True,
        refresh_page_neighbours: bool = True,
        read_reserve: int = READ_RESERVE,
    ) -> None:
        self.settings = settings
        self.store = store
        self.codegen = codegen
        self.budget = budget
        self.cards = cards
        self.slack = slack
        self.clock = clock
        self.replica_id = replica_id
        self.metrics = metrics
        self.watchdog = watchdog or Watchdog()
        self.rand = rand
        self.batch = batch
        self.lease_seconds = lease_seconds
        # False: one GET per due run (the naive way; kept as the benchmark's baseline).
        self.use_list = use_list
        self.refresh_page_neighbours = refresh_page_neighbours
        self.read_reserve = read_reserve
        self.positions = ListPositions()

    # -- the tick ----------------------------------------------------------------------------

    async def tick(self) -> TickReport:
        now = self.clock.now()
        owner = new_lease_owner(self.replica_id)
        runs = await self.store.claim_runs(
            owner=owner, now=now, lease_seconds=self.lease_seconds, limit=self.batch
        )
        report = TickReport(claimed=len(runs))
        if not runs:
            return report
        for run in runs:
            self.metrics.poll_lag_seconds.observe(
                max(0.0, (now - run.next_poll_at).total_seconds())
            )
        seen, gone, extra = await self._refresh(runs, report, owner)
        runs += extra
        # Runs without news are rescheduled and released together, in one statement.
        quiet: list[tuple[int, datetime, float]] = []
        for run in runs:
            if run.id not in seen and run.id not in gone:
                report.deferred += 1  # still due: first in line next tick
                quiet.append((run.id, run.next_poll_at, run.poll_interval))
                continue
            with log_context(
                request_id=run.request_id,
                run_id=run.id,
                channel_id=run.channel_id,
                user_id=run.user_id,
            ):
                try:
                    if run.id in seen:
                        report.refreshed += 1
                        if await self._apply(run, seen[run.id], owner, quiet):
                            report.changed.append(run.id)
                    else:
                        await self._stop(run, owner, "Codegen no longer knows this run.")
                except Exception:
                    log.exception("tracking run %s failed; it stays due", run.id)
                    await self.store.release_run(run.id, owner=owner)
        await self.store.reschedule_runs(owner=owner, schedule=quiet)
        if len(self.positions.rank) > POSITIONS_LIMIT:
            self.positions.keep_only({run.id for run in runs})
        return report

    # -- reading, within the budget ----------------------------------------------------------

    async def _refresh(
        self, runs: list[TrackedRun], report: TickReport, owner: str
    ) -> tuple[dict[int, AgentRunResponse], set[int], list[TrackedRun]]:
        """Fetch what the budget allows, most overdue run first: the list page it is on when
        that page holds other due runs too (or its place is not known yet), else a GET.

        A page read also shows tracked runs that are not due yet: those nobody holds are
        claimed and refreshed too (returned as the third item), since their news is free."""
        seen: dict[int, AgentRunResponse] = {}
        gone: set[int] = set()
        extra: list[TrackedRun] = []
        wanted = {run.id for run in runs}
        order = [run.id for run in runs]
        fetched: set[int] = set()  # page numbers read in this tick
        floor: dict[int, int] = {}  # lower bounds for runs whose place is not known
        single: set[int] = set()  # runs the list did not return where expected: GET them
        max_pages = len(runs) // PAGE + 10
        while True:
            pending = [rid for rid in order if rid not in seen and rid not in gone]
            if not pending:
                break
            head = pending[0]
            estimate = {
                rid: self.positions.index(rid, floor.get(rid, 0)) // PAGE
                for rid in pending
                if rid not in single
            }
            page_no = estimate.get(head)
            by_page = Counter(estimate.values())
            use_get = (
                not self.use_list
                or page_no is None
                or page_no in fetched
                or len(fetched) >= max_pages
                or (self.positions.known(head) and by_page[page_no] == 1)
            )
            if use_get:
                if not await self._spend_read():
                    break
                report.get_calls += 1
                try:
                    seen[head] = await self.codegen.get_run(head)
                except RunNotFound:
                    gone.add(head)
                except CodegenError as error:
                    await self._read_failed(error)
                    break
                continue
            assert page_no is not None
            if not await self._spend_read():
                break
            report.list_calls += 1
            try:
                page = await self.codegen.list_runs(skip=page_no * PAGE, limit=PAGE)
            except CodegenError as error:
                await self._read_failed(error)
                break
            fetched.add(page_no)
            self.positions.learn(page_no * PAGE, page)
            if self.refresh_page_neighbours:
                others = [item.id for item in page.items if item.id not in wanted]
                more = await self.store.claim_runs_by_id(
                    owner=owner,
                    run_ids=others,
                    now=self.clock.now(),
                    lease_seconds=self.lease_seconds,
                )
                extra += more
                wanted.update(run.id for run in more)
            for item in page.items:
                if item.id in wanted and item.id not in seen:
                    seen[item.id] = item
            ids = [item.id for item in page.items]
            for rid in pending:
                if rid in seen or rid in single or self.positions.known(rid):
                    continue
                if ids and min(ids) > rid and len(ids) == PAGE:
                    # Everything on this page is newer: the run is further down.
                    floor[rid] = max(floor.get(rid, 0), (page_no + 1) * PAGE)
                elif estimate.get(rid) == page_no or not ids or min(ids) > rid:
                    single.add(rid)  # where it should be, it is not: ask for it alone
        return seen, gone, extra

    async def _spend_read(self) -> bool:
        return await self.budget.try_spend(READ, reserve=self.read_reserve) <= 0

    async def _read_failed(self, error: CodegenError) -> None:
        if isinstance(error, RateLimited):
            await self.budget.block(READ, error.retry_after)
        log.warning("refreshing runs failed: %s", error.message)

    # -- reporting ---------------------------------------------------------------------------

    async def _apply(
        self,
        run: TrackedRun,
        seen: AgentRunResponse,
        owner: str,
        quiet: list[tuple[int, datetime, float]],
    ) -> bool:
        """Record what was seen and report it; True if it changed."""
        now = self.clock.now()
        minimum = self.settings.codegen_poll_min_seconds
        changed = observation_changed(run, seen)
        interval = next_poll_interval(
            run.poll_interval,
            changed=changed,
            minimum=minimum,
            maximum=self.settings.codegen_poll_max_seconds,
            rand=self.rand(),
        )
        next_at = now + timedelta(seconds=interval)
        terminal = is_terminal(seen.status)
        paused = classify_status(seen.status) is StatusKind.WAITING_FOR_INPUT
        verdict = Verdict()
        if not terminal:
            verdict = self.watchdog.verdict(
                status=seen.status,
                started_at=run.started_at,
                last_change_at=now if changed else run.last_change_at,
                now=now,
            )
        key = notified_key(seen.status, verdict.kind)
        reply_done = not paused or run.final_reply_state == REPLY_STATES[REPLY_PAUSE][1]
        if not (changed or terminal or verdict.stop) and run.notified_status == key and reply_done:
            quiet.append((run.id, next_at, interval))
            return False

        values: dict[str, Any] = {
            "status": seen.status,
            "web_url": seen.web_url or run.web_url,
            "summary": seen.summary,
            "result": seen.result,
            "pull_requests": [pr.model_dump(mode="json") for pr in seen.github_pull_requests or []],
            "next_poll_at": next_at,
            "poll_interval": interval,
        }
        if changed:
            values["last_change_at"] = now
        if terminal:
            values["finished_at"] = run.finished_at or now
        elif verdict.stop:
            values.update(finished_at=run.finished_at or now, stop_reason=verdict.note)
        elif not paused and run.final_reply_state in REPLY_STATES[REPLY_PAUSE]:
            values["final_reply_state"] = "none"  # it went on: a later pause asks again
        # `tracking` stays true until the final reply is out: a crash before that leaves the
        # run due, and the next holder finishes the job (exactly once, see _final_reply).
        held, marked = await self.store.observe_run(
            run.id, owner=owner, notify=key if run.notified_status != key else None, **values
        )
        if not held:
            return False  # the lease was taken over; the new holder reports
        _with(run, values)
        if terminal or verdict.stop:
            run.tracking = False  # how the card reads it; stored once the reply is out
        if changed:
            log.info("run %s is %s", run.id, seen.status, extra={"run_id": run.id})
        shown = await self._show(run, owner, key, verdict.note, marked=marked)
        if terminal or verdict.stop:
            if await self._final_reply(run, owner, card_shown=shown is Shown.EDITED):
                if terminal:
                    self.metrics.runs_finished_total.labels(final_status=str(seen.status)).inc()
                self.positions.forget([run.id])
                return changed
            shown = Shown.RETRY
        elif paused and not await self._pause_reply(run, owner):
            shown = Shown.RETRY
        if shown is Shown.RETRY:  # Slack is down for now: come back soon
            soon = now + timedelta(seconds=minimum)
            await self.store.update_run(run.id, owner=owner, next_poll_at=soon)
        await self.store.release_run(run.id, owner=owner)
        return changed

    async def _show(
        self,
        run: TrackedRun,
        owner: str,
        key: str,
        note: str | None,
        *,
        marked: bool | None = None,
    ) -> Shown:
        """Edit the card once for this state: only if the conditional update of
        notified_status succeeds (`marked`, when the caller already made it)."""
        previous = run.notified_status
        if previous == key:
            return Shown.ALREADY
        if marked is None:
            marked = await self.store.mark_notified(run.id, owner=owner, status=key)
        if not marked:
            return Shown.ALREADY
        reaction = phase_reaction(run_phase(run))
        before = status_reaction(notified_status(previous)) if previous else None
        card_before = run.card_ts
        ok = await self.cards.show_run(run, note=note, react=reaction != before)
        if run.card_ts and run.card_ts != card_before:
            await self.store.update_run(run.id, owner=owner, card_ts=run.card_ts)
        if not ok:
            await self.store.update_run(run.id, owner=owner, notified_status=previous)
            return Shown.RETRY
        run.notified_status = key
        return Shown.EDITED

    async def _stop(self, run: TrackedRun, owner: str, reason: str) -> None:
        now = self.clock.now()
        values: dict[str, Any] = {"finished_at": now, "stop_reason": reason}
        if await self.store.update_run(run.id, owner=owner, **values):
            _with(run, values).tracking = False
            if await self._show(run, owner, notified_key("stopped", "gone"), None) is Shown.RETRY:
                await self.store.release_run(run.id, owner=owner)  # try again next tick
                return
            await self.store.update_run(
                run.id, owner=owner, tracking=False, lease_owner=None, lease_expires_at=None
            )
            self.positions.forget([run.id])

    async def _final_reply(self, run: TrackedRun, owner: str, *, card_shown: bool) -> bool:
        """Post the final reply exactly once, even across a crash between post and record, and
        stop tracking. True when done; False: try again later."""
        closing: dict[str, Any] = {"tracking": False, "lease_owner": None, "lease_expires_at": None}
        step = await self.store.begin_reply(run.id, owner=owner, kind=REPLY_FINAL)
        if step is None:  # posted before (or the lease is gone, and this write says so)
            return await self.store.update_run(run.id, owner=owner, **closing)
        if not card_shown:
            # Recovering (a crash or an outage came between the card and the reply): make sure
            # the card shows the end too. Editing it again to the same content is harmless.
            await self.cards.show_run(run)
        return await self._post_reply(run, owner, REPLY_FINAL, step, closing)

    async def _pause_reply(self, run: TrackedRun, owner: str) -> bool:
        """Ask the requester for input in the thread, once per pause. False: try again later."""
        step = await self.store.begin_reply(run.id, owner=owner, kind=REPLY_PAUSE)
        if step is None:
            return True
        return await self._post_reply(run, owner, REPLY_PAUSE, step, {})

    async def _post_reply(
        self, run: TrackedRun, owner: str, kind: str, step: str, after: dict[str, Any]
    ) -> bool:
        """Post the reply of `kind` (looking in the thread first after a crash) and record it,
        with `after` in the same write."""
        if step == "check" and run.thread_ts:
            try:
                found = await self.slack.find_final_reply(
                    channel=run.channel_id, thread_ts=run.thread_ts, run_id=run.id, kind=kind
                )
            except LookupError:
                log.warning("run %s: cannot read the thread; will look again", run.id)
                return False
            if found is not None:
                return await self.store.finish_reply(
                    run.id, owner=owner, kind=kind, ts=found, **after
                )
        try:
            ts = await self.cards.post_final_reply(run, kind=kind)
        except SlackUnavailable:
            log.warning("run %s: Slack unavailable for the %s reply; will try again", run.id, kind)
            return False
        return await self.store.finish_reply(run.id, owner=owner, kind=kind, ts=ts, **after)


def _with(run: TrackedRun, values: dict[str, Any]) -> TrackedRun:
    for key, value in values.items():
        setattr(run, key, value)
    return run
