"""The status card of each request and run, its reactions, and the run's thread replies.

RunCards renders a request's or run's state (bot.slack.render) and puts it in Slack through
the gateway. What a failure means here:

* a card edit or post that Slack refuses for good is logged (by the gateway) and the run goes
  on; one that Slack cannot take *now* (SlackUnavailable) makes `show_run` return False, so
  the caller tries again later;
* reactions are best effort: the card is what counts;
* the final reply (and the pause reply) carry metadata (FINAL_REPLY_EVENT) so a reply posted
  just before a crash can be found in the thread instead of being posted twice.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from bot.clock import Clock
from bot.codegen.models import (
    AgentRunResponse,
    StatusKind,
    classify_status,
    is_stopped,
    is_terminal,
)
from bot.errors import SlackError, SlackRefused, SlackUnavailable
from bot.slack.budget import Priority
from bot.slack.gateway import POST_KEY, SlackGateway
from bot.slack.render import (
    PROGRESS_STEPS,
    CardView,
    Phase,
    ProgressStep,
    PullRequestMark,
    RenderedMessage,
    has_plan_block,
    render_card,
    render_final_reply,
)
from bot.slack.sessions import AgentSessions, session_status
from bot.store.tables import FollowReason, QueuedRequest, ReplyKind, TrackedRun

log = logging.getLogger(__name__)

# The bot's own thread replies carry this metadata so they can be found again after a crash.
FINAL_REPLY_EVENT = "codegen_run_finished"

REACTION_RECEIVED = "eyes"
REACTION_RUNNING = "hourglass_flowing_sand"
REACTION_DONE = "white_check_mark"
REACTION_FAILED = "x"
REACTION_STOPPED = "black_square_for_stop"
# What each reaction replaces (the only ones the bot may have put there before it).
_EARLIER_REACTIONS: dict[str, tuple[str, ...]] = {
    REACTION_RUNNING: (REACTION_RECEIVED,),
    REACTION_DONE: (REACTION_RECEIVED, REACTION_RUNNING),
    REACTION_FAILED: (REACTION_RECEIVED, REACTION_RUNNING),
    REACTION_STOPPED: (REACTION_RECEIVED, REACTION_RUNNING),
}


def card_key(request_id: str) -> str:
    """The name a request's card is posted under (it stays the card of the run it starts)."""
    return f"card:{request_id}"


def run_phase(run: TrackedRun) -> Phase:
    if run.stop_reason and run.tracking is False and not is_terminal(run.status):
        return "tracking_stopped"
    kind = classify_status(run.status)
    if kind is StatusKind.IN_PROGRESS:
        return "running"
    if kind is StatusKind.WAITING_FOR_INPUT:
        return "paused"
    if kind is StatusKind.SUCCESS:
        return "complete"
    if is_stopped(run.status):
        return "stopped"
    return "failed"


def phase_reaction(phase: Phase) -> str | None:
    """The reaction a card's phase puts on the triggering message (None: leave it)."""
    return {
        "running": REACTION_RUNNING,
        "paused": REACTION_RUNNING,
        "complete": REACTION_DONE,
        "failed": REACTION_FAILED,
        "stopped": REACTION_STOPPED,
    }.get(phase)


def status_reaction(status: str | None) -> str | None:
    """The reaction for a run status, as phase_reaction would give for its card."""
    kind = classify_status(status)
    if kind in (StatusKind.IN_PROGRESS, StatusKind.WAITING_FOR_INPUT):
        return REACTION_RUNNING
    if kind is StatusKind.SUCCESS:
        return REACTION_DONE
    if is_stopped(status):
        return REACTION_STOPPED
    return REACTION_FAILED


def notified_key(status: str | None, note_kind: str | None = None) -> str:
    """What TrackedRun.notified_status holds once the card shows `status` (and the watchdog
    note of `note_kind`): the conditional update on it makes each card edit happen once."""
    return f"{status or ''}|{note_kind or ''}"[:64]


def notified_status(key: str | None) -> str | None:
    """The run status a notified_key was made for (None: nothing shown yet)."""
    if not key:
        return None
    return key.split("|", 1)[0] or None


def follow_note(run: TrackedRun) -> str | None:
    """What a run's card says for good when it follows an earlier run of the thread."""
    if run.follows_run_id is None:
        return None
    if run.follow_reason == FollowReason.NOT_RESUMABLE:
        why = f"Codegen could not resume run #{run.follows_run_id}"
    else:
        why = f"Run #{run.follows_run_id} has ended"
    return f"{why}; started run #{run.id} with this thread as context."


