"""`codegen-bot doctor`: check the settings, the database, Slack and Codegen, and say how to fix
each problem.

    results = await run_checks(settings)        # list[CheckResult], in a fixed order
    print_results(results, out=sys.stdout)      # one line per check, a fix under each failure

A check that cannot run because an earlier one failed is reported as skipped. Nothing here
changes anything: the database is not migrated (a missing SQLite file is not created), no
message is posted, no run is started. Secrets are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.codegen.client import CodegenClient
from bot.config import Settings, load_settings, safe_database_url
from bot.errors import CodegenError, ConfigError, Forbidden, Unavailable
from bot.logs import MIN_REDACTED_LENGTH, Redactor, configure_logging, too_short_to_redact
from bot.slack.manifest import BOT_SCOPES, missing_scopes
from bot.store.db import create_engine, pending_migrations

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail", "skip"]
T = TypeVar("T")

TIMEOUT_SECONDS = 10.0
SLACK_APPS_URL = "https://api.slack.com/apps"
CODEGEN_TOKEN_URL = "https://codegen.com/token"
DATABASE_EXAMPLES = (
    "sqlite+aiosqlite:///./codegen-bot.db or postgresql+asyncpg://user:password@host:5432/dbname"
)
_BAD_SLACK_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "fail"


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, "fail", detail, fix)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, "warn", detail, fix)


def skip(name: str, detail: str) -> CheckResult:
    return CheckResult(name, "skip", detail)


async def _bounded(awaitable: Awaitable[T], seconds: float) -> T:
    return await asyncio.wait_for(awaitable, timeout=seconds)


# -- settings -----------------------------------------------------------------------------------


def check_mode(settings: Settings) -> list[CheckResult]:
    """Which transport `codegen-bot run` would use, and whether its settings are complete."""
    name = "mode"
    try:
        mode = settings.resolved_mode(stdin_is_tty=False)
    except ConfigError as error:
        return [
            fail(
                name,
                str(error),
                "Set SLACK_APP_TOKEN (Socket Mode, no public URL needed) or SLACK_SIGNING_SECRET "
                "(HTTP mode), together with SLACK_BOT_TOKEN. See README, Setup.",
            )
        ]
    if mode == "console":
        return [ok(name, "BOT_MODE=console: the terminal console; Slack is not used")]
    how = "auto → " if settings.bot_mode == "auto" else ""
    missing = settings.missing_for_mode(mode)
    app_token = settings.slack_app_token
    if "SLACK_APP_TOKEN" in missing:
        return [
            fail(
                name,
                "BOT_MODE=socket but SLACK_APP_TOKEN is not set",
                f"Create an app-level token with the connections:write scope ({SLACK_APPS_URL}"
                " → your app → Basic Information → App-Level Tokens) and set SLACK_APP_TOKEN.",
            )
        ]
    if "SLACK_SIGNING_SECRET" in missing:
        return [
            fail(
                name,
                "BOT_MODE=http but SLACK_SIGNING_SECRET is not set",
                "Copy the Signing Secret from Basic Information → App Credentials.",
            )
        ]
    if mode == "socket":
        if app_token is not None and not app_token.get_secret_value().startswith("xapp-"):
            return [
                fail(
                    name,
                    "SLACK_APP_TOKEN does not start with xapp- (it is not an app-level token)",
                    "Use the app-level token from Basic Information → App-Level Tokens.",
                )
            ]
        return [ok(name, f"BOT_MODE={settings.bot_mode}: {how}Socket Mode")]
    return [
        ok(
            name,
            f"BOT_MODE={settings.bot_mode}: {how}HTTP mode, Slack posts to "
            f"/slack/events on port {settings.port}",
        )
    ]


def check_codegen_settings(settings: Settings) -> CheckResult:
    name = "codegen settings"
    if settings.codegen_api_token is None:
        return fail(
            name,
            "CODEGEN_API_TOKEN is not set: runs would go to the built-in emulator, not to Codegen",
            f"Create an API token at {CODEGEN_TOKEN_URL} and set CODEGEN_API_TOKEN and "
            "CODEGEN_ORG_ID.",
        )
    if settings.codegen_org_id is None:
        return fail(
            name,
            "CODEGEN_ORG_ID is not set",
            "Set CODEGEN_ORG_ID to your Codegen organization's id (shown with the API token "
            f"at {CODEGEN_TOKEN_URL}).",
        )
    return ok(name, f"API {settings.codegen_api_url}, organization {settings.codegen_org_id}")


def check_secret_lengths(settings: Settings) -> list[CheckResult]:
    """A secret shorter than MIN_REDACTED_LENGTH is not redacted from logs as a substring
    (it would garble every line), so it can appear in them: say so."""
    short = [
        name.upper()
        for name in (
            "slack_bot_token",
            "slack_app_token",
            "slack_signing_secret",
            "codegen_api_token",
        )
        if (value := getattr(settings, name)) is not None
        and too_short_to_redact(value.get_secret_value())
    ]
    if not short:
        return []
    return [
        warn(
            "secrets",
            f"{', '.join(short)} {'is' if len(short) == 1 else 'are'} shorter than "
            f"{MIN_REDACTED_LENGTH} characters: too short to be redacted from log lines, so "
            "it may appear in them",
            "Use the full token or secret Slack and Codegen issued; a real one is longer.",
        )
    ]


# -- database -----------------------------------------------------------------------------------


def describe_db_error(error: BaseException, url: str) -> str:
    """One line about a database failure, without the URL's password."""
    message = (str(error).strip().splitlines() or [type(error).__name__])[0]
    with contextlib.suppress(ArgumentError, ValueError):
        password = make_url(url).password
        if password:
            message = message.replace(str(password), "***")
    return Redactor([url])(f"{type(error).__name__}: {message}")


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def check_secret_key(settings: Settings) -> CheckResult:
    """BOT_SECRET_KEY: personal tokens (`/codegen login`) are on only with a valid key."""
    name = "secret key"
    key = settings.bot_secret_key
    if key is None or not key.get_secret_value().strip():
        return ok(name, "BOT_SECRET_KEY unset: /codegen login is off; runs use the org token")
    from bot.secret_box import SecretBox

    try:
        box = SecretBox.from_keys(key.get_secret_value())
    except ConfigError as error:
        return fail(
            name,
            str(error),
            "Set BOT_SECRET_KEY to a Fernet key (`codegen-bot rotate-key` with it unset prints "
            "one).",
        )
    count = box.key_count if box is not None else 0
    extra = f" ({count} keys: the first seals, all open)" if count > 1 else ""
    return ok(name, f"valid{extra}: people may log in with their own Codegen tokens")


