"""manifest.yml against Slack's app manifest schema v1; scopes against the code; deploy files.

The parts of Slack's schema (slack-manifest.schema.1.0.0.json) that matter to this app are
copied below as SCHEMA, so the test needs nothing outside the repository. Slack's schema does
not list valid scope or event names; KNOWN_BOT_SCOPES / KNOWN_BOT_EVENTS come from Slack's
scope and event reference.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli import main as cli_main
from bot.slack.compose import SEND_TO_CODEGEN_ID
from bot.slack.manifest import (
    BOT_SCOPES,
    CALLED_METHODS,
    COMMAND_SCOPES,
    DOWNLOAD_SCOPES,
    EVENT_SCOPES,
    FIELD_SCOPES,
    METHOD_SCOPES,
    dump_manifest,
    http_manifest,
    load_manifest,
    method_is_covered,
    missing_scopes,
)

ROOT = Path(__file__).resolve().parents[3]

# -- the schema subset -----------------------------------------------------------------------

_URL = {"type": "string", "pattern": r"^https?://", "maxLength": 3500}
_STRINGS_50 = {
    "type": "array",
    "items": {"type": "string", "maxLength": 50},
    "maxItems": 255,
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["display_information"],
    "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string"},
        "_metadata": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                k: {"type": "integer"}
                for k in ("schema_version", "min_version", "major_version", "minor_version")
            },
        },
        "app_directory": {"type": "object"},
        "display_information": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 35},
                "description": {"type": "string", "minLength": 1, "maxLength": 140},
                "background_color": {
                    "type": "string",
                    "minLength": 4,
                    "maxLength": 7,
                    "pattern": r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$",
                },
                "long_description": {"type": "string", "minLength": 175, "maxLength": 4000},
            },
        },
        "features": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "app_home": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        k: {"type": "boolean"}
                        for k in (
                            "home_tab_enabled",
                            "messages_tab_enabled",
                            "messages_tab_read_only_enabled",
                        )
                    },
                },
                "bot_user": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["display_name"],
                    "properties": {
                        "display_name": {"type": "string", "minLength": 1, "maxLength": 80},
                        "always_online": {"type": "boolean"},
                    },
                },
                "slash_commands": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["command", "description"],
                        "properties": {
                            "command": {
                                "type": "string",
                                "minLength": 2,
                                "maxLength": 32,
                                "pattern": r"^/",
                            },
                            "url": {"type": "string", "pattern": r"^https?://", "maxLength": 3000},
                            "description": {"type": "string", "minLength": 1, "maxLength": 2000},
                            "usage_hint": {"type": "string", "minLength": 1, "maxLength": 1000},
                            "should_escape": {"type": "boolean"},
                        },
                    },
                },
                "shortcuts": {"type": "array", "minItems": 1, "maxItems": 10},
                "unfurl_domains": {"type": "array", "minItems": 1, "maxItems": 5},
                "workflow_steps": {"type": "array", "minItems": 1, "maxItems": 10},
                "functions": {"type": "array", "maxItems": 50},
                "assistant_view": {"type": "object"},
                "agent_view": {"type": "object"},
            },
        },
        "oauth_config": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "redirect_urls": {"type": "array", "uniqueItems": True, "maxItems": 1000},
                "scopes": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        k: _STRINGS_50 for k in ("user", "bot", "user_optional", "bot_optional")
                    },
                },
                "token_management_enabled": {"type": "boolean"},
                "pkce_enabled": {"type": "boolean"},
            },
        },
        "settings": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "allowed_ip_address_ranges": {"type": "array", "minItems": 1, "maxItems": 50},
                "event_subscriptions": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "request_url": _URL,
                        "user_events": {**_STRINGS_50, "maxItems": 100, "uniqueItems": True},
                        "bot_events": {**_STRINGS_50, "maxItems": 100, "uniqueItems": True},
                        "metadata_subscriptions": {"type": "array", "maxItems": 20},
                    },
                },
                "incoming_webhooks": {"type": "object"},
                "interactivity": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["is_enabled"],
                    "properties": {
                        "is_enabled": {"type": "boolean"},
                        "request_url": _URL,
                        "message_menu_options_url": _URL,
                    },
                },
                **{
                    k: {"type": "boolean"}
                    for k in (
                        "org_deploy_enabled",
                        "socket_mode_enabled",
                        "is_hosted",
                        "token_rotation_enabled",
                        "is_mcp_enabled",
                    )
                },
                "siws_links": {"type": "object"},
                "hermes_app_type": {"type": "string"},
                "function_runtime": {"type": "string"},
            },
        },
        # Deno/"hermes" app sections: not used by this app, allowed by the schema.
        **{
            k: {"type": "object"}
            for k in ("functions", "workflows", "datastores", "types", "external_auth_providers")
        },
        "outgoing_domains": {"type": "array"},
        "mcp_servers": {"type": "object"},
    },
}

_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
}


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The subset of JSON Schema draft-07 that SCHEMA uses; one message per violation."""
    errors: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        ok = isinstance(value, _TYPES[expected])
        if expected == "integer" and isinstance(value, bool):
            ok = False
        if not ok:
            return [f"{path}: expected {expected}, got {type(value).__name__}"]
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: longer than {schema['maxLength']} ({len(value)})")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            errors.append(f"{path}: items are not unique")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing required {key!r}")
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unknown key {key!r}")
    return errors


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


