"""The Slack app manifest: load the one shipped with the bot, make the HTTP-mode variant.

`manifest.yml` at the top of the repository is the single source of truth. From a checkout
(including an editable install) it is read from there; an installed wheel carries a copy as
package data (`bot/manifest.yml`, put there at build time, see the Dockerfile).

The scope tables below say which OAuth scope covers each Slack Web API method the code calls;
a test scans the code and checks both directions (no call without a scope, no scope without a
use).
"""

from __future__ import annotations

import copy
import importlib.resources
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

MANIFEST_NAME = "manifest.yml"
EVENTS_PATH = "/slack/events"

# -- scopes ----------------------------------------------------------------------------------

#: The bot token scopes manifest.yml requests (and the bot needs at run time).
BOT_SCOPES: frozenset[str] = frozenset(
    {
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "im:history",
        "im:write",
        "chat:write",
        "commands",
        "reactions:write",
        "files:read",
        "users:read",
        "users:read.email",
        "channels:read",
        "groups:read",
        "assistant:write",
    }
)

#: Every Slack Web API method the bot calls (dotted names). Keep in step with the code: the
#: manifest test fails when the code calls a method that is missing here.
CALLED_METHODS: frozenset[str] = frozenset(
    {
        "auth.test",
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "chat.getPermalink",
        "reactions.add",
        "reactions.remove",
        "conversations.replies",
        "conversations.history",
        "conversations.info",
        "conversations.open",
        "users.info",
        "files.info",
        "views.open",
        "views.publish",
        "agents.sessions.setStatus",
        # `codegen-bot doctor`, with the app-level token (SLACK_APP_TOKEN), not the bot token.
        "apps.connections.open",
    }
)

_HISTORY = frozenset({"channels:history", "groups:history", "im:history", "mpim:history"})
_CONV_READ = frozenset({"channels:read", "groups:read", "im:read", "mpim:read"})

#: Web API method → the bot scopes that grant it (any one of them is enough for some
#: conversation type). An empty set means the method needs no scope.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "auth.test": frozenset(),
    # Called with the app-level token, whose `connections:write` scope is not a bot scope.
    "apps.connections.open": frozenset(),
    "chat.postMessage": frozenset({"chat:write"}),
    "chat.update": frozenset({"chat:write"}),
    "chat.postEphemeral": frozenset({"chat:write"}),
    "chat.delete": frozenset({"chat:write"}),
    "chat.getPermalink": frozenset(),
    "reactions.add": frozenset({"reactions:write"}),
    "reactions.remove": frozenset({"reactions:write"}),
    "reactions.get": frozenset({"reactions:read"}),
    "conversations.replies": _HISTORY,
    "conversations.history": _HISTORY,
    "conversations.info": _CONV_READ,
    "conversations.members": _CONV_READ,
    "conversations.open": frozenset({"im:write", "mpim:write", "channels:manage", "groups:write"}),
    "conversations.join": frozenset({"channels:join"}),
    "users.info": frozenset({"users:read"}),
    "users.lookupByEmail": frozenset({"users:read.email"}),
    "files.info": frozenset({"files:read"}),
    "files.getUploadURLExternal": frozenset({"files:write"}),
    "files.completeUploadExternal": frozenset({"files:write"}),
    "views.open": frozenset(),
    "views.publish": frozenset(),
    "views.update": frozenset(),
    # Thread-based agent sessions need chat:write (docs.slack.dev/ai/agent-sessions).
    "agents.sessions.setStatus": frozenset({"chat:write"}),
    "agents.sessions.rename": frozenset({"chat:write"}),
}