async def check_database(settings: Settings, *, wait: float = TIMEOUT_SECONDS) -> list[CheckResult]:
    """Reachable, then migrated. A SQLite file that does not exist yet is not created."""
    url = settings.database_url
    reach, migrated = "database", "migrations"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return [
            fail(
                reach,
                "DATABASE_URL is not a database URL",
                f"Set DATABASE_URL to a SQLAlchemy URL, e.g. {DATABASE_EXAMPLES}.",
            ),
            skip(migrated, "not checked: no database"),
        ]
    shown = safe_database_url(url)
    try:
        engine = create_engine(url)
    except (ImportError, SQLAlchemyError) as error:
        return [
            fail(
                reach,
                f"{shown}: no async driver for this URL ({describe_db_error(error, url)})",
                "Use an async driver in DATABASE_URL: " + DATABASE_EXAMPLES + ".",
            ),
            skip(migrated, "not checked: no database"),
        ]
    path = _sqlite_file(parsed)
    if path is not None and not path.exists():
        if not path.parent.is_dir():
            await engine.dispose()
            return [
                fail(
                    reach,
                    f"{shown}: the directory {path.parent} does not exist",
                    "Create the directory, or point DATABASE_URL at a writable place.",
                ),
                skip(migrated, "not checked: no database"),
            ]
        await engine.dispose()
        return [
            ok(reach, f"{shown}: the file does not exist yet; the bot creates it"),
            ok(migrated, "a new database: the bot creates its tables when it starts"),
        ]
    try:
        try:
            await _bounded(_select_one(engine), wait)
        except Exception as error:
            return [
                fail(
                    reach,
                    f"{shown}: cannot connect ({describe_db_error(error, url)})",
                    "Check host, port, user, password and database name in DATABASE_URL, "
                    "and that the database server is running and reachable from here.",
                ),
                skip(migrated, "not checked: the database is unreachable"),
            ]
        results = [ok(reach, f"{shown}: connected")]
        try:
            pending = await _bounded(pending_migrations(engine), wait)
        except Exception as error:
            results.append(
                fail(
                    migrated,
                    f"cannot read the migration state ({describe_db_error(error, url)})",
                    "Run `codegen-bot migrate`; if it fails, check the user's rights on "
                    "the database.",
                )
            )
            return results
        if pending:
            # Not a failure: the bot applies them itself when it starts.
            results.append(
                ok(
                    migrated,
                    "not at the newest migration yet: the bot applies the missing ones when "
                    "it starts (or run `codegen-bot migrate`)",
                )
            )
        else:
            results.append(ok(migrated, "at the newest migration"))
            results.append(await _check_stop_refusal(engine, settings))
            results.append(await _check_sessions(engine))
            results.append(await _check_progress(engine, settings))
            results.append(await _check_sealed_tokens(engine, settings))
        return results
    finally:
        await engine.dispose()


