"""Every setting of the bot, read once from the environment (and `.env`).

The names and defaults are a contract (docs/contracts.md, README's table): operators set them
in compose files and Kubernetes manifests, so add settings, never rename them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.codegen.models import AgentType
from bot.errors import ConfigError

__all__ = ["EMULATOR_ORG_ID", "EMULATOR_TOKEN", "ConfigError", "Settings", "load_settings"]

BotMode = Literal["socket", "http", "console", "auto"]
Mode = Literal["socket", "http", "console"]

# Used when CODEGEN_API_TOKEN / CODEGEN_ORG_ID are unset: the built-in emulator accepts these.
EMULATOR_TOKEN = "emulator-token"
EMULATOR_ORG_ID = 1


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    codegen_api_token: SecretStr | None = None
    codegen_org_id: int | None = Field(default=None, gt=0)
    codegen_api_url: str = "https://api.codegen.com"

    database_url: str = "sqlite+aiosqlite:///./codegen-bot.db"
    bot_mode: BotMode = "auto"
    # Unique per live process and stable across its restarts; unset → the hostname.
    bot_replica_id: str | None = Field(default=None, min_length=1, pattern=r"^[^\s:]+$")
    port: int = Field(default=3000, ge=1, le=65535)

    codegen_create_per_minute: int = Field(default=10, ge=1)
    codegen_poll_min_seconds: float = Field(default=5.0, gt=0)
    codegen_poll_max_seconds: float = Field(default=60.0, gt=0)
    # Run-log reads a minute for the cards' progress lines (their own budget; 0: no progress).
    codegen_logs_per_minute: int = Field(default=20, ge=0, le=60)

    codegen_default_repo_id: int | None = Field(default=None, gt=0)
    codegen_default_model: str | None = None
    codegen_default_agent_type: AgentType | None = None

    # Plain [] defaults (pydantic copies them per instance): a default_factory=list costs an
    # inspect.signature of a builtin at import, 7 ms of the bot's start.
    allowed_slack_users: Annotated[list[str], NoDecode] = []
    allowed_slack_channels: Annotated[list[str], NoDecode] = []
    # May stop anyone's run (the requester may always stop their own); when set, only they
    # change channel defaults.
    admin_slack_users: Annotated[list[str], NoDecode] = []

    # Only members of the Codegen organization (matched by email) may start runs.
    codegen_members_only: bool = False

    max_images: int = Field(default=6, ge=0)
    max_image_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_prompt_chars: int = Field(default=20000, ge=1)

    log_format: Literal["text", "json"] = "text"

    # Fernet key(s) sealing people's Codegen tokens at rest (comma-separated: the first seals).
    # Unset: `/codegen login` is turned off.
    bot_secret_key: SecretStr | None = None
    # A person's token that Codegen rejects: `refuse` their runs until they log in again, or
    # make them with the organization's token (`org`). Never silently by default.
    personal_token_fallback: Literal["org", "refuse"] = "refuse"

    @field_validator(
        "allowed_slack_users", "allowed_slack_channels", "admin_slack_users", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_ids(value)

    @field_validator(
        "codegen_default_model",
        "codegen_default_agent_type",
        "bot_replica_id",
        "codegen_default_repo_id",
        "codegen_org_id",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("slack_api_url")
    @classmethod
    def _slash_terminated(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("codegen_api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _poll_bounds(self) -> Settings:
        if self.codegen_poll_max_seconds < self.codegen_poll_min_seconds:
            raise ValueError("CODEGEN_POLL_MAX_SECONDS must be at least CODEGEN_POLL_MIN_SECONDS")
        return self

    # -- derived views ---------------------------------------------------------------------

    @property
    def uses_emulator(self) -> bool:
        """No Codegen credentials: talk to the built-in emulator instead of the real API."""
        return self.codegen_api_token is None

    @property
    def effective_org_id(self) -> int:
        return self.codegen_org_id if self.codegen_org_id is not None else EMULATOR_ORG_ID

    @property
    def effective_codegen_token(self) -> str:
        token = self.codegen_api_token
        return token.get_secret_value() if token is not None else EMULATOR_TOKEN

    def resolved_mode(self, *, stdin_is_tty: bool) -> Mode:
        """`auto` → socket if an app token is set, http if only a signing secret, else console."""
        if self.bot_mode != "auto":
            return self.bot_mode
        if self.slack_app_token is not None:
            return "socket"
        if self.slack_signing_secret is not None:
            return "http"
        if stdin_is_tty:
            return "console"
        raise ConfigError(
            "BOT_MODE=auto found no way to reach Slack: set SLACK_APP_TOKEN (Socket Mode) or "
            "SLACK_SIGNING_SECRET (HTTP mode) with SLACK_BOT_TOKEN, or run `codegen-bot console` "
            "in a terminal"
        )

    def missing_for_mode(self, mode: Mode) -> list[str]:
        """The variables `mode` needs that are not set (the console needs none)."""
        if mode == "console":
            return []
        missing = [] if self.slack_bot_token is not None else ["SLACK_BOT_TOKEN"]
        if mode == "http" and self.slack_signing_secret is None:
            missing.append("SLACK_SIGNING_SECRET")
        if mode == "socket" and self.slack_app_token is None:
            missing.append("SLACK_APP_TOKEN")
        return missing

    @property
    def database_url_shown(self) -> str:
        """DATABASE_URL without its password, for messages and logs."""
        return safe_database_url(self.database_url)

    def secrets(self) -> list[str]:
        """Every secret value set, so log filters can redact them."""
        values = [
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
            self.codegen_api_token,
            self.bot_secret_key,
        ]
        return [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]


def safe_database_url(url: str) -> str:
    """A SQLAlchemy URL without its password (the URL as given if it cannot be read)."""
    from sqlalchemy.engine import make_url  # only when a URL is shown: start-up stays light

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unreadable DATABASE_URL>"


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        shown = "<hidden>" if ("TOKEN" in name or "SECRET" in name) else repr(item.get("input"))
        lines.append(f"{name}: {item['msg']} (got {shown})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: object) -> Settings:
    """Read the settings once; a bad value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
