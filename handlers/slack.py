"""Slack listeners: each turns one Slack payload into a RunRequest for intake, a StopRequest
for the stopper, a PullRequestStateRequest (a final reply's pull request button), or a reply.

No business logic lives here: parsing is bot.intake.options, policy and queuing are
bot.intake, answers to subcommands are bot.intake.answers, stops are bot.runs.stopping, pull
request buttons are bot.runs.pull_requests. A listener has the request committed to the
outbox (intake.admit, a single insert) and then acknowledges, so an ack that says "Queued" is
true; preparing it happens after, hints to the person included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext

from bot.errors import OptionError
from bot.intake.accounts import Accounts
from bot.intake.answers import Answers
from bot.intake.compose import Composer
from bot.intake.intake import STORE_UNAVAILABLE_TEXT, Admission, Intake
from bot.intake.options import (
    HELP_TEXT,
    AccountCommand,
    ComposeCommand,
    ConfigResetCommand,
    ConfigSetCommand,
    ConfigShowCommand,
    HelpCommand,
    ListCommand,
    RunCommand,
    StatusCommand,
    StopCommand,
    parse_command,
    parse_request_text,
    parse_stop,
)
from bot.requests import (
    PullRequestStateRequest,
    RunOptions,
    RunRequest,
    SlackContext,
    StopRequest,
    Trigger,
)
from bot.slack.compose import (
    COMPOSE_VIEW_ID,
    DEFAULTS_VIEW_ID,
    REPO_ID,
    SEND_TO_CODEGEN_ID,
    ComposeOrigin,
)
from bot.slack.home import EDIT_DEFAULTS_ACTION_ID
from bot.slack.inbound import (
    BlockAction,
    BlockSuggestion,
    MessageEvent,
    MessageShortcut,
    SlashCommand,
    ViewSubmission,
)
from bot.slack.render import (
    LOGIN_BLOCK_ID,
    LOGIN_INPUT_ID,
    LOGIN_VIEW_ID,
    PR_ACTION_STATES,
    STOP_RUN_ACTION_ID,
    VIEW_RUN_ACTION_ID,
    parse_pr_button_value,
    render_logged_in_modal,
)
from bot.slack.text import slack_unescape

log = logging.getLogger(__name__)

# Message subtypes that are a person writing; everything else (edits, joins, bots) is ignored.
_PERSON_SUBTYPES = {None, "file_share", "thread_broadcast"}
# `@Codegen help` (or a DM saying just that) asks for the help text, not for a run.
_HELP_WORDS = {"help", "?", "-h", "--help", "usage"}


def register(
    app: AsyncApp,
    *,
    intake: Intake,
    answers: Answers,
    accounts: Accounts,
    composer: Composer,
    stop: Callable[[StopRequest], None],
    home_opened: Callable[..., None],
    set_pull_request_state: Callable[[PullRequestStateRequest], None],
) -> None:
    """`stop` takes a StopRequest and handles it after the ack (bot.runs.stopping);
    `set_pull_request_state` a PullRequestStateRequest (bot.runs.pull_requests);
    `home_opened(team_id=…, user_id=…)` publishes a person's App Home (bot.home); the run
    form (`/codegen` alone, the "Send to Codegen" shortcut) is the composer's (bot.intake)."""

    # First: Bolt tries listeners in the order they were added, and a slash command is what
    # comes in bursts, so it should not be matched against every other listener first.
    @app.command("/codegen")
    async def codegen_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        try:
            slash = SlashCommand.model_validate(command)
        except ValidationError as error:  # HTTP mode refuses these before Bolt; Socket Mode
            log.warning("ignoring a malformed slash command: %s", error.errors()[0]["msg"])
            await ack()
            return
        text, channel_id, user_id = slash.text, slash.channel_id, slash.user_id
        try:
            parsed = parse_command(text)
        except OptionError as error:
            await ack(response_type="ephemeral", text=error.message)
            return
        if isinstance(parsed, ComposeCommand):
            told = await composer.open(
                trigger_id=slash.trigger_id or "",
                user_id=user_id,
                origin=ComposeOrigin(team_id=slash.team_id, channel_id=channel_id),
            )
            await ack(response_type="ephemeral", text=told) if told else await ack()
        elif isinstance(parsed, HelpCommand):
            note = f"{parsed.note}\n\n" if parsed.note else ""
            await ack(response_type="ephemeral", text=note + HELP_TEXT)
        elif isinstance(parsed, AccountCommand):
            if parsed.kind == "login":
                told = await accounts.open_login(trigger_id=slash.trigger_id or "")
                await ack(response_type="ephemeral", text=told) if told else await ack()
            elif parsed.kind == "logout":
                await ack(response_type="ephemeral", text=await accounts.logout(user_id))
            else:
                await ack(response_type="ephemeral", text=await accounts.whoami(user_id))
        elif isinstance(parsed, StopCommand):
            stop(
                StopRequest(
                    run_id=parsed.run_id,
                    slack=_slash_context(slash),
                    response_url=slash.response_url,
                )
            )
            await ack(
                response_type="ephemeral", text=f"Asking Codegen to stop run #{parsed.run_id}…"
            )
        elif isinstance(parsed, StatusCommand):
            reply = await answers.status(parsed.run_id, user_id=user_id, channel_id=channel_id)
            await ack(response_type="ephemeral", text=reply)
        elif isinstance(parsed, ListCommand):
            await ack(response_type="ephemeral", text=await answers.recent(user_id))
        elif isinstance(parsed, ConfigShowCommand):
            await ack(response_type="ephemeral", text=await answers.config(channel_id))
        elif isinstance(parsed, ConfigSetCommand | ConfigResetCommand):
            denied = intake.may_not_change_defaults(user_id=user_id, channel_id=channel_id)
            if denied:
                await ack(response_type="ephemeral", text=denied)
            elif isinstance(parsed, ConfigSetCommand):
                reply = await answers.set_config(channel_id, parsed, user_id=user_id)
                await ack(response_type="ephemeral", text=reply)
            else:
                reply = await answers.reset_config(channel_id, user_id=user_id)
                await ack(response_type="ephemeral", text=reply)
        elif isinstance(parsed, RunCommand):
            request = RunRequest(
                prompt=slack_unescape(parsed.prompt),
                options=parsed.options,
                slack=_slash_context(slash),
                response_url=slash.response_url,
            )
            refusal = intake.refusal(request)
            if refusal:
                await ack(response_type="ephemeral", text=refusal)
                return
            if await intake.admit(request) is Admission.UNAVAILABLE:
                await ack(response_type="ephemeral", text=STORE_UNAVAILABLE_TEXT)
                return
            await ack(response_type="ephemeral", text=intake.queued_text(request))

    @app.shortcut(SEND_TO_CODEGEN_ID)
    async def send_to_codegen(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        try:
            shortcut = MessageShortcut.model_validate(body)
        except ValidationError as error:
            log.warning("ignoring a malformed shortcut: %s", error.errors()[0]["msg"])
            return
        message = shortcut.message
        origin = ComposeOrigin(
            team_id=shortcut.team.id if shortcut.team else context.team_id or "",
            channel_id=shortcut.channel.id,
            message_ts=message.ts,
            thread_ts=message.thread_ts,
            author_id=message.user,
            files=tuple(message.files or ()),
        )
        told = await composer.open(
            trigger_id=shortcut.trigger_id,
            user_id=shortcut.user.id,
            origin=origin,
            text=_strip_mention(message.text or "", context.bot_user_id),
        )
        if told:
            await composer.notify(trigger_id=shortcut.trigger_id, text=told)

    @app.options(REPO_ID)
    async def repo_search(ack: AsyncAck, body: dict[str, Any]) -> None:
        try:
            query = BlockSuggestion.model_validate(body).value
        except ValidationError:
            query = ""
        await ack(options=await composer.repo_choices(query))

    @app.action(EDIT_DEFAULTS_ACTION_ID)
    async def edit_defaults_pressed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        try:
            pressed = BlockAction.model_validate(body)
        except ValidationError:
            log.warning("ignoring a Change press Slack sent malformed")
            return
        channel = pressed.actions[0].value
        if channel and pressed.trigger_id:
            await composer.open_defaults(
                trigger_id=pressed.trigger_id, user_id=pressed.user.id, channel_id=channel
            )

    @app.view(DEFAULTS_VIEW_ID)
    async def defaults_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        submitted = await _submission(ack, body)
        if submitted is None:
            return
        user = submitted.user.id
        errors = await composer.save_defaults(
            user_id=user, channel_id=submitted.view.private_metadata, values=submitted.view.values
        )
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        team = submitted.team.id if submitted.team else ""
        home_opened(team_id=team, user_id=user)  # Home shows what was saved

    @app.view(COMPOSE_VIEW_ID)
    async def run_form_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        submitted = await _submission(ack, body)
        if submitted is None:
            return
        errors = await composer.submit(
            user_id=submitted.user.id,
            view_id=submitted.view.id,
            metadata=submitted.view.private_metadata,
            values=submitted.view.values,
        )
        if errors:
            await ack(response_action="errors", errors=errors)
        else:
            await ack()

    @app.event("agent_session_stopped")
    async def agent_session_stopped(event: dict[str, Any], body: dict[str, Any]) -> None:
        """Slack's own stop button on a run thread's session: the card's Stop, by its user."""
        channel, thread, user = event.get("channel"), event.get("thread_ts"), event.get("user")
        if not (isinstance(channel, str) and isinstance(thread, str) and isinstance(user, str)):
            return
        stop(
            StopRequest(
                slack=SlackContext(
                    team_id=str(body.get("team_id") or ""),
                    channel_id=channel,
                    user_id=user,
                    thread_ts=thread,
                    trigger=Trigger.AGENT_SESSION,
                )
            )
        )

    @app.event("app_home_opened")
    async def app_home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        # The Messages tab opens the DM with the bot: nothing to publish for it.
        user, team = event.get("user"), body.get("team_id")
        if event.get("tab") == "home" and isinstance(user, str) and isinstance(team, str):
            home_opened(team_id=team, user_id=user)

    @app.view(LOGIN_VIEW_ID)
    async def login_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        user = (body.get("user") or {}).get("id")
        values = ((body.get("view") or {}).get("state") or {}).get("values") or {}
        token = ((values.get(LOGIN_BLOCK_ID) or {}).get(LOGIN_INPUT_ID) or {}).get("value")
        if not isinstance(user, str) or not isinstance(token, str):
            await ack(response_action="errors", errors={LOGIN_BLOCK_ID: "Paste a token."})
            return
        login = await accounts.login(user, token)
        if login.error is not None or login.who is None:
            await ack(response_action="errors", errors={LOGIN_BLOCK_ID: login.error or "?"})
        else:
            await ack(response_action="update", view=render_logged_in_modal(who=login.who))

    @app.action(VIEW_RUN_ACTION_ID)
    async def view_run(ack: AsyncAck) -> None:
        # A link button still sends an interaction; acknowledge it so Slack shows no warning.
        await ack()

    @app.action(STOP_RUN_ACTION_ID)
    async def stop_pressed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        try:
            pressed = BlockAction.model_validate(body)
            run_id = int(pressed.actions[0].value or "")
        except (ValidationError, ValueError):
            log.warning("ignoring a Stop press without a run id")
            return
        channel = pressed.channel_id
        if not channel:
            return
        container = pressed.container
        stop(
            StopRequest(
                run_id=run_id,
                slack=SlackContext(
                    team_id=pressed.team.id if pressed.team else "",
                    channel_id=channel,
                    user_id=pressed.user.id,
                    thread_ts=container.thread_ts or container.message_ts,
                    message_ts=container.message_ts,
                    trigger=Trigger.BUTTON,
                ),
            )
        )

    @app.event("app_mention")
    async def app_mention(event: dict[str, Any], context: AsyncBoltContext) -> None:
        await _message_request(event, context, intake, stop, Trigger.APP_MENTION)

    @app.event("message")
    async def message(event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("bot_id") or event.get("subtype") not in _PERSON_SUBTYPES:
            return
        if event.get("channel_type") == "im":
            await _message_request(event, context, intake, stop, Trigger.DIRECT_MESSAGE)
        elif _mentions(event, context.bot_user_id):
            if event.get("subtype") == "file_share":
                # Slack may deliver a mention with files only as message/file_share; the
                # shared dedupe key makes it one request when app_mention arrives too.
                await _message_request(event, context, intake, stop, Trigger.APP_MENTION)
            # Otherwise app_mention carries it.
        elif event.get("thread_ts") and event.get("thread_ts") != event.get("ts"):
            # A plain reply in a thread: the answer to a paused run there, else conversation
            # between people (intake decides, from the thread's run).
            await _message_request(event, context, intake, stop, Trigger.THREAD_REPLY)
        # Other channel messages: acknowledged (Bolt acks events) and ignored.

    async def pull_request_pressed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        try:
            pressed = BlockAction.model_validate(body)
        except ValidationError:
            log.warning("ignoring a pull request button press Slack sent malformed")
            return
        action = pressed.actions[0]
        ids = parse_pr_button_value(action.value)
        state = PR_ACTION_STATES.get(action.action_id)
        channel = pressed.channel_id
        if ids is None or state is None or not channel:
            log.warning("ignoring a pull request button press without a run and pull request")
            return
        container = pressed.container
        run_id, pr_id = ids
        set_pull_request_state(
            PullRequestStateRequest(
                run_id=run_id,
                pr_id=pr_id,
                state=state,
                slack=SlackContext(
                    team_id=pressed.team.id if pressed.team else "",
                    channel_id=channel,
                    user_id=pressed.user.id,
                    thread_ts=container.thread_ts or container.message_ts,
                    message_ts=container.message_ts,
                    trigger=Trigger.BUTTON,
                ),
            )
        )

    for action_id in PR_ACTION_STATES:
        app.action(action_id)(pull_request_pressed)

    # Registered last, so only what no listener above matched reaches these: events Slack sends
    # every app (app_uninstalled, tokens_revoked) or that an admin subscribed the app to, and
    # interactions with other components. Without them Bolt answers 404 and Slack retries.
    @app.event(re.compile(r".*"))
    async def other_event(event: dict[str, Any]) -> None:
        log.debug("ignoring a %s event", event.get("type"))

    @app.action(re.compile(r".*"))
    async def other_action(ack: AsyncAck) -> None:
        await ack()


def _slash_context(slash: SlashCommand) -> SlackContext:
    """Where a slash command came from: its channel, no thread (a command has none)."""
    return SlackContext(
        team_id=slash.team_id,
        channel_id=slash.channel_id,
        user_id=slash.user_id,
        trigger=Trigger.SLASH_COMMAND,
    )


async def _submission(ack: AsyncAck, body: dict[str, Any]) -> ViewSubmission | None:
    """A form's submission as the listeners read it; None (acknowledged, so the form just
    closes) when Slack sent it malformed."""
    try:
        return ViewSubmission.model_validate(body)
    except ValidationError as error:
        log.warning("ignoring a malformed form submission: %s", error.errors()[0]["msg"])
        await ack()
        return None


def _mentions(event: dict[str, Any], bot_user_id: str | None) -> bool:
    return bool(bot_user_id) and f"<@{bot_user_id}>" in (event.get("text") or "")


def _strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(\|[^>]*)?>", " ", text)
    return text.strip()


async def _message_request(
    payload: dict[str, Any],
    context: AsyncBoltContext,
    intake: Intake,
    stop_run: Callable[[StopRequest], None],
    trigger: Trigger,
) -> None:
    """A message (mention, DM or plain thread reply) → a RunRequest for intake, a StopRequest,
    or a hint for the person. A plain thread reply is only ever an answer to a paused run."""
    try:
        event = MessageEvent.model_validate(payload)
    except ValidationError as error:  # HTTP mode refuses these before Bolt; Socket Mode
        log.warning("ignoring a malformed %s event: %s", trigger.value, error.errors()[0]["msg"])
        return
    channel, user, ts = event.channel, event.user, event.ts
    if not channel or not user or not ts:
        return
    thread_ts = event.thread_ts
    answering = trigger is Trigger.THREAD_REPLY
    text = _strip_mention(event.text or "", context.bot_user_id)
    team_id = event.team or context.team_id or ""
    try:
        # An answer goes to the agent as written: options do not apply to a resume.
        stop = None if answering else parse_stop(text, in_thread=bool(thread_ts))
        parsed = None if answering else parse_request_text(text)
    except OptionError as error:
        intake.hint(channel=channel, user=user, thread_ts=thread_ts, text=error.message)
        return
    if stop is not None:
        stop_run(
            StopRequest(
                run_id=stop.run_id,
                slack=SlackContext(
                    team_id=team_id,
                    channel_id=channel,
                    user_id=user,
                    thread_ts=thread_ts,
                    message_ts=ts,
                    trigger=trigger,
                ),
            )
        )
        return
    files = tuple(event.files or ())
    prompt = parsed.prompt if parsed is not None else text
    options = parsed.options if parsed is not None else None
    if not files and (not prompt or prompt.lower() in _HELP_WORDS):
        if not answering:
            intake.hint(channel=channel, user=user, thread_ts=thread_ts, text=HELP_TEXT)
        return
    request = RunRequest(
        prompt=slack_unescape(prompt) or "See the attached images.",
        options=options or RunOptions(),
        slack=SlackContext(
            team_id=team_id,
            channel_id=channel,
            user_id=user,
            thread_ts=thread_ts,
            message_ts=ts,
            trigger=trigger,
        ),
        files=files,
        dedupe_key=f"{channel}:{ts}",
    )
    if answering:
        await intake.answer(request)
    else:
        await intake.take(request)