async def _check_stop_refusal(engine: Any, settings: Settings) -> CheckResult:
    """Whether the running bot offers the Stop button: it stops when Codegen refuses a stop
    (its stop endpoint is beta) and says so here until it restarts."""
    from bot.store.store import Store

    name = "codegen stop"
    try:
        refusal = await Store(engine).stop_refusals.get(settings.effective_org_id)
    except SQLAlchemyError as error:
        return skip(name, f"not checked ({type(error).__name__})")
    if refusal is None:
        return ok(name, "the Stop button is offered (Codegen's beta stop endpoint)")
    status = f"HTTP {refusal.status_code}" if refusal.status_code else "no answer"
    return warn(
        name,
        f"Codegen refused a stop at {refusal.refused_at:%Y-%m-%d %H:%M} UTC ({status}: "
        f"{refusal.message}); the Stop button is hidden until the bot restarts",
        "Nothing to fix in the bot: people stop runs in Codegen meanwhile. A restart offers "
        "the button again, in case Codegen has added the endpoint for this organization.",
    )


async def _check_sessions(engine: Any) -> CheckResult:
    from bot.store.store import Store

    try:
        return await check_sessions(Store(engine))
    except SQLAlchemyError as error:
        return skip(SESSIONS_CHECK, f"not checked ({type(error).__name__})")


SESSIONS_CHECK = "agent sessions"


async def check_sessions(store: Any) -> CheckResult:
    """Whether Slack took agent sessions where the running bot tried them (bot.slack.sessions):
    it uses the card alone in a workspace that refused them, until it restarts."""
    refused = await store.agent_sessions.all_refused()
    if not refused:
        return ok(
            SESSIONS_CHECK,
            "no workspace refused them: each run's thread is an agent session where Slack has them",
        )
    where = "; ".join(
        f"workspace {r.team_id} since {r.refused_at:%Y-%m-%d %H:%M} UTC ({r.error})"
        for r in refused
    )
    return warn(
        SESSIONS_CHECK,
        f"Slack refused agent sessions in {where}: the card alone is used there",
        "Declare the app an agent (app settings → Agents, or features.agent_view in "
        "manifest.yml) and reinstall it; the bot tries sessions again when it restarts.",
    )


