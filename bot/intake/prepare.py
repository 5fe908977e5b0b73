"""Everything between "committed" and "ready to send", for intake and the dispatcher alike.

Intake prepares a request right after committing it; the dispatcher prepares a row whose
preparation a crash cut short (its intake lease expired). Both receive the same Preparer, so
neither knows the other. Preparing a request:

* resolves its options (inline beats the channel's defaults, which beat the organization's)
  and its repository, and refuses bad input before anything is posted, so a refused request
  leaves nothing behind in Slack;
* decides where the bot reports: a slash command gets a root message to thread on, in the
  channel when the bot can post there, else in a DM with the requester;
* turns a request in a thread that already has a run into a resume of that run, and gives a
  new run in a thread the thread's earlier messages as quoted context;
* downloads the images, reacts 👀, posts the "Queued" card and lists any file left out.

What it works out is written in one fenced update (bot.store.requests.PreparedRequest).
"""

from __future__ import annotations

import contextlib
import logging

from bot.clock import Clock
from bot.codegen.models import is_terminal
from bot.config import Settings
from bot.errors import (
    LookupUnavailable,
    RequestRefused,
    SlackBusy,
    SlackError,
    SlackUnavailable,
)
from bot.http_clients import OnDemandClient
from bot.intake.accounts import Accounts
from bot.intake.catalog import RepoCatalog
from bot.intake.context import ThreadContext
from bot.intake.images import fetch_images
from bot.intake.members import Member, Members, not_a_member_text
from bot.intake.options import channel_options, org_options, resolve_options
from bot.intake.replies import Replies
from bot.requests import RunRequest, StoredOptions, Trigger
from bot.slack.budget import CHANNEL_POST_RATE, Priority
from bot.slack.cards import REACTION_RECEIVED, RunCards
from bot.slack.gateway import SlackGateway
from bot.slack.render import render_request_root
from bot.slack.text import plural
from bot.store.requests import PreparedRequest
from bot.store.store import Store
from bot.store.tables import QueuedRequest, RequestKind, TrackedRun

log = logging.getLogger(__name__)

SLACK_RETRY_SECONDS = 10.0
RETIRED_CARD_NOTE = "Follow-up posted: see the newest card in this thread for what's next."