#: Bot event → the scope Slack requires to deliver it.
EVENT_SCOPES: dict[str, frozenset[str]] = {
    "app_mention": frozenset({"app_mentions:read"}),
    "message.channels": frozenset({"channels:history"}),
    "message.groups": frozenset({"groups:history"}),
    "message.im": frozenset({"im:history"}),
    "message.mpim": frozenset({"mpim:history"}),
    "reaction_added": frozenset({"reactions:read"}),
    "reaction_removed": frozenset({"reactions:read"}),
    "app_home_opened": frozenset(),
    # Slack's stop button on a session: sessions exist only for apps declared as agents,
    # which is what assistant:write is.
    "agent_session_stopped": frozenset({"assistant:write"}),
}

#: Scopes that add fields to a method's answer: `users.info` gives the profile's email only
#: with `users:read.email` (membership is matched by email, bot.intake.members).
FIELD_SCOPES: frozenset[str] = frozenset({"users:read.email"})

#: Slash commands need `commands`.
COMMAND_SCOPES: frozenset[str] = frozenset({"commands"})
#: Downloading a file's `url_private` with the bot token needs `files:read`.
DOWNLOAD_SCOPES: frozenset[str] = frozenset({"files:read"})


def method_is_covered(method: str, granted: Iterable[str]) -> bool:
    """True when `granted` holds a scope for `method` (or the method needs none)."""
    needed = METHOD_SCOPES[method]
    return not needed or bool(needed & set(granted))


def missing_scopes(granted: Iterable[str]) -> set[str]:
    """BOT_SCOPES the installed token lacks (e.g. from auth.test's `x-oauth-scopes` header)."""
    return set(BOT_SCOPES) - {scope.strip() for scope in granted if scope.strip()}


# -- loading ---------------------------------------------------------------------------------


def _checkout_manifest() -> Path | None:
    """`manifest.yml` at the repository root, when running from a checkout."""
    root = Path(__file__).resolve().parents[2]
    candidate = root / MANIFEST_NAME
    if candidate.is_file() and (root / "pyproject.toml").is_file():
        return candidate
    return None


@lru_cache(maxsize=1)
def _manifest_text() -> str:
    path = _checkout_manifest()
    if path is not None:
        return path.read_text(encoding="utf-8")
    resource = importlib.resources.files("bot").joinpath(MANIFEST_NAME)
    if resource.is_file():
        return resource.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"{MANIFEST_NAME} not found: expected it at the repository root (checkout) or as "
        "package data bot/manifest.yml (installed wheel)"
    )


def load_manifest() -> dict[str, Any]:
    """The Socket Mode manifest as shipped; a fresh dict on every call (safe to mutate)."""
    data = yaml.safe_load(_manifest_text())
    if not isinstance(data, dict):
        raise ValueError(f"{MANIFEST_NAME} must be a mapping at the top level")
    return data


_URL = re.compile(r"^https://[^\s/]+")


def events_url(base_url: str) -> str:
    """`https://host/prefix` → `https://host/prefix/slack/events`. Slack sends events and
    commands only to https request URLs, so anything else is refused here, not at Slack."""
    if not _URL.match(base_url):
        raise ValueError(
            f"base URL must be an https:// URL: Slack requires https for request URLs "
            f"(got {base_url!r})"
        )
    return base_url.rstrip("/") + EVENTS_PATH


def http_manifest(base_url: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The HTTP-mode variant: socket mode off, every request URL = `<base_url>/slack/events`."""
    data = copy.deepcopy(manifest) if manifest is not None else load_manifest()
    url = events_url(base_url)
    settings = data.setdefault("settings", {})
    settings["socket_mode_enabled"] = False
    settings.setdefault("event_subscriptions", {})["request_url"] = url
    interactivity = settings.setdefault("interactivity", {"is_enabled": True})
    if interactivity.get("is_enabled"):
        interactivity["request_url"] = url
        # The run form's repository search (block_suggestion) is posted here.
        interactivity["message_menu_options_url"] = url
    for command in data.get("features", {}).get("slash_commands", []) or []:
        command["url"] = url
    return data


def dump_manifest(data: dict[str, Any]) -> str:
    """YAML text in the manifest's own key order, ready to paste into Slack."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