async def _check_progress(engine: Any, settings: Settings) -> CheckResult:
    """Whether cards show live progress: off when Codegen answered 404 for its (alpha) run
    logs endpoint since the bot started, or when CODEGEN_LOGS_PER_MINUTE is 0."""
    from bot.runs.progress import RUN_LOGS
    from bot.store.store import Store

    name = "progress"
    if settings.codegen_logs_per_minute == 0:
        return ok(name, "progress is off (CODEGEN_LOGS_PER_MINUTE=0)")
    try:
        missing = await Store(engine).missing_endpoints.get(settings.effective_org_id, RUN_LOGS)
    except SQLAlchemyError as error:
        return skip(name, f"not checked ({type(error).__name__})")
    if missing is None:
        return ok(
            name,
            "cards show the latest steps from Codegen's run logs "
            f"({settings.codegen_logs_per_minute} reads a minute)",
        )
    return warn(
        name,
        "Codegen has no run logs endpoint here: progress is off "
        f"(404 at {missing.found_at:%Y-%m-%d %H:%M} UTC)",
        "Nothing to fix in the bot: cards show the status as before. A restart asks again, "
        "in case Codegen has added the endpoint (it is alpha).",
    )


async def _check_sealed_tokens(engine: Any, settings: Settings) -> CheckResult:
    """Every stored personal token opens with BOT_SECRET_KEY (a key changed without
    `codegen-bot rotate-key` locks people out)."""
    from bot.secret_box import SecretBox, SecretUnreadable
    from bot.store.store import Store

    name = "personal tokens"
    try:
        rows = await Store(engine).tokens.all()
    except SQLAlchemyError as error:
        return skip(name, f"not checked ({type(error).__name__})")
    if not rows:
        return ok(name, "none stored")
    key = settings.bot_secret_key
    try:
        box = SecretBox.from_keys(key.get_secret_value() if key is not None else None)
    except ConfigError:
        return skip(name, "not checked: BOT_SECRET_KEY is not valid")
    if box is None:
        return fail(
            name,
            f"{len(rows)} stored, but BOT_SECRET_KEY is unset: they cannot be used",
            "Set BOT_SECRET_KEY back to the key they were sealed with.",
        )
    locked = 0
    for row in rows:
        try:
            box.open(row.sealed_token)
        except SecretUnreadable:
            locked += 1
    if locked:
        return fail(
            name,
            f"{locked} of {len(rows)} cannot be opened with BOT_SECRET_KEY",
            "Put the key they were sealed with after the new one in BOT_SECRET_KEY "
            "(comma-separated) and run `codegen-bot rotate-key`; or those people log in again.",
        )
    return ok(name, f"{len(rows)} stored, all open with BOT_SECRET_KEY")


async def _select_one(engine: Any) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


# -- Slack --------------------------------------------------------------------------------------


def _header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value[0] if isinstance(value, list | tuple) else value)
    return None


async def check_slack(settings: Settings, *, wait: float = TIMEOUT_SECONDS) -> list[CheckResult]:
    """auth.test with the bot token, the scopes it was granted, and the app-level token."""
    token_name, scopes_name = "slack token", "slack scopes"
    token = settings.slack_bot_token
    if token is None:
        if settings.bot_mode == "console":
            return [skip(token_name, "not checked: BOT_MODE=console does not use Slack")]
        return [
            fail(
                token_name,
                "SLACK_BOT_TOKEN is not set",
                f"Create the app from the manifest (`codegen-bot manifest`) at {SLACK_APPS_URL}, "
                "install it to the workspace and copy the Bot User OAuth Token (xoxb-…) from "
                "OAuth & Permissions into SLACK_BOT_TOKEN.",
            ),
            skip(scopes_name, "not checked: no bot token"),
        ]
    results = await _check_bot_token(settings, token.get_secret_value(), wait)
    if settings.slack_app_token is not None and settings.slack_app_token.get_secret_value():
        results.append(await _check_app_token(settings, wait))
    return results


