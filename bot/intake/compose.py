"""The forms: the run form (`/codegen` with no text, the message shortcut "Send to Codegen")
and the channel defaults form (Home's Change button).

    told = await composer.open(trigger_id=…, user_id=…, origin=ComposeOrigin(…), text=…)
    options = await composer.repo_choices(query)      # the form's repository search
    errors = await composer.submit(user_id=…, view_id=…, metadata=…, values=…)

Opening checks who may ask before anything is typed, and starts reading the organization's
repositories so the search answers from memory. A submission becomes a RunRequest like any
other: the same option grammar (typed options, then the pickers, which win), the same policy
and the same outbox. What cannot be taken is said under the field it concerns, in the form,
and nothing is queued; once it is queued the form closes and the card follows in the thread.

The defaults form saves what `/codegen config` saves, checked the same way (who may change
them, the repository by name), through bot.intake.answers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.background import BackgroundTasks
from bot.config import Settings
from bot.errors import BudgetExhausted, CodegenError, OptionError, SlackError
from bot.intake.answers import Answers
from bot.intake.catalog import RepoCatalog
from bot.intake.intake import STORE_UNAVAILABLE_TEXT, Admission, Intake
from bot.intake.options import (
    ConfigSetCommand,
    channel_options,
    org_options,
    parse_option_value,
    parse_request_text,
    resolve_options,
)
from bot.requests import (
    OptionField,
    ResolvedOptions,
    RunOptions,
    RunRequest,
    SlackContext,
    Trigger,
)
from bot.slack.compose import (
    AGENT_ID,
    MODEL_ID,
    PROMPT_ID,
    REPO_ID,
    ComposeOrigin,
    read_defaults_submission,
    read_submission,
    render_compose_modal,
    render_defaults_modal,
    render_notice_modal,
    repo_options,
)
from bot.slack.gateway import SlackGateway
from bot.slack.text import mrkdwn_to_text, slack_unescape
from bot.store.store import Store

log = logging.getLogger(__name__)

#: Slack waits 3 s for the options of a search; what the list cannot give by then is none.
SEARCH_SECONDS = 2.0

NO_PROMPT_TEXT = "Say what Codegen should do."
NOT_OPENED_TEXT = "Slack did not open the form; try again."
FORM_EXPIRED_TEXT = "This form can no longer be sent; open it again."
STORE_DOWN_TEXT = "The bot's database is not answering; nothing was changed. Try again soon."
NOT_IN_CHANNEL_TEXT = (
    "I am not in this conversation, so I cannot follow a run in this message's thread. "
    "Invite me (`/invite @Codegen`) and send it again, or use `/codegen` where I am."
)


class Composer:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        slack: SlackGateway,
        catalog: RepoCatalog,
        intake: Intake,
        answers: Answers,
    ) -> None:
        self.answers = answers
        self.settings = settings
        self.store = store
        self.slack = slack
        self.catalog = catalog
        self.intake = intake
        self._background = BackgroundTasks()

    async def open(
        self, *, trigger_id: str, user_id: str, origin: ComposeOrigin, text: str = ""
    ) -> str | None:
        """Open the form prefilled with `text` (a message's, as Slack wrote it); None when it
        is open, else what to tell the person."""
        denied = self.intake.who_may_not(
            user_id=user_id, channel_id=origin.channel_id, what="start Codegen runs"
        )
        if denied:
            return denied
        if origin.message_ts is not None and not await self._may_post(origin.channel_id):
            return NOT_IN_CHANNEL_TEXT
        metadata, left_out = origin.encode()
        defaults = await self._defaults(origin.channel_id)
        view = render_compose_modal(
            origin=origin,
            metadata=metadata,
            prompt=slack_unescape(text).strip(),
            defaults=defaults,
            repo_label=self._repo_label(defaults.repo.value),
            files_left_out=left_out,
            max_prompt_chars=self.settings.max_prompt_chars,
        )
        try:
            await self.slack.open_view(trigger_id=trigger_id, view=view)
        except SlackError as error:
            log.warning("could not open the run form: %s", error)
            return NOT_OPENED_TEXT
        if self.catalog.fresh() is None:
            self._background.start(self._load_repos())
        return None

    async def notify(self, *, trigger_id: str, text: str) -> None:
        """Say `text` in a form of its own: why the shortcut opened no run form."""
        try:
            await self.slack.open_view(trigger_id=trigger_id, view=render_notice_modal(text))
        except SlackError as error:
            log.warning("could not tell a person why the run form did not open: %s", error)

    async def repo_choices(self, query: str) -> list[dict[str, Any]]:
        """Options for the form's repository search (none when the list cannot be had in
        time: the field is optional, and the defaults apply)."""
        repos = self.catalog.fresh()
        if repos is None:
            try:
                repos = await asyncio.wait_for(self.catalog.repos(), SEARCH_SECONDS)
            except (TimeoutError, CodegenError, BudgetExhausted) as error:
                # A search answered empty is better than none at all.
                log.warning("no repositories for the form's search: %s", error)
                return []
        return repo_options(repos, query)

    async def submit(
        self, *, user_id: str, view_id: str, metadata: str | None, values: dict[str, Any]
    ) -> dict[str, str] | None:
        """Queue the form's request; None when queued, else errors by block id."""
        origin = ComposeOrigin.decode(metadata)
        if origin is None:
            return {PROMPT_ID: FORM_EXPIRED_TEXT}
        fields = read_submission(values)
        try:
            typed = parse_request_text(fields.prompt)
        except OptionError as error:
            return {PROMPT_ID: _plain(error.message)}
        if not typed.prompt and not origin.files:
            return {PROMPT_ID: NO_PROMPT_TEXT}
        picked = {"repo": fields.repo, "model": fields.model, "agent_type": fields.agent_type}
        options = typed.options.model_copy(
            update={key: value for key, value in picked.items() if value is not None}
        )
        shortcut = origin.message_ts is not None
        request = RunRequest(
            # A form's text comes back as typed (no entities), unlike a message's.
            prompt=typed.prompt or "See the attached images.",
            options=options,
            slack=SlackContext(
                team_id=origin.team_id,
                channel_id=origin.channel_id,
                user_id=user_id,
                thread_ts=(origin.thread_ts or origin.message_ts) if shortcut else None,
                message_ts=origin.message_ts,
                trigger=Trigger.MESSAGE_SHORTCUT if shortcut else Trigger.MODAL,
                author_id=origin.author_id if origin.author_id != user_id else None,
            ),
            files=origin.files,
            # One view is one request, however often its submission reaches the bot.
            dedupe_key=f"view:{view_id}",
        )
        refusal = self.intake.refusal(request)
        if refusal:
            block = REPO_ID if fields.repo and "repository" in refusal.lower() else PROMPT_ID
            return {block: _plain(refusal)}
        if await self.intake.admit(request) is Admission.UNAVAILABLE:
            return {PROMPT_ID: STORE_UNAVAILABLE_TEXT}
        return None

    # -- the channel defaults form ------------------------------------------------------------

    async def open_defaults(self, *, trigger_id: str, user_id: str, channel_id: str) -> None:
        """Home's Change button: the form for `channel_id`'s defaults, or why not."""
        denied = self.intake.may_not_change_defaults(user_id=user_id, channel_id=channel_id)
        if denied:
            await self.notify(trigger_id=trigger_id, text=denied)
            return
        try:
            saved = await self.store.channels.defaults(channel_id)
        except (SQLAlchemyError, OSError) as error:
            log.warning("could not read the channel's defaults for the form (%s)", error)
            await self.notify(trigger_id=trigger_id, text=STORE_DOWN_TEXT)
            return
        current = channel_options(saved) or RunOptions()
        org = resolve_options(RunOptions(), None, org_options(self.settings))
        view = render_defaults_modal(
            channel_id=channel_id, current=dict(current.model_dump()), org=org
        )
        try:
            await self.slack.open_view(trigger_id=trigger_id, view=view)
        except SlackError as error:
            log.warning("could not open the channel defaults form: %s", error)

    async def save_defaults(
        self, *, user_id: str, channel_id: str | None, values: dict[str, Any]
    ) -> dict[str, str] | None:
        """Save the defaults form; None when saved, else errors by block id."""
        if not channel_id:
            return {REPO_ID: FORM_EXPIRED_TEXT}
        denied = self.intake.may_not_change_defaults(user_id=user_id, channel_id=channel_id)
        if denied:
            return {REPO_ID: _plain(denied)}
        typed = read_defaults_submission(values)
        blocks: dict[OptionField, str] = {
            "repo": REPO_ID,
            "model": MODEL_ID,
            "agent_type": AGENT_ID,
        }
        options: dict[str, str] = {}
        for field, value in typed.items():
            if value is None:
                continue
            try:
                _, options[field] = parse_option_value(field, value)
            except OptionError as error:
                return {blocks[field]: _plain(error.message)}
        command = ConfigSetCommand(
            options=RunOptions.model_validate(options),
            clear=frozenset(f for f, v in typed.items() if v is None),
        )
        try:
            said = await self.answers.set_config(channel_id, command, user_id=user_id)
        except (SQLAlchemyError, OSError) as error:
            log.warning("could not save a channel's defaults (%s)", error)
            return {REPO_ID: STORE_DOWN_TEXT}
        if not said.startswith("Saved."):
            return {REPO_ID: _plain(said)}
        return None

    async def idle(self) -> None:
        """Wait for the repository reads opening a form started (tests, shutdown)."""
        await self._background.idle()

    # -- helpers -----------------------------------------------------------------------------

    async def _defaults(self, channel_id: str) -> ResolvedOptions:
        """What empty fields mean here; without the store, the organization's defaults."""
        try:
            saved = await self.store.channels.defaults(channel_id)
        except (SQLAlchemyError, OSError) as error:
            log.warning("could not read the channel's defaults for the form (%s)", error)
            saved = None
        return resolve_options(RunOptions(), channel_options(saved), org_options(self.settings))

    async def _may_post(self, channel_id: str) -> bool:
        """False only when Slack says the bot is not in the channel (a Slack that cannot say
        now does not stop the form: posting later tells)."""
        try:
            info = await self.slack.channel_info(channel_id)
        except SlackError as error:
            return error.error not in ("channel_not_found", "not_in_channel")
        return self.slack.bot_is_member(info)

    def _repo_label(self, value: str | None) -> str | None:
        repos = self.catalog.fresh()
        if value is None or not value.isdigit() or repos is None:
            return None
        return next((r.full_name for r in repos if r.id == int(value)), None)

    async def _load_repos(self) -> None:
        try:
            await self.catalog.repos()
        except (CodegenError, BudgetExhausted) as error:  # the search tries again
            log.info("could not read the repositories for the form yet: %s", error)


def _plain(mrkdwn: str) -> str:
    """A form shows its errors as plain text: no code marks, no escapes."""
    return mrkdwn_to_text(mrkdwn).replace("`", "")
