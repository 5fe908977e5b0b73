"""Settings: every variable of README's table, read once; bad values named at start."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, Settings, load_settings

VARIABLES = [
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_API_URL",
    "CODEGEN_API_TOKEN",
    "CODEGEN_ORG_ID",
    "CODEGEN_API_URL",
    "DATABASE_URL",
    "BOT_MODE",
    "PORT",
    "CODEGEN_CREATE_PER_MINUTE",
    "CODEGEN_POLL_MIN_SECONDS",
    "CODEGEN_POLL_MAX_SECONDS",
    "CODEGEN_DEFAULT_REPO_ID",
    "CODEGEN_DEFAULT_MODEL",
    "CODEGEN_DEFAULT_AGENT_TYPE",
    "ALLOWED_SLACK_USERS",
    "ALLOWED_SLACK_CHANNELS",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "MAX_PROMPT_CHARS",
    "LOG_FORMAT",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))  # no stray .env


def test_every_documented_variable_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert set(VARIABLES) <= fields


def test_defaults_match_the_design() -> None:
    settings = load_settings()
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.codegen_api_url == "https://api.codegen.com"
    assert settings.database_url == "sqlite+aiosqlite:///./codegen-bot.db"
    assert settings.bot_mode == "auto"
    assert settings.port == 3000
    assert settings.codegen_create_per_minute == 10
    assert (settings.codegen_poll_min_seconds, settings.codegen_poll_max_seconds) == (5, 60)
    assert (settings.max_images, settings.max_image_bytes, settings.max_prompt_chars) == (
        6,
        10485760,
        20000,
    )
    assert settings.allowed_slack_users == [] and settings.allowed_slack_channels == []
    assert settings.log_format == "text"
    assert settings.uses_emulator


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_SLACK_USERS", "U1, U2,,U3")
    monkeypatch.setenv("CODEGEN_POLL_MIN_SECONDS", "0.25")
    monkeypatch.setenv("CODEGEN_POLL_MAX_SECONDS", "1.5")
    monkeypatch.setenv("CODEGEN_DEFAULT_AGENT_TYPE", "claude_code")
    monkeypatch.setenv("CODEGEN_ORG_ID", "42")
    monkeypatch.setenv("CODEGEN_API_TOKEN", "secret-token")
    settings = load_settings()
    assert settings.allowed_slack_users == ["U1", "U2", "U3"]
    assert settings.codegen_poll_min_seconds == 0.25
    assert settings.codegen_poll_max_seconds == 1.5
    assert settings.codegen_default_agent_type == "claude_code"
    assert settings.effective_org_id == 42
    assert not settings.uses_emulator
    assert "secret-token" not in repr(settings)


def test_a_dotenv_file_is_read(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    with open(".env", "w") as env:
        env.write("MAX_IMAGES=2\nLOG_FORMAT=json\n")
    settings = load_settings()
    assert (settings.max_images, settings.log_format) == (2, "json")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("BOT_MODE", "sockets", "'socket', 'http', 'console' or 'auto'"),
        ("PORT", "http", "valid integer"),
        ("CODEGEN_DEFAULT_AGENT_TYPE", "gpt", "'codegen' or 'claude_code'"),
        ("CODEGEN_POLL_MIN_SECONDS", "-1", "greater than 0"),
        ("LOG_FORMAT", "xml", "'text' or 'json'"),
        ("MAX_IMAGES", "many", "valid integer"),
    ],
)
def test_a_bad_value_fails_naming_the_variable_and_what_it_accepts(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert name in str(error.value)
    assert expected in str(error.value)


def test_poll_bounds_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEGEN_POLL_MIN_SECONDS", "30")
    monkeypatch.setenv("CODEGEN_POLL_MAX_SECONDS", "10")
    with pytest.raises(ConfigError, match="CODEGEN_POLL_MAX_SECONDS"):
        load_settings()


def test_a_secret_is_never_echoed_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("PORT", "nope")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "xoxb-very-secret" not in str(error.value)


@pytest.mark.parametrize(
    ("env", "tty", "mode"),
    [
        ({"SLACK_APP_TOKEN": "xapp-1", "SLACK_SIGNING_SECRET": "s"}, False, "socket"),
        ({"SLACK_SIGNING_SECRET": "s"}, False, "http"),
        ({}, True, "console"),
        ({"BOT_MODE": "http"}, True, "http"),
    ],
)
def test_auto_mode_picks_the_transport(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, mode: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert load_settings().resolved_mode(stdin_is_tty=tty) == mode


def test_auto_mode_without_slack_or_terminal_names_what_is_missing() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings().resolved_mode(stdin_is_tty=False)
    assert "SLACK_APP_TOKEN" in str(error.value) and "SLACK_SIGNING_SECRET" in str(error.value)