class Preparer:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        slack: SlackGateway,
        cards: RunCards,
        catalog: RepoCatalog,
        context: ThreadContext,
        replies: Replies,
        http: OnDemandClient,
        clock: Clock,
        members: Members | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.members = members
        self.accounts = accounts
        self.settings = settings
        self.store = store
        self.slack = slack
        self.cards = cards
        self.catalog = catalog
        self.context = context
        self.replies = replies
        self.http = http
        self.clock = clock

    def slack_wait(self, request: RunRequest, *, posts_ahead: int = 0) -> float:
        """Seconds Slack is known to have no room for the post preparing `request` cannot do
        without (a slash command's root message), from what this process knows: 0.0 when it
        may go now. Nothing else Slack is asked while preparing is worth holding one back for:
        a reaction or a card that cannot go now goes later.

        `posts_ahead`: what the preparations this process has under way in the channel will
        post there (`channel_posts`). Once they fill the channel's window, this one waits a
        window instead of being tried when its turn comes, refused and given back."""
        budget = self.slack.budget
        if budget is None or not request.slack.trigger.posts_root:
            return 0.0
        known = budget.wait_hint(
            "chat.postMessage", channel=request.slack.channel_id, priority=Priority.HIGH
        )
        if posts_ahead + self.channel_posts(request) > CHANNEL_POST_RATE.limit:
            return max(known, CHANNEL_POST_RATE.window)
        return known

    @staticmethod
    def channel_posts(request: RunRequest) -> int:
        """Messages preparing `request` posts in its channel: its card, and a slash
        command's root message before it."""
        return 2 if request.slack.trigger.posts_root else 1

    async def prepare(self, row: QueuedRequest, *, owner: str, release: bool = True) -> bool:
        """Prepare `row` (held by `owner`); False if the request was refused or the lease lost.

        Intake releases its lease when done; the dispatcher, which prepares rows orphaned by a
        crash, keeps it to send the request in the same pass."""
        request = RunRequest.model_validate(row.request_json)
        try:
            prepared, card_ts = await self._prepare(row, request, owner=owner)
        except RequestRefused as refused:
            await self.store.requests.record_failed(
                row.id, owner=owner, error=refused.message, now=self.clock.now()
            )
            await self.replies.to_requester(request, refused.message)
            if row.card_ts:
                await self.cards.show_request_failed(row, error=refused.message)
            return False
        now = self.clock.now()
        written = await self.store.requests.record_prepared(
            row.id, owner=owner, prepared=prepared, card_ts=card_ts, release=release, now=now
        )
        if not written:
            log.warning("request %s was taken over during preparation", row.id)
            return False
        row.prepared = True
        row.updated_at = now
        if row.card_ts is None:
            row.card_ts = card_ts
        if release:
            row.lease_owner = None
            row.lease_expires_at = None
        return True

    async def _prepare(
        self, row: QueuedRequest, request: RunRequest, *, owner: str
    ) -> tuple[PreparedRequest, str | None]:
        """What the request becomes, and the ts of the card posted for it (if one was).
        Raises SlackBusy when Slack has no room for what it needs now (it is prepared again
        later, and what was posted before is kept: the root message is recorded at once)."""
        slack = request.slack
        channel, thread_ts, message_ts = slack.channel_id, slack.thread_ts, slack.message_ts

        # Input is checked before anything is posted. Defaults are those of the channel where
        # the person asked, even when the bot has to report in a DM instead.
        options = await self._resolve_options(request)
        member = await self._member(request)

        # Where to report. A slash command (or the blank form) has no message: post a root
        # message to thread on.
        if slack.trigger.posts_root:
            if row.thread_ts:  # posted by an earlier, unfinished preparation
                channel, thread_ts = row.channel_id, row.thread_ts
            else:
                channel, thread_ts = await self._post_root(row.id, request)
                await self.store.requests.set_root(
                    row.id, owner=owner, channel_id=channel, thread_ts=thread_ts
                )
                row.channel_id, row.thread_ts = channel, thread_ts
            message_ts = thread_ts
        thread_ts = thread_ts or message_ts

        # A reply in a thread that already has a run continues that run: a resume while it
        # has not ended, else a new run that carries the thread (only a paused run resumes).
        previous = None
        if slack.thread_ts and not slack.trigger.posts_root:
            previous = await self.store.runs.latest_in_thread(
                channel_id=channel, thread_ts=slack.thread_ts
            )
        resumable = previous is not None and not is_terminal(previous.status)
        kind = RequestKind.RESUME if resumable else RequestKind.CREATE
        trigger = Trigger.THREAD_REPLY if previous is not None else slack.trigger

        prompt = request.prompt
        files = list(request.files)
        if previous is not None and not resumable:
            prompt = "\n\n".join(
                [prompt, *continuation(previous, why=f"which ended as {previous.status}")]
            )
        if kind is RequestKind.CREATE and slack.thread_ts and slack.thread_ts != message_ts:
            context, context_files = await self.context.quote(
                channel=channel, thread_ts=slack.thread_ts, before_ts=message_ts
            )
            if context:
                prompt = f"{prompt}\n\n{context}"
            files.extend(context_files)
        batch = await fetch_images(
            files,
            http=self.http.client(),
            bot_token=self._bot_token(),
            slack_api_url=self.settings.slack_api_url,
            max_images=self.settings.max_images,
            max_image_bytes=self.settings.max_image_bytes,
            files_info=self.slack.file_info,
        )
        permalink = slack.permalink
        if permalink is None and message_ts:
            permalink = await self._permalink(channel, message_ts)

        final_slack = slack.model_copy(
            update={
                "channel_id": channel,
                "thread_ts": thread_ts,
                "message_ts": message_ts,
                "trigger": trigger,
                "permalink": permalink,
            }
        )
        final_request = request.model_copy(update={"slack": final_slack})
        # Who Codegen will record: the token's owner for a person logged in, else the match.
        codegen_user_id = member.codegen_user_id if member else None
        if self.accounts is not None:
            codegen_user_id = await self.accounts.codegen_user_id(slack.user_id) or codegen_user_id
        metadata = final_request.codegen_metadata(
            request_id=row.id, codegen_user_id=codegen_user_id
        )
        if previous is not None:
            metadata["parent_run_id"] = previous.id
        prepared = PreparedRequest(
            kind=kind,
            prompt=prompt,
            images=batch.data_uris,
            skipped_files=[f"{s.name}: {s.reason}" for s in batch.skipped],
            options=options,
            run_metadata=metadata,
            resume_run_id=previous.id if previous is not None and resumable else None,
            channel_id=channel,
            thread_ts=thread_ts,
            message_ts=message_ts,
            trigger=trigger,
            parent_run_id=previous.id if previous is not None else None,
        )
        prepared.apply_to(row)  # the card renders from the row

        if message_ts:
            await self.cards.react(channel, message_ts, REACTION_RECEIVED)
        card_ts = None
        if row.card_ts is None:
            card_ts = await self.cards.post_request_card(row)
        if previous is not None:
            await self._retire_card(previous, card_ts or row.card_ts)
        if batch.skipped:
            listed = "\n".join(f"• {s.name}: {s.reason}" for s in batch.skipped)
            # Logged by the gateway; the card and the run go on.
            with contextlib.suppress(SlackError):
                await self.slack.post(
                    channel=channel,
                    thread_ts=thread_ts,
                    text=f"I left out {plural(len(batch.skipped), 'attachment')}:\n{listed}",
                    key=f"skipped:{row.id}",
                )
        return prepared, card_ts

    async def _retire_card(self, previous: TrackedRun, new_card_ts: str | None) -> None:
        """Point the run's card at the follow-up's card, which was posted just now.

        When the resume goes through, the follow-up's card becomes the run's card, and the old
        one would otherwise show a stale state for good. If Codegen refuses the resume, the run
        goes on reporting on its old card (the next status change redraws it without the note)
        and the new run has the new card. A finished run's card is left as it is."""
        if not previous.card_ts or previous.card_ts == new_card_ts or is_terminal(previous.status):
            return
        # A retired card says nothing of the session: the follow-up's card does.
        await self.cards.show_run(previous, note=RETIRED_CARD_NOTE, session=False)

    async def _post_root(self, request_id: str, request: RunRequest) -> tuple[str, str]:
        """Post the message a slash command's run is threaded on: (channel, ts).

        In the channel where the command was typed when Slack takes the post; when it refuses
        (a private channel or a DM between other people, which the bot is not in), in a DM
        with the requester, who is told how to invite the bot. The post itself is the test of
        membership: asking first (conversations.info, 50 a minute a workspace) would hold
        every slash command past the 50th in a minute in the outbox."""
        root = render_request_root(request)
        key = f"root:{request_id}"
        channel = request.slack.channel_id
        try:
            ts = await self.slack.post(channel=channel, text=root.text, blocks=root.blocks, key=key)
        except SlackUnavailable as busy:
            raise _busy(busy) from None
        except SlackError:
            pass  # try the DM below
        else:
            return channel, ts
        try:
            dm = await self.slack.open_dm(request.slack.user_id)
            ts = await self.slack.post(channel=dm, text=root.text, blocks=root.blocks, key=key)
        except SlackUnavailable as busy:
            raise _busy(busy) from None
        except SlackError:
            raise RequestRefused(
                "I cannot post in this channel and could not open a DM with you, so I did not "
                "start a run. Invite me with `/invite @Codegen` and try again."
            ) from None
        if dm != channel:
            await self.replies.to_requester(
                request,
                "I am not a member of this channel, so I will report on this run in a DM with "
                "you. To follow runs here, invite me with `/invite @Codegen`.",
            )
        return dm, ts

    async def _permalink(self, channel: str, ts: str) -> str | None:
        try:
            return await self.slack.permalink(channel=channel, ts=ts)
        except SlackError:
            return None  # the metadata goes without it

    async def _member(self, request: RunRequest) -> Member | None:
        """Who the person is in the Codegen organization; RequestRefused under
        CODEGEN_MEMBERS_ONLY when nobody there has their email."""
        if self.members is None:
            return None
        members_only = self.settings.codegen_members_only
        try:
            member = await self.members.match(request.slack.user_id)
        except SlackUnavailable as busy:
            raise _busy(busy) from None
        except LookupUnavailable as error:
            if members_only:
                raise  # prepared again later: nobody is let in unchecked
            log.warning("membership not checked (%s); the run goes without it", error.message)
            return None
        if members_only and member.codegen_user_id is None:
            raise RequestRefused(not_a_member_text(member))
        return member

    async def _resolve_options(self, request: RunRequest) -> StoredOptions:
        defaults = await self.store.channels.defaults(request.slack.channel_id)
        resolved = resolve_options(
            request.options, channel_options(defaults), org_options(self.settings)
        )
        repo_value = resolved.repo.value
        if repo_value is None:
            return StoredOptions(resolved=resolved)
        repo_id, label = await self.catalog.resolve(repo_value)
        return StoredOptions(resolved=resolved, repo_id=repo_id, repo_label=label)

    def _bot_token(self) -> str:
        token = self.settings.slack_bot_token
        return token.get_secret_value() if token is not None else ""


def continuation(previous: TrackedRun, *, why: str) -> list[str]:
    """What a new run that follows `previous` in its thread is told about it."""
    lines = [f"This continues Codegen run #{previous.id}, {why}."]
    if previous.summary:
        lines[0] += " Its summary:\n" + previous.summary
    return lines


def _busy(error: SlackUnavailable) -> SlackBusy:
    wait = error.wait if error.wait is not None else SLACK_RETRY_SECONDS
    return SlackBusy(f"{error.message}; preparing again in {wait:.0f} s", wait=wait)
