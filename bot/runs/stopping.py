"""Stopping a run: who may, asking Codegen, and what the person and the card are told.

Codegen's public API documents no stop. Its own Raycast client calls
`POST /v1/beta/organizations/{org_id}/agent/run/stop` with `{"agent_run_id": …}`, so the bot
tries that, paid from the shared read budget (the standard limit):

* accepted (2xx): the run records who asked and is due at once; its holder (the tracker) puts
  "Stop requested by @who" on the card and reads it until it ends, then shows it stopped;
* refused (404, 405, 403, 422, or any other answer that is not a 2xx): the person is told to
  stop it in Codegen, with the link, and the bot stops offering the Stop button for the
  organization until it restarts (recorded for the doctor).

Only the person who started a run, or an admin (ADMIN_SLACK_USERS), may stop it. A stop never
starts a run.
"""

from __future__ import annotations

import logging

from bot.background import BackgroundTasks
from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.codegen.models import is_terminal
from bot.config import Settings
from bot.errors import (
    BudgetExhausted,
    CodegenError,
    Forbidden,
    RateLimited,
    RequestRefused,
    Unavailable,
)
from bot.intake.accounts import Accounts
from bot.intake.replies import Replies
from bot.logs import log_context
from bot.requests import StopRequest, Trigger
from bot.runs.budget import READ, OrgBudget
from bot.slack.cards import RunCards
from bot.store.store import Store
from bot.store.tables import TrackedRun

log = logging.getLogger(__name__)


class Stopper:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        codegen: CodegenClient,
        budget: OrgBudget,
        cards: RunCards,
        replies: Replies,
        clock: Clock,
        accounts: Accounts | None = None,
    ) -> None:
        self.accounts = accounts
        self.settings = settings
        self.store = store
        self.codegen = codegen
        self.budget = budget
        self.cards = cards
        self.replies = replies
        self.clock = clock
        self._background = BackgroundTasks()

    async def forget_refusals(self) -> None:
        """At start: a restart offers the Stop button again (Codegen may have added it)."""
        await self.store.stop_refusals.forget(self.budget.org_id)

    def take(self, request: StopRequest) -> None:
        """Handle `request` after the ack, telling the person how it went."""
        self._background.start(self._answer(request))

    async def idle(self) -> None:
        await self._background.idle()

    async def _answer(self, request: StopRequest) -> None:
        with log_context(channel_id=request.slack.channel_id, user_id=request.slack.user_id):
            try:
                text = await self.stop(request)
            except Exception:
                log.exception("stopping a run failed unexpectedly")
                text = "Something went wrong while asking Codegen to stop the run. Try again."
            await self.replies.to_requester(request, text)
            if request.slack.trigger is Trigger.AGENT_SESSION:
                await self._session_after_stop(request)

    async def _session_after_stop(self, request: StopRequest) -> None:
        """Slack leaves the session as it was when its stop button is pressed: a stop that
        went through shows on the card (and the session with it); one that did not leaves
        the run working, so the session is told again that it is, and offers the button."""
        sessions, thread = self.cards.sessions, request.slack.thread_ts
        if sessions is None or not thread:
            return
        run = await self._find(request)
        if run is None or not run.stop_requested_by:
            await sessions.resend(channel_id=request.slack.channel_id, thread_ts=thread)

    async def stop(self, request: StopRequest) -> str:
        """Ask Codegen to stop the run `request` names; what to tell the person who asked."""
        run = await self._find(request)
        if run is None:
            if request.run_id is None:
                return (
                    "There is no run in this thread to stop. Use `/codegen stop &lt;run id&gt;`; "
                    "`/codegen list` shows your recent runs."
                )
            return (
                f"I am not following a run #{request.run_id}, so I cannot stop it. "
                "`/codegen list` shows your recent runs."
            )
        link = _link(run)
        if is_terminal(run.status) or not run.tracking:
            return (
                f"Run {link} has already ended (status `{run.status}`); there is nothing to stop."
            )
        user = request.slack.user_id
        if user != run.user_id and user not in self.settings.admin_slack_users:
            return (
                f"Only <@{run.user_id}>, who started run {link}, or an admin can stop it. "
                "Admins are listed in ADMIN_SLACK_USERS."
            )
        if run.stop_requested_by:
            return f"A stop for run {link} was already requested by <@{run.stop_requested_by}>."
        refusal = await self.store.stop_refusals.get(self.budget.org_id)
        if refusal is not None or not self.cards.stop_offered:
            self.cards.stop_offered = False
            return _refused_text(run)
        # The person who stops it, with their own token when they logged in.
        codegen, budget = self.codegen, self.budget
        credential = None
        if self.accounts is not None:
            try:
                credential = await self.accounts.credential(user)
            except RequestRefused as refused:
                return refused.message
            if credential.fingerprint is not None:
                codegen = self.accounts.client(credential)
                budget = self.budget.for_token(credential.fingerprint)
        try:
            await budget.spend_now(READ)
        except BudgetExhausted as spent:
            return (
                f"Codegen's rate limit is reached for now; try again in {spent.wait:.0f} s, "
                f"or stop run {link} in Codegen."
            )
        try:
            await codegen.stop_run(run.id)
        except RateLimited as error:
            await budget.block_reads(error.retry_after)
            return (
                f"Codegen's rate limit is reached for now; try again in "
                f"{error.retry_after:.0f} s, or stop run {link} in Codegen."
            )
        except Forbidden:
            if credential is not None and credential.personal and self.accounts is not None:
                await self.accounts.rejected(credential)  # their token, not the stop
                return (
                    "Codegen rejected your Codegen token, so the stop was not sent. Log in "
                    f"again with `/codegen login`, or stop run {link} in Codegen."
                )
            return await self._refused(run, status_code=403, message="forbidden")
        except Unavailable as error:
            log.warning("stop of run %s: Codegen unavailable (%s)", run.id, error.message)
            return (
                f"Codegen could not be reached to stop run {link}; try again in a minute, "
                "or stop it in Codegen."
            )
        except CodegenError as error:
            return await self._refused(run, status_code=error.status_code, message=error.message)
        now = self.clock.now()
        if not await self.store.runs.request_stop(run.id, user_id=user, now=now):
            return f"Run {link} ended before the stop reached it."
        log.info("stop of run %s requested by %s", run.id, user, extra={"run_id": run.id})
        return f"Codegen accepted the stop for run {link}. Its card will say when it has stopped."

    async def _refused(self, run: TrackedRun, *, status_code: int | None, message: str) -> str:
        """Codegen refused the stop: no Stop button until a restart, recorded for the doctor."""
        log.warning(
            "Codegen refused a stop of run %s (%s %s); the Stop button is hidden until "
            "the bot restarts",
            run.id,
            status_code,
            message,
            extra={"run_id": run.id},
        )
        self.cards.stop_offered = False
        await self.store.stop_refusals.record(
            self.budget.org_id, status_code=status_code, message=message, now=self.clock.now()
        )
        return _refused_text(run)

    async def _find(self, request: StopRequest) -> TrackedRun | None:
        if request.run_id is not None:
            return await self.store.runs.get(request.run_id)
        thread = request.slack.thread_ts
        if not thread:
            return None
        return await self.store.runs.latest_in_thread(
            channel_id=request.slack.channel_id, thread_ts=thread
        )


def _link(run: TrackedRun) -> str:
    return f"<{run.web_url}|#{run.id}>" if run.web_url else f"#{run.id}"


def _refused_text(run: TrackedRun) -> str:
    where = f": {run.web_url}" if run.web_url else "."
    return f"Codegen did not accept a stop for this run: open it in Codegen to stop it{where}"