KNOWN_BOT_SCOPES = _words(
    """
    app_mentions:read assistant:write bookmarks:read bookmarks:write calls:read calls:write
    canvases:read canvases:write channels:history channels:join channels:manage channels:read
    channels:write.invites channels:write.topic chat:write chat:write.customize
    chat:write.public commands conversations.connect:manage conversations.connect:read
    conversations.connect:write datastore:read datastore:write dnd:read emoji:read files:read
    files:write groups:history groups:read groups:write groups:write.invites
    groups:write.topic im:history im:read im:write im:write.topic incoming-webhook
    links.embed:write links:read links:write metadata.message:read mpim:history mpim:read
    mpim:write mpim:write.topic pins:read pins:write reactions:read reactions:write
    reminders:read reminders:write remote_files:read remote_files:share remote_files:write
    team.billing:read team.preferences:read team:read tokens.basic triggers:read
    triggers:write usergroups:read usergroups:write users.profile:read users:read
    users:read.email users:write workflow.steps:execute
    """
)

KNOWN_BOT_EVENTS = _words(
    """
    agent_session_stopped app_home_opened app_mention app_requested app_uninstalled
    assistant_thread_started
    assistant_thread_context_changed call_rejected channel_archive channel_created
    channel_deleted channel_history_changed channel_id_changed channel_left channel_rename
    channel_shared channel_unarchive channel_unshared dnd_updated_user emoji_changed
    file_change file_created file_deleted file_public file_shared file_unshared
    function_executed group_archive group_close group_deleted group_history_changed group_left
    group_open group_rename group_unarchive im_close im_created im_history_changed im_open
    link_shared member_joined_channel member_left_channel message.app_home message.channels
    message.groups message.im message.mpim message_metadata_deleted message_metadata_posted
    message_metadata_updated pin_added pin_removed reaction_added reaction_removed
    shared_channel_invite_accepted shared_channel_invite_approved
    shared_channel_invite_declined shared_channel_invite_received star_added star_removed
    subteam_created subteam_members_changed subteam_self_added subteam_self_removed
    subteam_updated team_access_granted team_access_revoked team_domain_change team_join
    team_rename tokens_revoked user_change user_huddle_changed user_profile_changed
    user_status_changed
    """
)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_manifest()


# -- the manifest itself ---------------------------------------------------------------------


def test_manifest_file_matches_the_schema(manifest: dict[str, Any]) -> None:
    raw = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    assert raw == manifest
    assert schema_errors(manifest, SCHEMA) == []


