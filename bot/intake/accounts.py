"""People's own Codegen tokens: log in, log out, who am I, and which token a run is made with.

A person who logs in (`/codegen login`, a modal) has their runs created, resumed and stopped
with their own API token, under that token's own rate budgets (keyed by its fingerprint and
shared by replicas), so Codegen records them as the author. Everyone else's runs are made
with the organization's token (CODEGEN_API_TOKEN). Tokens are sealed at rest
(bot.secret_box); without BOT_SECRET_KEY, login is turned off and says why.

When Codegen later rejects a person's token (revoked, expired), they are told once in a DM,
and their next runs follow PERSONAL_TOKEN_FALLBACK: `refuse` (the default: never silently act
as someone else) or `org`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.clock import Clock
from bot.codegen.client import CodegenClient
from bot.config import Settings
from bot.errors import CodegenError, Forbidden, RequestRefused, SlackError, Unavailable
from bot.intake.members import Members
from bot.logs import redact_also
from bot.secret_box import SecretBox, SecretUnreadable, fingerprint
from bot.slack.gateway import SlackGateway
from bot.slack.render import render_login_modal
from bot.store.store import Store
from bot.store.tables import PersonalToken

log = logging.getLogger(__name__)

# `/codegen whoami` answers in the slash command's ack: the member look-up gets this long.
WHOAMI_SECONDS = 2.0

LOGIN_OFF_TEXT = (
    "Logging in with your own Codegen token is turned off on this bot: it has no key to keep "
    "tokens safe with (BOT_SECRET_KEY). Runs are made with the organization's token. Ask an "
    "admin to set BOT_SECRET_KEY (`codegen-bot rotate-key` prints a new one)."
)


@dataclass(frozen=True)
class Login:
    """How a login went: `who` it is for, or the `error` to show under the field."""

    who: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Credential:
    """Which token a person's calls are made with: theirs, or (None) the organization's."""

    slack_user_id: str
    token: str | None = None
    fingerprint: str | None = None

    @property
    def personal(self) -> bool:
        return self.token is not None


class Accounts:
    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        clock: Clock,
        org_client: CodegenClient,
        make_client: Callable[[str], CodegenClient],
        slack: SlackGateway,
        box: SecretBox | None,
        members: Members | None = None,
    ) -> None:
        self.members = members
        self.settings = settings
        self.store = store
        self.clock = clock
        self.org_client = org_client
        self.make_client = make_client
        self.slack = slack
        self.box = box
        self._clients: dict[str, CodegenClient] = {}

    @property
    def enabled(self) -> bool:
        return self.box is not None

    # -- what a person does ----------------------------------------------------------------

    async def open_login(self, *, trigger_id: str) -> str | None:
        """Open the login modal; None when it is open, else what to tell the person."""
        if self.box is None:
            return LOGIN_OFF_TEXT
        try:
            await self.slack.open_view(
                trigger_id=trigger_id,
                view=render_login_modal(org_id=self.settings.effective_org_id),
            )
        except SlackError as error:
            log.warning("could not open the login modal: %s", error)
            return "Slack did not open the login form; try `/codegen login` again."
        return None

    async def login(self, slack_user_id: str, token: str) -> Login:
        """Check and keep `token` as the person's (the modal shows `error` under the field)."""
        if self.box is None:
            return Login(error=LOGIN_OFF_TEXT)
        token = token.strip()
        if not token:
            return Login(error="Paste your Codegen API token (from codegen.com/token).")
        redact_also(token)  # before any call that could log it
        org = self.settings.effective_org_id
        client = self.make_client(token)
        try:
            me = await client.current_user()
            await client.list_repos(limit=1)  # a member of the bot's organization?
        except Forbidden:
            return Login(
                error=f"Codegen did not accept this token for organization {org}: check that "
                "it is yours, current, and made in that organization."
            )
        except Unavailable:
            return Login(error="Codegen could not be reached just now; try again in a minute.")
        except CodegenError as error:
            return Login(error=f"Codegen could not check this token: {error.message}")
        finally:
            await client.aclose()
        await self.store.tokens.put(
            PersonalToken(
                slack_user_id=slack_user_id,
                sealed_token=self.box.seal(token),
                fingerprint=fingerprint(token),
                codegen_user_id=me.id,
                codegen_email=me.email,
                created_at=self.clock.now(),
                rejected_at=None,
            )
        )
        log.info("%s logged in as Codegen user %s", slack_user_id, me.id)
        return Login(who=me.email or me.github_username or f"Codegen user {me.id}")

    async def logout(self, slack_user_id: str) -> str:
        row = await self.store.tokens.get(slack_user_id)
        if not await self.store.tokens.delete(slack_user_id):
            return "You were not logged in: your runs are made with the organization's token."
        if row is not None:
            stale = self._clients.pop(row.fingerprint, None)
            if stale is not None:
                await stale.aclose()
        return (
            "Logged out: your token is deleted, and your next runs are made with the "
            "organization's token."
        )

    async def whoami(self, slack_user_id: str) -> str:
        """How this person's runs are made and attributed."""
        row = await self.store.tokens.get(slack_user_id)
        if row is None:
            codegen_user_id = await self._matched(slack_user_id)
            match = (
                f"Codegen member {codegen_user_id}, matched by email"
                if codegen_user_id is not None
                else "no member of the organization by email"
            )
            how = "`/codegen login` to use your own." if self.enabled else LOGIN_OFF_TEXT
            return (
                f"Your runs are made with the organization's token, so Codegen records its "
                f"owner as their author. You are {match}. {how}"
            )
        who = row.codegen_email or f"user {row.codegen_user_id}"
        if row.rejected_at is not None:
            after = (
                "the organization's token"
                if self.settings.personal_token_fallback == "org"
                else "nothing: they are refused"
            )
            return (
                f"Codegen rejected your token ({who}) on {row.rejected_at:%Y-%m-%d %H:%M} UTC; "
                f"your runs are made with {after} until you `/codegen login` again."
            )
        return (
            f"Your runs are made with your own Codegen token ({who}, Codegen user "
            f"{row.codegen_user_id}), under its own rate limits. `/codegen logout` to stop."
        )

    async def _matched(self, slack_user_id: str) -> int | None:
        """Their Codegen member id by email, if it can be told quickly (an ack waits)."""
        if self.members is None:
            return None
        try:
            member = await asyncio.wait_for(self.members.match(slack_user_id), WHOAMI_SECONDS)
        except Exception:  # slow or unavailable: the answer goes without it
            return None
        return member.codegen_user_id

    # -- what the bot does with it ---------------------------------------------------------

    async def credential(self, slack_user_id: str) -> Credential:
        """The token to make this person's runs with. RequestRefused when theirs was
        rejected and PERSONAL_TOKEN_FALLBACK is `refuse`."""
        if self.box is None:
            return Credential(slack_user_id)
        row = await self.store.tokens.get(slack_user_id)
        if row is None:
            return Credential(slack_user_id)
        if row.rejected_at is not None:
            if self.settings.personal_token_fallback == "org":
                return Credential(slack_user_id)
            raise RequestRefused(
                "Codegen rejected your Codegen token, so I did not start this run with "
                "someone else's. Log in again with `/codegen login` (or `/codegen logout` "
                "to use the organization's token)."
            )
        try:
            token = self.box.open(row.sealed_token)
        except SecretUnreadable:
            raise RequestRefused(
                "Your stored Codegen token cannot be opened with this bot's key any more "
                "(BOT_SECRET_KEY changed). Log in again with `/codegen login`."
            ) from None
        redact_also(token)
        return Credential(slack_user_id, token=token, fingerprint=row.fingerprint)

    async def codegen_user_id(self, slack_user_id: str) -> int | None:
        """The Codegen user a logged-in person's token belongs to (None: not logged in, or
        their token was rejected)."""
        if self.box is None:
            return None
        row = await self.store.tokens.get(slack_user_id)
        if row is None or row.rejected_at is not None:
            return None
        return row.codegen_user_id

    def client(self, credential: Credential) -> CodegenClient:
        if credential.token is None or credential.fingerprint is None:
            return self.org_client
        client = self._clients.get(credential.fingerprint)
        if client is None:
            client = self._clients[credential.fingerprint] = self.make_client(credential.token)
        return client

    async def rejected(self, credential: Credential) -> None:
        """Codegen rejected the person's token: recorded, and they are told once, in a DM."""
        if credential.fingerprint is None:
            return
        first = await self.store.tokens.mark_rejected(
            credential.slack_user_id, fingerprint=credential.fingerprint, now=self.clock.now()
        )
        if not first:
            return
        after = (
            "Your next runs are made with the organization's token."
            if self.settings.personal_token_fallback == "org"
            else "I will not start runs for you with someone else's token."
        )
        try:
            dm = await self.slack.open_dm(credential.slack_user_id)
            await self.slack.post(
                channel=dm,
                text=(
                    f"Codegen rejected your Codegen API token (revoked or expired). {after} "
                    "Log in again with `/codegen login`."
                ),
                key=f"token-rejected:{credential.slack_user_id}:{credential.fingerprint}",
            )
        except SlackError as error:
            log.warning(
                "could not tell %s their token was rejected: %s", credential.slack_user_id, error
            )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