def progress_steps(run: TrackedRun) -> tuple[ProgressStep, ...]:
    """The run's stored steps (bot.runs.progress), newest first; anything malformed skipped."""
    steps: list[ProgressStep] = []
    for item in run.progress or []:
        if isinstance(item, dict) and isinstance(item.get("tool"), str):
            thought = item.get("thought")
            steps.append(
                ProgressStep(tool=item["tool"], thought=thought if isinstance(thought, str) else "")
            )
    return tuple(steps[:PROGRESS_STEPS])


def as_api_run(run: TrackedRun) -> AgentRunResponse:
    return AgentRunResponse(
        id=run.id,
        organization_id=run.org_id,
        status=run.status,
        web_url=run.web_url,
        summary=run.summary,
        result=run.result,
        github_pull_requests=run.pull_requests or None,
    )


def reply_key(run: TrackedRun, kind: ReplyKind) -> str:
    return f"reply:{run.id}:{kind.value}"


def reply_metadata(run: TrackedRun, kind: ReplyKind) -> dict[str, Any]:
    """What the run's thread reply of `kind` carries, to be found again after a crash."""
    payload = {"run_id": run.id, "kind": kind.value}
    return {"event_type": FINAL_REPLY_EVENT, "event_payload": payload}


class RunCards:
    """Renders a request's or run's state and puts it on its card, reactions included."""

    def __init__(
        self, *, slack: SlackGateway, clock: Clock, sessions: AgentSessions | None = None
    ) -> None:
        self.slack = slack
        self.clock = clock
        # The thread's Slack agent session follows what the card shows (bot.slack.sessions).
        self.sessions = sessions
        # False once Codegen refused a stop here (bot.runs.stopping): no Stop button until
        # the bot restarts.
        self.stop_offered = True
        # Runs whose last card edit Slack had no room for: the seconds until it may have.
        self.deferred: dict[int, float] = {}
        # Workspaces that refused a card with Slack's plan block (invalid_blocks): progress
        # is shown there as context lines until the bot restarts.
        self.plain_progress_teams: set[str] = set()

    # -- requests (before there is a run) ----------------------------------------------------

    def request_view(
        self,
        row: QueuedRequest,
        *,
        phase: Phase = "queued",
        queue_ahead: int | None = None,
        eta_seconds: float | None = None,
        error: str | None = None,
        note: str | None = None,
    ) -> CardView:
        return CardView(
            phase=phase,
            prompt=(row.request_json or {}).get("prompt", row.prompt),
            requester_id=row.user_id,
            author_id=((row.request_json or {}).get("slack") or {}).get("author_id"),
            run_id=row.resume_run_id,
            options=row.options.resolved,
            repo_label=row.options.repo_label,
            created_at=row.created_at,
            queue_ahead=queue_ahead,
            eta_seconds=eta_seconds,
            error=error,
            note=note,
        )

    async def _put(
        self,
        *,
        channel: str,
        thread_ts: str | None,
        card_ts: str | None,
        message: RenderedMessage,
        key: str,
        context: str,
        priority: Priority = Priority.HIGH,
    ) -> str:
        """Edit the card at `card_ts`, or post it (named `key`) in the thread when there is
        none: its ts. Raises the gateway's SlackError."""
        if card_ts:
            await self.slack.update(
                channel=channel,
                ts=card_ts,
                text=message.text,
                blocks=message.blocks,
                context=context,
                priority=priority,
            )
            return card_ts
        return await self.slack.post(
            channel=channel,
            thread_ts=thread_ts,
            text=message.text,
            blocks=message.blocks,
            key=key,
            context=context,
        )

    async def post_request_card(self, row: QueuedRequest) -> str | None:
        """Post the request's first card: its ts, or None when Slack did not take it."""
        note = None
        if row.resume_run_id:
            note = f"Sent to run #{row.resume_run_id}."
        elif row.parent_run_id:
            note = (
                f"Run #{row.parent_run_id} has ended; starting a new run with this thread as "
                "context."
            )
        message = render_card(self.request_view(row, note=note), now=self.clock.now())
        try:
            ts = await self._put(
                channel=row.channel_id,
                thread_ts=row.thread_ts,
                card_ts=None,
                message=message,
                key=card_key(row.id),
                context=f"request={row.id}",
            )
        except SlackError:
            return None
        await self._follow_request(row, "queued")
        return ts

    async def show_request(
        self,
        row: QueuedRequest,
        *,
        phase: Phase,
        queue_ahead: int | None = None,
        eta_seconds: float | None = None,
        error: str | None = None,
        priority: Priority = Priority.HIGH,
    ) -> bool:
        """Edit the request's card (posting one if it has none: then `row.card_ts` changes and
        the caller stores it). False if Slack did not take it (or, at LOW priority, had no
        slot for it)."""
        if not row.card_ts:
            row.card_ts = await self.post_request_card(row)
        if not row.card_ts:
            return False
        view = self.request_view(
            row, phase=phase, queue_ahead=queue_ahead, eta_seconds=eta_seconds, error=error
        )
        message = render_card(view, now=self.clock.now())
        try:
            await self._put(
                channel=row.channel_id,
                thread_ts=row.thread_ts,
                card_ts=row.card_ts,
                message=message,
                key=card_key(row.id),
                context=f"request={row.id}",
                priority=priority,
            )
        except SlackError:
            return False
        await self._follow_request(row, phase)
        return True

    async def _follow_request(self, row: QueuedRequest, phase: Phase) -> None:
        if self.sessions is not None:
            await self.sessions.follow(
                team_id=row.team_id,
                channel_id=row.channel_id,
                thread_ts=row.thread_ts,
                status=session_status(phase),
                prompt=(row.request_json or {}).get("prompt", row.prompt),
                requester=row.user_id,
            )

    async def show_request_failed(self, row: QueuedRequest, *, error: str) -> None:
        await self.show_request(row, phase="error", error=error)
        await self.react(row.channel_id, row.message_ts, REACTION_FAILED)

    # -- runs --------------------------------------------------------------------------------

    def run_view(self, run: TrackedRun, *, note: str | None = None) -> CardView:
        phase = run_phase(run)
        return CardView(
            phase=phase,
            status=run.status,
            prompt=run.prompt,
            requester_id=run.user_id,
            author_id=run.author_id,
            run_id=run.id,
            web_url=run.web_url,
            options=run.options.resolved,
            repo_label=run.options.repo_label,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            error=run.stop_reason if run.tracking is False else None,
            note=note,
            follow_note=follow_note(run),
            stop_requested_by=run.stop_requested_by,
            stoppable=self.stop_offered,
            in_dm=run.channel_id.startswith("D"),
            progress=progress_steps(run) if phase == "running" else (),
            plan_blocks=run.team_id not in self.plain_progress_teams,
        )

    def _plain_progress_from_now(self, run: TrackedRun, refused: SlackRefused) -> bool:
        """After a refusal of a card with a plan block: True when it was the plan block that
        Slack did not take (then this workspace gets context lines, and the caller sends the
        card again once)."""
        if refused.error != "invalid_blocks" or run.team_id in self.plain_progress_teams:
            return False
        log.warning(
            "Slack refused the plan block on run %s's card (workspace %s): progress is shown "
            "as context lines there until the bot restarts",
            run.id,
            run.team_id,
        )
        self.plain_progress_teams.add(run.team_id)
        return True

    def edit_wait(self, run: TrackedRun) -> float:
        """Seconds the run's card edit is known to wait for Slack's room (0.0: it may go)."""
        budget = self.slack.budget
        if budget is None:
            return 0.0
        if run.card_ts:
            return budget.wait_hint("chat.update", channel=run.channel_id, priority=Priority.HIGH)
        return budget.wait_hint("chat.postMessage", channel=run.channel_id, priority=Priority.HIGH)

    async def show_run(
        self,
        run: TrackedRun,
        *,
        note: str | None = None,
        react: bool = True,
        session: bool = True,
    ) -> bool:
        """Put the run's state on its card (posting one if it has none: then `run.card_ts`
        changes and the caller stores it) and move the reaction on the triggering message.

        True when done, or refused by Slack for good (logged with the run id; tracking goes
        on); False when Slack is unavailable for now and the edit should be tried again."""
        context = f"run={run.id}"
        try:
            await self._put_run_card(run, note=note, priority=Priority.HIGH)
        except SlackUnavailable as busy:
            if busy.wait is not None:
                self.deferred[run.id] = busy.wait
            return False
        except SlackError:
            pass  # refused for good: logged; the reactions and the run go on
        phase = run_phase(run)
        if session and self.sessions is not None:
            await self.sessions.follow(
                team_id=run.team_id,
                channel_id=run.channel_id,
                thread_ts=run.thread_ts,
                status=session_status(phase, stop_requested=bool(run.stop_requested_by)),
                prompt=run.prompt,
                requester=run.user_id,
            )
        reaction = phase_reaction(phase)
        if react and reaction:
            await self.react(run.channel_id, run.message_ts, reaction, context=context)
        return True

    async def show_progress(self, run: TrackedRun, *, note: str | None = None) -> bool:
        """Edit a running card for its new progress lines (`run.progress`), at LOW priority:
        progress never takes Slack's room from a status change. No reactions. True when done
        or refused for good; False when Slack has no room now."""
        if not run.card_ts:
            return False
        try:
            await self._put_run_card(run, note=note, priority=Priority.LOW)
        except SlackUnavailable:
            return False
        except SlackError:
            pass  # refused for good: logged by the gateway
        return True

    async def _put_run_card(self, run: TrackedRun, *, note: str | None, priority: Priority) -> None:
        """Render the run's card and put it (`run.card_ts` set when it was posted). When Slack
        refuses its plan block, put it once more with context lines. Raises SlackError."""
        message = render_card(self.run_view(run, note=note), now=self.clock.now())
        for plain_retry in (False, True):
            try:
                run.card_ts = await self._put(
                    channel=run.channel_id,
                    thread_ts=run.thread_ts,
                    card_ts=run.card_ts,
                    message=message,
                    key=card_key(run.request_id),
                    context=f"run={run.id}",
                    priority=priority,
                )
                return
            except SlackRefused as refused:
                plan_refused = has_plan_block(message) and self._plain_progress_from_now(
                    run, refused
                )
                if plain_retry or not plan_refused:
                    raise
            message = render_card(self.run_view(run, note=note), now=self.clock.now())

    async def react(self, channel: str, ts: str | None, name: str, *, context: str = "") -> None:
        """Move the triggering message's reaction: 👀 → ⏳ → ✅ or ❌ (removing only what an
        earlier step may have added). Best effort."""
        if not ts:
            return
        earlier = _EARLIER_REACTIONS.get(name, ())
        # Logged by the gateway; a reaction is not worth a retry.
        with contextlib.suppress(SlackError):
            await self.slack.react(
                channel=channel, ts=ts, add=name, remove=earlier, context=context
            )

    # -- thread replies ----------------------------------------------------------------------

    def reply_message(
        self,
        run: TrackedRun,
        *,
        kind: ReplyKind,
        pr_marks: dict[int, PullRequestMark] | None = None,
    ) -> RenderedMessage:
        """The reply of `kind`; a final one offers each pull request's state buttons, showing
        the states already set (`pr_marks`)."""
        api_run = as_api_run(run)
        if kind is ReplyKind.PAUSE:
            # The agent's question is in `result`; the reply is there to ask it.
            parts = [part for part in (run.summary, run.result) if part and part.strip()]
            api_run = api_run.model_copy(
                update={"summary": "\n\n".join(parts) or None, "result": None}
            )
        return render_final_reply(
            run=api_run,
            requester_id=run.user_id,
            now=self.clock.now(),
            started_at=run.started_at,
            ended_at=run.finished_at,
            stopped_by=run.stop_requested_by,
            pr_buttons=kind is ReplyKind.FINAL,
            pr_marks=pr_marks,
        )

    async def post_reply(self, run: TrackedRun, *, kind: ReplyKind) -> str | None:
        """Post the run's final reply (or the reply asking for input while it is PAUSED) in
        its thread, mentioning the requester: its ts, or None if Slack refused for good.
        SlackUnavailable (raised) means: try again later."""
        message = self.reply_message(run, kind=kind)
        try:
            return await self.slack.post(
                channel=run.channel_id,
                thread_ts=run.thread_ts,
                text=message.text,
                blocks=message.blocks,
                metadata=reply_metadata(run, kind),
                key=reply_key(run, kind),
                context=f"run={run.id}",
            )
        except SlackUnavailable:
            raise
        except SlackError:
            return None

    async def edit_final_reply(
        self, run: TrackedRun, *, ts: str, pr_marks: dict[int, PullRequestMark]
    ) -> None:
        """Render the run's final reply (at `ts`) again with the pull request states set
        from its buttons. Raises the gateway's SlackError."""
        message = self.reply_message(run, kind=ReplyKind.FINAL, pr_marks=pr_marks)
        metadata = reply_metadata(run, ReplyKind.FINAL)
        # The same metadata as when it was posted (the gateway's key included), given again.
        metadata["event_payload"][POST_KEY] = reply_key(run, ReplyKind.FINAL)
        await self.slack.update(
            channel=run.channel_id,
            ts=ts,
            text=message.text,
            blocks=message.blocks,
            metadata=metadata,
            context=f"run={run.id}",
        )

    async def find_reply(self, run: TrackedRun, *, kind: ReplyKind) -> str | None:
        """The ts of this run's reply of `kind` if it was posted (before a crash), else None.
        Raises SlackError when the thread cannot be read now."""
        if not run.thread_ts:
            return None
        async for message in self.slack.thread_messages(
            channel=run.channel_id, thread_ts=run.thread_ts, include_metadata=True
        ):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == FINAL_REPLY_EVENT
                and str(payload.get("run_id")) == str(run.id)
                and payload.get("kind", ReplyKind.FINAL.value) == kind.value
            ):
                return str(message["ts"])
        return None
