"""Reporting what a poll saw, exactly once.

A status change is put on the card only by the holder of the run's lease, and only if the
conditional update of `notified_status` says it was not shown before (bot.store.runs). The
final reply, and the reply asking for input when a run is PAUSED, go through
ReplyState: none → posting → posted; a holder that finds "posting" (a crash between posting
and recording) looks in the thread before posting again. Until the final reply is out the run
stays tracked, so a crash before it leaves the run due and the next holder finishes the job.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.codegen.models import AgentRunResponse, StatusKind, classify_status, is_terminal
from bot.config import Settings
from bot.errors import SlackError, SlackUnavailable
from bot.limits import next_poll_interval
from bot.metrics import Metrics
from bot.runs.watchdog import Verdict, Watchdog
from bot.slack.cards import (
    RunCards,
    notified_key,
    notified_status,
    phase_reaction,
    run_phase,
    status_reaction,
)
from bot.store.runs import ReplyStep, RunObservation
from bot.store.store import Store
from bot.store.tables import ReplyKind, ReplyState, TrackedRun

log = logging.getLogger(__name__)

# Runs that Slack had no room for come back within this share past the wait, not all at once.
SLACK_RETRY_SPREAD = 0.5

GONE_REASON = "Codegen no longer knows this run."


class Shown(enum.Enum):
    EDITED = "edited"  # the card shows the new state now
    ALREADY = "already"  # nothing to do: shown before (or by another holder)
    RETRY = "retry"  # Slack is unavailable for now: try again soon


@dataclass(frozen=True)
class Applied:
    """What reporting one observation did."""

    changed: bool = False
    finished: bool = False  # tracking is over: the final reply is out
    # Nothing to report: reschedule it with the others, as (run id, next poll, interval).
    quiet: tuple[int, datetime, float] | None = None


def observation_changed(run: TrackedRun, seen: AgentRunResponse) -> bool:
    prs = [pr.model_dump(mode="json") for pr in seen.github_pull_requests or []]
    return (
        seen.status != run.status
        or (seen.web_url is not None and seen.web_url != run.web_url)
        or (seen.summary is not None and seen.summary != run.summary)
        or prs != (run.pull_requests or [])
    )


class Reporter:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        cards: RunCards,
        clock: Clock,
        metrics: Metrics,
        watchdog: Watchdog | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.store = store
        self.cards = cards
        self.clock = clock
        self.metrics = metrics
        self.watchdog = watchdog or Watchdog()
        self.rand = rand
        self._reply_waits: dict[int, float] = {}  # runs whose reply Slack had no room for

    async def apply(
        self, run: TrackedRun, seen: AgentRunResponse, owner: str, *, read: bool = True
    ) -> Applied:
        """Record what was seen of `run` (held by `owner`) and report it. `read`: `seen` was
        just read from Codegen (not the run's own last state, kept while Slack had no room)."""
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
        # A stop Codegen accepted is shown once, while the run has not ended yet.
        stopping = "stop" if run.stop_requested_by and not terminal else None
        key = notified_key(seen.status, verdict.kind or stopping)
        reply_state = ReplyState(run.final_reply_state or ReplyState.NONE)
        reply_done = not paused or reply_state is ReplyState.PAUSE_POSTED
        if not (changed or terminal or verdict.stop) and run.notified_status == key and reply_done:
            return Applied(quiet=(run.id, next_at, interval))

        ending = terminal or verdict.stop
        observation = RunObservation(
            status=seen.status,
            web_url=seen.web_url or run.web_url,
            summary=seen.summary,
            result=seen.result,
            pull_requests=[pr.model_dump(mode="json") for pr in seen.github_pull_requests or []],
            next_poll_at=next_at,
            poll_interval=interval,
            last_change_at=now if changed else None,
            finished_at=(run.finished_at or now) if ending else None,
            stop_reason=verdict.note if verdict.stop and not terminal else None,
            # It went on after a pause: a later pause asks again.
            reset_reply=not ending and not paused and reply_state.pause_reply,
            polled_at=now if read else None,
        )
        marked: bool | None = None
        if read:
            held, marked = await self.store.runs.observe(
                run.id,
                owner=owner,
                observation=observation,
                notify=key if run.notified_status != key else None,
            )
            if not held:
                return Applied()  # the lease was taken over; the new holder reports
        # Not read: `seen` is the run's own last state, stored already; only Slack work is left.
        observation.apply_to(run)
        if ending:
            run.tracking = False  # how the card reads it; stored once the reply is out
        if changed:
            log.info("run %s is %s", run.id, seen.status, extra={"run_id": run.id})
        if ending:
            # The final reply goes first when there is a card to edit: it is what notifies
            # people, and chat.postMessage has room where chat.update (about 50 a minute per
            # workspace) may not. A card not posted yet goes first, to stay above the reply.
            # Tracking ends once both are out.
            if run.card_ts is None:
                card = await self._card_shows(run, owner, key, verdict.note, marked=marked)
                replied = card and await self._final_reply(run, owner)
            else:
                replied = await self._final_reply(run, owner)
                card = await self._card_shows(run, owner, key, verdict.note, marked=marked)
            if card and replied:
                await self.store.runs.close(run.id, owner=owner)
                if terminal:
                    self.metrics.runs_finished_total.labels(final_status=str(seen.status)).inc()
                return Applied(changed=changed, finished=True)
            shown = Shown.RETRY
        else:
            shown = await self.show(run, owner, key, verdict.note, marked=marked)
        if paused and not ending and not await self._pause_reply(run, owner):
            shown = Shown.RETRY
        if shown is Shown.RETRY:  # Slack is down or full for now: come back when it may not be
            wait = max(
                minimum, self.cards.deferred.pop(run.id, 0.0), self._reply_waits.pop(run.id, 0.0)
            )
            # Spread out: runs deferred together must not all come back in the same tick.
            wait *= 1 + SLACK_RETRY_SPREAD * self.rand()
            await self.store.runs.release(
                run.id, owner=owner, next_poll_at=now + timedelta(seconds=wait)
            )
        else:
            await self.store.runs.release(run.id, owner=owner)
        return Applied(changed=changed)

    async def gone(self, run: TrackedRun, owner: str) -> bool:
        """Codegen no longer knows the run: say so on the card and stop following it. True when
        tracking is over; False: the card edit is to be tried again."""
        now = self.clock.now()
        if not await self.store.runs.stop_following(
            run.id, owner=owner, reason=GONE_REASON, now=now
        ):
            return False
        run.finished_at, run.stop_reason, run.tracking = now, GONE_REASON, False
        if await self.show(run, owner, notified_key("stopped", "gone"), None) is Shown.RETRY:
            await self.store.runs.release(run.id, owner=owner)  # try again next tick
            return False
        await self.store.runs.close(run.id, owner=owner)
        return True

    async def show(
        self,
        run: TrackedRun,
        owner: str,
        key: str,
        note: str | None,
        *,
        marked: bool | None = None,
    ) -> Shown:
        """Edit the card once for the state `key`: only if the conditional update of
        notified_status succeeds (`marked`, when the caller already made it)."""
        previous = run.notified_status
        if previous == key:
            return Shown.ALREADY
        known_wait = self.cards.edit_wait(run)
        if known_wait > 0 and not marked:  # no room yet: nothing to claim, nothing to undo
            self.cards.deferred[run.id] = known_wait
            return Shown.RETRY
        if marked is None:
            marked = await self.store.runs.mark_notified(run.id, owner=owner, key=key)
        if not marked:
            return Shown.ALREADY
        reaction = phase_reaction(run_phase(run))
        before = status_reaction(notified_status(previous)) if previous else None
        card_before = run.card_ts
        ok = await self.cards.show_run(run, note=note, react=reaction != before)
        if run.card_ts and run.card_ts != card_before:
            await self.store.runs.set_card(run.id, owner=owner, card_ts=run.card_ts)
        if not ok:
            await self.store.runs.unmark_notified(run.id, owner=owner, back_to=previous)
            return Shown.RETRY
        run.notified_status = key
        if run.last_change_at is not None:
            lag = (self.clock.now() - run.last_change_at).total_seconds()
            self.metrics.card_lag_seconds.observe(max(0.0, lag))
        if await self.store.runs.confirm_card(run.id, owner=owner, key=key):
            run.card_shown = key
        return Shown.EDITED

    async def _card_shows(
        self, run: TrackedRun, owner: str, key: str, note: str | None, *, marked: bool | None
    ) -> bool:
        """The card shows the state `key`: edited now, or known to show it already. A crash
        between claiming an edit and making it leaves the two apart: it is made again."""
        shown = await self.show(run, owner, key, note, marked=marked)
        if shown is Shown.EDITED or run.card_shown == key:
            return True
        if shown is Shown.RETRY or not await self.cards.show_run(run, note=note):
            return False
        if await self.store.runs.confirm_card(run.id, owner=owner, key=key):
            run.card_shown = key
        return True

    async def _final_reply(self, run: TrackedRun, owner: str) -> bool:
        """Post the final reply exactly once, even across a crash between post and record.
        True when it is out; False: try again later."""
        step = await self.store.runs.begin_reply(run.id, owner=owner, kind=ReplyKind.FINAL)
        if step is None:  # posted before (or the lease is gone, and later writes say so)
            return True
        return await self._post_reply(run, owner, ReplyKind.FINAL, step, close=False)

    async def _pause_reply(self, run: TrackedRun, owner: str) -> bool:
        """Ask the requester for input in the thread, once per pause. False: try again later."""
        step = await self.store.runs.begin_reply(run.id, owner=owner, kind=ReplyKind.PAUSE)
        if step is None:
            return True
        return await self._post_reply(run, owner, ReplyKind.PAUSE, step, close=False)

    async def _post_reply(
        self, run: TrackedRun, owner: str, kind: ReplyKind, step: ReplyStep, *, close: bool
    ) -> bool:
        """Post the reply of `kind` (looking in the thread first after a crash) and record it;
        `close` ends tracking in the same write."""
        if step is ReplyStep.CHECK and run.thread_ts:
            try:
                found = await self.cards.find_reply(run, kind=kind)
            except SlackError:
                log.warning("run %s: cannot read the thread; will look again", run.id)
                return False
            if found is not None:
                return await self.store.runs.finish_reply(
                    run.id, owner=owner, kind=kind, ts=found, close=close
                )
        try:
            ts = await self.cards.post_reply(run, kind=kind)
        except SlackUnavailable as error:
            log.warning("run %s: Slack unavailable for the %s reply; will try again", run.id, kind)
            if error.wait is not None:
                self._reply_waits[run.id] = error.wait
            if step is ReplyStep.POST and not error.ambiguous:
                # It never reached Slack: nothing to look for next time.
                await self.store.runs.unbegin_reply(run.id, owner=owner, kind=kind)
            return False
        return await self.store.runs.finish_reply(
            run.id, owner=owner, kind=kind, ts=ts, close=close
        )