def test_schema_check_catches_violations() -> None:
    """The checker is not vacuous: each limit that matters is enforced."""
    bad = {
        "display_information": {
            "name": "x" * 36,
            "description": "d" * 141,
            "background_color": "blue",
            "long_description": "too short",
        },
        "features": {
            "bot_user": {"display_name": "b" * 81},
            "slash_commands": [
                {
                    "command": "codegen",
                    "description": "d" * 2001,
                    "usage_hint": "u" * 1001,
                    "should_escape": "no",
                },
                {"command": "/" + "c" * 32},
            ],
        },
        "settings": {"interactivity": {}, "event_subscriptions": {"bot_events": ["a", "a"]}},
        "extra": 1,
    }
    errors = "\n".join(schema_errors(bad, SCHEMA))
    for fragment in [
        "display_information.name: longer than 35",
        "display_information.description: longer than 140",
        "background_color: 'blue' does not match",
        "long_description: shorter than 175",
        "display_name: longer than 80",
        "slash_commands[0].command: 'codegen' does not match",
        "slash_commands[0].description: longer than 2000",
        "slash_commands[0].usage_hint: longer than 1000",
        "slash_commands[0].should_escape: expected boolean",
        "slash_commands[1].command: longer than 32",
        "slash_commands[1]: missing required 'description'",
        "interactivity: missing required 'is_enabled'",
        "bot_events: items are not unique",
        "$: unknown key 'extra'",
    ]:
        assert fragment in errors


def test_manifest_content(manifest: dict[str, Any]) -> None:
    assert manifest["_metadata"] == {"major_version": 1, "minor_version": 1}
    info = manifest["display_information"]
    assert info["name"] == "Codegen" and info["description"] and info["background_color"]
    features = manifest["features"]
    assert features["bot_user"] == {"display_name": "Codegen", "always_online": True}
    # DMs to the bot (message.im) need a writable Messages tab.
    assert features["app_home"]["messages_tab_enabled"] is True
    assert features["app_home"]["messages_tab_read_only_enabled"] is False
    # App Home (bot.home) publishes each person's runs on the Home tab.
    assert features["app_home"]["home_tab_enabled"] is True
    (command,) = features["slash_commands"]
    assert command["command"] == "/codegen"
    assert command["should_escape"] is False
    assert command["usage_hint"] and command["description"]
    assert "url" not in command  # socket mode: Slack needs no URL
    # The message shortcut's callback id is the one its listener is registered for.
    assert features["shortcuts"] == [
        {
            "name": "Send to Codegen",
            "type": "message",
            "callback_id": SEND_TO_CODEGEN_ID,
            "description": features["shortcuts"][0]["description"],
        }
    ]
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"] == {"is_enabled": True}
    assert settings["org_deploy_enabled"] is False
    assert settings["token_rotation_enabled"] is False
    assert set(settings["event_subscriptions"]["bot_events"]) == {
        "agent_session_stopped",
        "app_home_opened",
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
    }
    assert "request_url" not in settings["event_subscriptions"]


def test_scopes_and_events_are_known_names(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) <= KNOWN_BOT_SCOPES, set(scopes) - KNOWN_BOT_SCOPES
    assert set(scopes) == BOT_SCOPES
    assert "user" not in manifest["oauth_config"]["scopes"]  # a bot, no user token
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert set(events) <= KNOWN_BOT_EVENTS, set(events) - KNOWN_BOT_EVENTS
    for table in (METHOD_SCOPES, EVENT_SCOPES):
        for needed in table.values():
            assert needed <= KNOWN_BOT_SCOPES, needed - KNOWN_BOT_SCOPES


# -- scopes against the code -----------------------------------------------------------------

_CLIENT_CALL = re.compile(r"\.([a-z]+(?:_[A-Za-z0-9]+)+)\s*\(")
_API_CALL = re.compile(
    r"""\bapi_call\(\s*(?:api_method\s*=\s*)?["']([A-Za-z]+(?:\.[A-Za-z]+)+)["']"""
)
# The bot's gateway: `slack.call("chat.postMessage", {...})`.
_GATEWAY_CALL = re.compile(r"""\.call\(\s*["']([A-Za-z]+(?:\.[A-Za-z]+)+)["']""")
_SAY = re.compile(r"\bawait\s+say\s*\(")
# slack_sdk helpers that call several API methods under one name.
_COMPOSITE = {
    "files_upload_v2": ("files.getUploadURLExternal", "files.completeUploadExternal"),
}


