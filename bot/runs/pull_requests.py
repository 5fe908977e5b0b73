"""Changing a run's pull requests from its final reply: Ready for review, Draft, Close (and
Reopen once closed).

Each button asks Codegen (`PATCH /v1/organizations/{org_id}/prs/{pr_id}` with a `state`),
paid from a budget of its own (30 a minute per token, shared by replicas), never from the
reads the tracker polls with. Only the person who asked for the run, or an admin
(ADMIN_SLACK_USERS), may press them; a person logged in with their own token has the call
made with it. What Codegen accepted is stored (bot.store.pull_requests) and the final reply is
rendered again from the store, so any replica, after a restart too, shows every state set and
who set it. A refusal (`success: false`, 403, 404, 429, …) is explained to the presser alone
and leaves the reply as it was.
"""

from __future__ import annotations

import logging

from bot.background import BackgroundTasks
from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.codegen.models import GithubPullRequestResponse
from bot.config import Settings
from bot.errors import (
    BudgetExhausted,
    CodegenError,
    Forbidden,
    NotFound,
    RateLimited,
    RequestRefused,
    SlackError,
    Unavailable,
)
from bot.intake.accounts import Accounts
from bot.intake.replies import Replies
from bot.logs import log_context
from bot.requests import PullRequestStateRequest
from bot.runs.budget import PR_EDIT, OrgBudget
from bot.slack.cards import RunCards
from bot.slack.render import PR_STATE_LABELS, PullRequestMark
from bot.slack.text import shorten, slack_escape
from bot.store.store import Store
from bot.store.tables import TrackedRun

log = logging.getLogger(__name__)


class PullRequestStates:
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
        self.settings = settings
        self.store = store
        self.codegen = codegen
        self.budget = budget
        self.cards = cards
        self.replies = replies
        self.clock = clock
        self.accounts = accounts
        self._background = BackgroundTasks()

    def take(self, request: PullRequestStateRequest) -> None:
        """Handle a button press after the ack."""
        self._background.start(self._answer(request))

    async def idle(self) -> None:
        await self._background.idle()

    async def _answer(self, request: PullRequestStateRequest) -> None:
        with log_context(channel_id=request.slack.channel_id, user_id=request.slack.user_id):
            try:
                text = await self.set_state(request)
            except Exception:
                log.exception("changing a pull request failed unexpectedly")
                text = "Something went wrong while asking Codegen to change the pull request."
            if text:
                await self.replies.whisper(
                    channel=request.slack.channel_id,
                    user=request.slack.user_id,
                    thread_ts=request.slack.thread_ts,
                    text=text,
                )

    async def set_state(self, request: PullRequestStateRequest) -> str | None:
        """Ask Codegen to put the pull request in the state the button names and show it on
        the final reply. What to tell the presser (None: the edited reply says it all)."""
        run = await self.store.runs.get(request.run_id)
        if run is None:
            return f"I no longer know run #{request.run_id}, so I cannot change its pull requests."
        pr = _pull_request(run, request.pr_id)
        if pr is None:
            return f"That pull request is not one of run #{run.id}'s."
        label = PR_STATE_LABELS[request.state]
        what = f"{_pr_ref(pr)} to *{label}*"
        user = request.slack.user_id
        if user != run.user_id and user not in self.settings.admin_slack_users:
            return (
                f"Only <@{run.user_id}>, the person who asked for run #{run.id}, or an admin "
                "can change its pull requests. Admins are listed in ADMIN_SLACK_USERS."
            )
        # The person who pressed, with their own token when they logged in.
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
            await budget.spend_now(PR_EDIT)
        except BudgetExhausted as spent:
            return (
                "Codegen takes 30 pull request changes a minute and they are used up; "
                f"try again in {max(1.0, spent.wait):.0f} s."
            )
        try:
            answer = await codegen.set_pull_request_state(pr.id, request.state)
        except RateLimited as error:
            await budget.block(PR_EDIT, error.retry_after)
            return (
                f"Codegen's rate limit for pull request changes is reached, so {what} was not "
                "set; try again in a minute."
            )
        except Forbidden as error:
            if (
                error.status_code == 401
                and credential is not None
                and credential.personal
                and self.accounts is not None
            ):
                await self.accounts.rejected(credential)
                return (
                    "Codegen rejected your Codegen token, so the change was not sent. Log in "
                    "again with `/codegen login`."
                )
            return (
                f"Codegen refused to set {what}: changing a pull request needs write "
                "permission on its repository, and the token it was asked with has none "
                f"({_quote(error.message)})."
            )
        except NotFound:
            return f"Codegen does not know {_pr_ref(pr)} (any more), so it was not changed."
        except Unavailable as error:
            log.warning("pull request %s: Codegen unavailable (%s)", pr.id, error.message)
            return f"Codegen could not be reached to set {what}; try again in a minute."
        except CodegenError as error:
            return f"Codegen refused to set {what}: {_quote(error.message)}."
        if not answer.success:
            reason = _quote(answer.error or "") or "it gave no reason"
            return f"Codegen did not set {what}: {reason}."
        now = self.clock.now()
        await self.store.pull_requests.record(
            pr_id=pr.id, run_id=run.id, state=request.state, set_by=user, now=now
        )
        log.info(
            "pull request %s of run %s set to %s by %s",
            pr.id,
            run.id,
            request.state,
            user,
            extra={"run_id": run.id},
        )
        return await self._show(run, fallback_ts=request.slack.message_ts, what=what)

    async def _show(self, run: TrackedRun, *, fallback_ts: str | None, what: str) -> str | None:
        """Render the final reply again with every state set on its pull requests."""
        ts = run.final_reply_ts or fallback_ts
        if not ts:
            return f"Codegen set {what}."
        rows = await self.store.pull_requests.for_run(run.id)
        marks = {
            pr_id: PullRequestMark(state=row.state, set_by=row.set_by)
            for pr_id, row in rows.items()
        }
        try:
            await self.cards.edit_final_reply(run, ts=ts, pr_marks=marks)
        except SlackError as error:
            log.warning("run %s: the final reply could not be edited (%s)", run.id, error.error)
            return f"Codegen set {what}, but I could not update the reply in the thread."
        return None


def _pull_request(run: TrackedRun, pr_id: int) -> GithubPullRequestResponse | None:
    for item in run.pull_requests or []:
        pr = GithubPullRequestResponse.model_validate(item)
        if pr.id == pr_id:
            return pr
    return None


def _pr_ref(pr: GithubPullRequestResponse) -> str:
    title = slack_escape(shorten(" ".join((pr.title or "").split()), 120))
    return f"pull request “{title}”" if title else f"pull request {pr.id}"


def _quote(text: str) -> str:
    return slack_escape(shorten(" ".join(text.split()), 300)).rstrip(".")