async def _check_bot_token(settings: Settings, value: str, wait: float) -> list[CheckResult]:
    token_name, scopes_name = "slack token", "slack scopes"
    results: list[CheckResult] = []
    client = AsyncWebClient(
        token=value, base_url=settings.slack_api_url, timeout=int(wait), retry_handlers=[]
    )
    if not value.startswith("xoxb-"):
        kind = "a user token (xoxp-)" if value.startswith("xoxp-") else "not a bot token"
        results.append(
            fail(
                token_name,
                f"SLACK_BOT_TOKEN is {kind}",
                "Use the Bot User OAuth Token (xoxb-…) from OAuth & Permissions.",
            )
        )
        results.append(skip(scopes_name, "not checked: not a bot token"))
        return results
    try:
        response = await _bounded(client.auth_test(), wait + 1)
    except SlackApiError as error:
        code = str(error.response.get("error") or error.response.status_code)
        if code in _BAD_SLACK_TOKEN:
            fix = (
                "SLACK_BOT_TOKEN is wrong or was revoked: copy the Bot User OAuth Token (xoxb-…) "
                f"again from {SLACK_APPS_URL} → your app → OAuth & Permissions (reinstall the "
                "app if it was removed)."
            )
        else:
            fix = f"Slack refused auth.test ({code}); see {SLACK_APPS_URL} → your app."
        return [
            fail(token_name, f"auth.test: {code}", fix),
            skip(scopes_name, "not checked: the token was refused"),
        ]
    except Exception as error:
        return [
            fail(
                token_name,
                f"cannot reach Slack at {settings.slack_api_url} ({type(error).__name__})",
                "Check the network (proxy, firewall) and SLACK_API_URL.",
            ),
            skip(scopes_name, "not checked: Slack is unreachable"),
        ]
    data = response.data if isinstance(response.data, dict) else {}
    results.append(
        ok(
            token_name,
            f"bot @{data.get('user', '?')} ({data.get('user_id', '?')}) in workspace "
            f"{data.get('team', '?')} ({data.get('team_id', '?')})",
        )
    )
    granted = _header(response.headers, "x-oauth-scopes")
    if granted is None:
        results.append(skip(scopes_name, "not checked: Slack did not report the granted scopes"))
    else:
        missing = missing_scopes(granted.split(","))
        if missing:
            results.append(
                fail(
                    scopes_name,
                    "missing " + ", ".join(sorted(missing)),
                    "Add them under OAuth & Permissions → Bot Token Scopes (or update the app "
                    "from `codegen-bot manifest`), then reinstall the app to the workspace so "
                    "the token gets them.",
                )
            )
        else:
            results.append(ok(scopes_name, f"all {len(BOT_SCOPES)} scopes the manifest asks for"))
    return results


async def _check_app_token(settings: Settings, wait: float) -> CheckResult:
    name = "slack app token"
    assert settings.slack_app_token is not None
    app_token = settings.slack_app_token.get_secret_value()
    if not app_token.startswith("xapp-"):
        return fail(
            name,
            "SLACK_APP_TOKEN is not an app-level token (they start with xapp-)",
            f"Create an app-level token with connections:write ({SLACK_APPS_URL} → your app → "
            "Basic Information → App-Level Tokens) and set SLACK_APP_TOKEN to it.",
        )
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=int(wait), retry_handlers=[])
    try:
        await _bounded(client.apps_connections_open(app_token=app_token), wait + 1)
    except SlackApiError as error:
        code = str(error.response.get("error") or error.response.status_code)
        return fail(
            name,
            f"apps.connections.open: {code}",
            "SLACK_APP_TOKEN must be an app-level token (xapp-…) with connections:write, and "
            "Socket Mode must be enabled for the app (Settings → Socket Mode).",
        )
    except Exception as error:
        return fail(
            name,
            f"cannot reach Slack ({type(error).__name__})",
            "Check the network (proxy, firewall) and SLACK_API_URL.",
        )
    return ok(name, "Socket Mode connections are allowed")