def slack_methods_called(source: str) -> set[str]:
    """Dotted Slack Web API methods a piece of source calls through slack_sdk/bolt."""
    found: set[str] = set()
    for name in _CLIENT_CALL.findall(source):
        if name in _COMPOSITE:
            found.update(_COMPOSITE[name])
        elif name != "api_call" and callable(getattr(AsyncWebClient, name, None)):
            found.add(name.replace("_", "."))
    found.update(_API_CALL.findall(source))
    found.update(_GATEWAY_CALL.findall(source))
    if _SAY.search(source):  # bolt's say() is chat.postMessage
        found.add("chat.postMessage")
    return found


def _code_files() -> list[Path]:
    return sorted(p for d in ("bot", "handlers") for p in (ROOT / d).rglob("*.py"))


@pytest.fixture(scope="module")
def methods_in_code() -> dict[str, list[str]]:
    """method → the files that call it."""
    calls: dict[str, list[str]] = {}
    for path in _code_files():
        for method in slack_methods_called(path.read_text(encoding="utf-8")):
            calls.setdefault(method, []).append(str(path.relative_to(ROOT)))
    return calls


def test_scanner_finds_calls() -> None:
    source = """
        await client.chat_postMessage(channel=c, text=t)
        await self._client.conversations_replies (channel=c, ts=ts)
        resp = await web.api_call("chat.getPermalink", params=p)
        await client.api_call(api_method='users.info')
        await client.files_upload_v2(file=b)
        await self.slack.call("reactions.add", {"name": n})
        await say(text="hi")
        settings.allowed_slack_users(x)   # not a Slack method
        async def chat_update(self, **kw): ...   # a definition, not a call
    """
    assert slack_methods_called(source) == {
        "chat.postMessage",
        "conversations.replies",
        "chat.getPermalink",
        "users.info",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
        "reactions.add",
    }


def test_every_called_method_is_covered_by_a_requested_scope(
    manifest: dict[str, Any], methods_in_code: dict[str, list[str]]
) -> None:
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    for method in sorted(CALLED_METHODS | set(methods_in_code)):
        where = methods_in_code.get(method, ["CALLED_METHODS"])
        assert method in METHOD_SCOPES, (
            f"{method} (called in {where}) is missing from bot.slack.manifest.METHOD_SCOPES"
        )
        assert method_is_covered(method, granted), (
            f"{method} (called in {where}) needs one of {sorted(METHOD_SCOPES[method])} "
            "in manifest.yml oauth_config.scopes.bot"
        )


def test_methods_in_code_are_declared(methods_in_code: dict[str, list[str]]) -> None:
    undeclared = {m: f for m, f in methods_in_code.items() if m not in CALLED_METHODS}
    assert not undeclared, f"add to bot.slack.manifest.CALLED_METHODS: {undeclared}"


def test_every_requested_scope_is_used(manifest: dict[str, Any]) -> None:
    granted = set(manifest["oauth_config"]["scopes"]["bot"])
    used: set[str] = set()
    for method in CALLED_METHODS:
        used |= METHOD_SCOPES[method] & granted
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        assert event in EVENT_SCOPES, f"bot event {event} missing from EVENT_SCOPES"
        assert EVENT_SCOPES[event] <= granted, f"{event} needs {EVENT_SCOPES[event]}"
        used |= EVENT_SCOPES[event]
    if manifest["features"].get("slash_commands"):
        used |= COMMAND_SCOPES
    used |= DOWNLOAD_SCOPES  # url_private downloads of screenshots
    used |= FIELD_SCOPES  # users.info's email (membership)
    assert granted - used == set(), f"requested but unused: {sorted(granted - used)}"


def test_missing_scopes() -> None:
    assert missing_scopes(BOT_SCOPES) == set()
    header = "chat:write, commands,app_mentions:read"
    assert "chat:write" not in missing_scopes(header.split(","))
    assert "im:write" in missing_scopes(header.split(","))


# -- HTTP mode -------------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["https://bot.example.com", "https://bot.example.com/"])
def test_http_manifest(manifest: dict[str, Any], base: str) -> None:
    url = "https://bot.example.com/slack/events"
    http = http_manifest(base)
    assert schema_errors(http, SCHEMA) == []
    settings = http["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == url
    assert settings["interactivity"]["request_url"] == url
    # The run form's repository search (block_suggestion) is posted to the options URL.
    assert settings["interactivity"]["message_menu_options_url"] == url
    assert [c["url"] for c in http["features"]["slash_commands"]] == [url]
    # Everything else as shipped; the shipped manifest is untouched.
    assert http["oauth_config"] == manifest["oauth_config"]
    assert load_manifest()["settings"]["socket_mode_enabled"] is True


def test_http_manifest_with_path_prefix_and_bad_url() -> None:
    http = http_manifest("https://example.com/codegen/")
    assert http["settings"]["event_subscriptions"]["request_url"] == (
        "https://example.com/codegen/slack/events"
    )
    with pytest.raises(ValueError):
        http_manifest("bot.example.com")


def test_dump_round_trips_in_order(manifest: dict[str, Any]) -> None:
    text = dump_manifest(http_manifest("https://bot.example.com"))
    assert yaml.safe_load(text) == http_manifest("https://bot.example.com")
    assert text.index("display_information") < text.index("settings")


def test_the_manifest_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["manifest", "--http", "https://bot.example.com"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["settings"]["socket_mode_enabled"] is False
    assert cli_main(["manifest", "--http", "nope"]) == 2
    # Slack sends request URLs https only: a plain http base is refused, saying why.
    assert cli_main(["manifest", "--http", "http://bot.example.com"]) == 2
    assert "Slack requires https" in capsys.readouterr().err


# -- deployment files (parsed only: no Docker engine in the test environment) ----------------


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(
        r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            result.append((instruction.upper(), args.strip()))
    return result


def test_dockerfile() -> None:
    steps = _dockerfile()
    froms = [args for ins, args in steps if ins == "FROM"]
    assert froms[0] == "python:3.11-slim AS builder"
    assert len(froms) >= 2 and froms[-1].startswith("python:3.11-slim AS ")
    runtime = steps[max(i for i, (ins, _) in enumerate(steps) if ins == "FROM") :]
    runtime_ins = dict(runtime)  # last of each instruction in the runtime stage
    user = runtime_ins["USER"].split(":")[0]
    assert user not in ("root", "0", "")
    assert any(ins == "COPY" and args.startswith("--from=builder") for ins, args in runtime)
    healthcheck = runtime_ins["HEALTHCHECK"]
    assert "urllib" in healthcheck and "127.0.0.1:${PORT:-3000}/healthz" in healthcheck
    assert runtime_ins["ENTRYPOINT"] == '["codegen-bot"]'
    assert runtime_ins["CMD"] == '["run"]'
    assert runtime_ins["EXPOSE"] == "3000"
    env = " ".join(args for ins, args in runtime if ins == "ENV")
    assert "PYTHONUNBUFFERED=1" in env
    assert "DATABASE_URL=sqlite+aiosqlite:////data/codegen-bot.db" in env
    # Every COPY source from the build context exists and is not excluded by .dockerignore.
    ignored = _dockerignore()
    for ins, args in steps:
        if ins == "COPY" and not args.startswith("--from"):
            for source in shlex.split(args)[:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


def _dockerignore() -> set[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}


def test_dockerignore() -> None:
    ignored = _dockerignore()
    for pattern in (".git", ".venv", "*.db", "tests", "**/__pycache__", ".env"):
        assert pattern in ignored, pattern
    for needed in ("bot", "handlers", "pyproject.toml", "README.md", "manifest.yml"):
        assert needed not in ignored


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (e.partition("=") for e in env)}
    return dict(env)


def test_compose() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]

    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])

    bot = services["bot"]
    assert bot["build"] in (".", {"context": "."})
    env = _environment(bot)
    assert env["BOT_MODE"] == "http"
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "CODEGEN_API_TOKEN", "CODEGEN_ORG_ID"):
        assert name in env, name
        # Passed through from the host, never a literal value in the file.
        assert env[name] is None or str(env[name]).startswith("${"), name
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert bot["deploy"]["replicas"] >= 2
    # Replicas cannot share a published host port.
    assert "ports" not in bot
    assert "pgdata" in compose["volumes"]