# -- Codegen ------------------------------------------------------------------------------------


async def check_codegen(settings: Settings, *, wait: float = TIMEOUT_SECONDS) -> list[CheckResult]:
    """The token (/v1/users/me), then access to CODEGEN_ORG_ID (its repositories)."""
    token_name, org_name = "codegen token", "codegen org"
    if settings.codegen_api_token is None or settings.codegen_org_id is None:
        return [
            skip(token_name, "not checked: no Codegen credentials"),
            skip(org_name, "not checked: no Codegen credentials"),
        ]
    org = settings.codegen_org_id
    async with CodegenClient(
        base_url=settings.codegen_api_url,
        token=settings.codegen_api_token.get_secret_value(),
        org_id=org,
        timeout=wait,
        read_retries=0,
    ) as client:
        try:
            me = await client.current_user()
        except Forbidden as error:
            return [
                fail(
                    token_name,
                    f"the Codegen API refused CODEGEN_API_TOKEN ({error.status_code}: "
                    f"{error.message})",
                    f"Create a new API token at {CODEGEN_TOKEN_URL} and set CODEGEN_API_TOKEN.",
                ),
                skip(org_name, "not checked: the token was refused"),
            ]
        except Unavailable as error:
            return [
                fail(
                    token_name,
                    f"cannot reach {settings.codegen_api_url} ({error.message})",
                    "Check CODEGEN_API_URL and the network (proxy, firewall).",
                ),
                skip(org_name, "not checked: Codegen is unreachable"),
            ]
        except CodegenError as error:
            return [
                fail(
                    token_name,
                    f"/v1/users/me: {error.message}",
                    "Check CODEGEN_API_URL: it should be the API's base URL, e.g. "
                    "https://api.codegen.com.",
                ),
                skip(org_name, "not checked: the token check failed"),
            ]
        who = me.email or me.github_username or f"user {me.id}"
        results = [ok(token_name, f"accepted: {who}")]
        try:
            page = await client.list_repos(limit=1)
        except Forbidden as error:
            results.append(
                fail(
                    org_name,
                    f"the token has no access to organization {org} ({error.status_code}: "
                    f"{error.message})",
                    "Set CODEGEN_ORG_ID to the id of an organization this token belongs to, "
                    f"or create the token in that organization ({CODEGEN_TOKEN_URL}).",
                )
            )
            return results
        except CodegenError as error:
            results.append(
                fail(
                    org_name,
                    f"listing organization {org}'s repositories failed: {error.message}",
                    "Check CODEGEN_ORG_ID and try again; if it persists, ask Codegen support.",
                )
            )
            return results
        if page.total == 0:
            results.append(
                fail(
                    org_name,
                    f"organization {org} has no repositories: every run would be refused (404)",
                    "Connect a GitHub repository to the organization in Codegen.",
                )
            )
            return results
        plural = "y" if page.total == 1 else "ies"
        results.append(ok(org_name, f"organization {org}: {page.total} repositor{plural}"))
        if settings.codegen_default_repo_id is not None:
            results.append(await _check_default_repo(client, settings.codegen_default_repo_id))
        results.append(await _check_members(client, settings))
        return results


async def _check_members(client: CodegenClient, settings: Settings) -> CheckResult:
    """The member list that Slack users are matched against by email (`codegen_user_id`)."""
    name = "codegen members"
    only = settings.codegen_members_only
    try:
        page = await client.list_users(limit=1)
    except CodegenError as error:
        detail = f"cannot list the organization's members ({error.message})"
        if only:
            return fail(
                name,
                detail + ": with CODEGEN_MEMBERS_ONLY nobody could start a run",
                "Use a CODEGEN_API_TOKEN that may list the organization's users, or unset "
                "CODEGEN_MEMBERS_ONLY.",
            )
        return warn(
            name,
            detail + ": runs go without codegen_user_id",
            "Use a CODEGEN_API_TOKEN that may list the organization's users.",
        )
    rule = (
        "only they start runs (CODEGEN_MEMBERS_ONLY)"
        if only
        else "runs carry the match; anyone allowed to ask starts runs"
    )
    members = "member" if page.total == 1 else "members"
    return ok(name, f"{page.total} {members}, matched to Slack users by email: {rule}")


async def _check_default_repo(client: CodegenClient, repo_id: int) -> CheckResult:
    """CODEGEN_DEFAULT_REPO_ID names one of the organization's repositories (else every run
    without `repo=` fails, and only at run time)."""
    name = "codegen default repo"
    names: list[str] = []
    try:
        while True:
            page = await client.list_repos(skip=len(names), limit=100)
            for repo in page.items:
                if repo.id == repo_id:
                    return ok(name, f"CODEGEN_DEFAULT_REPO_ID={repo_id}: {repo.full_name}")
            names.extend(r.full_name for r in page.items)
            if not page.items or len(names) >= page.total:
                break
    except CodegenError as error:
        return fail(
            name,
            f"cannot list the repositories to check CODEGEN_DEFAULT_REPO_ID ({error.message})",
            "Run the doctor again; if it persists, check CODEGEN_ORG_ID.",
        )
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    return fail(
        name,
        f"CODEGEN_DEFAULT_REPO_ID={repo_id} is not a repository of this organization: runs "
        "without repo= would be refused",
        f"Set CODEGEN_DEFAULT_REPO_ID to one of the organization's repository ids ({shown}; "
        "their ids are on the repository pages in Codegen), or unset it.",
    )


# -- all together -------------------------------------------------------------------------------

Check = Callable[[Settings], Awaitable[list[CheckResult]]]


async def run_checks(settings: Settings, *, wait: float = TIMEOUT_SECONDS) -> list[CheckResult]:
    """Every check, in order: settings, database, Slack, Codegen (network checks concurrently)."""
    results = [
        *check_mode(settings),
        check_codegen_settings(settings),
        *check_secret_lengths(settings),
        check_secret_key(settings),
    ]
    groups = await asyncio.gather(
        check_database(settings, wait=wait),
        check_slack(settings, wait=wait),
        check_codegen(settings, wait=wait),
    )
    for group in groups:
        results.extend(group)
    return results


MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def format_results(results: Sequence[CheckResult]) -> str:
    width = max((len(r.name) for r in results), default=10) + 2
    lines = []
    for result in results:
        lines.append(f"{MARKS[result.status]}  {result.name.ljust(width)}{result.detail}")
        if result.fix:
            lines.append(f"{' ' * (6 + width)}fix: {result.fix}")
    failures = sum(1 for r in results if r.status == "fail")
    lines.append("")
    lines.append(
        "Everything checked is in order."
        if failures == 0
        else f"{failures} problem{'s' if failures != 1 else ''} found."
    )
    return "\n".join(lines)


def print_results(results: Sequence[CheckResult], *, out: TextIO | None = None) -> None:
    print(format_results(results), file=out or sys.stdout, flush=True)


def run_doctor(*, settings: Settings | None = None, out: TextIO | None = None) -> int:
    """`codegen-bot doctor`: 0 when nothing failed, 1 otherwise."""
    out = out or sys.stdout
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as error:
            print_results(
                [fail("settings", str(error), "Correct the variables named above.")], out=out
            )
            return 1
    configure_logging(
        log_format=settings.log_format, secrets=settings.secrets(), level=logging.WARNING
    )
    results = asyncio.run(run_checks(settings))
    print_results(results, out=out)
    return 0 if all(r.ok for r in results) else 1
