"""What a person typed: `/codegen` subcommands, inline run options, and where options come from.

Pure functions only. Every rule for reading a request lives here so the slash command, mentions,
thread replies and the terminal console all understand the same text the same way.

The option grammar, one rule (docs/contracts.md repeats it):

    An option is `key=value` for the keys `repo`, `model` and `agent` (alias `agent_type`),
    standing anywhere outside code, alone or in a bracketed group `[key=value, key=value]`
    (commas or spaces between them). The last value given for a key wins.

- `repo=<id or owner/name>` (a GitHub URL is accepted too), `model=<name>` (quote names with
  spaces), `agent=codegen|claude_code`.
- Outside a group, a `key=value` with any other key is ordinary prompt text (`set timeout=30`
  stays in the prompt); a group that starts with a known key is options, and an unknown key
  in it is an error. A group at the very start is options whatever its first key.
- A `[` that opens a group of options and is never closed is an error that names it.
- Text inside backticks is never read as options, so pasted code stays exactly as it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from bot.config import Settings
from bot.errors import OptionError
from bot.requests import (
    AgentType,
    OptionField,
    OptionSource,
    ResolvedOption,
    ResolvedOptions,
    RunOptions,
)
from bot.slack.text import slack_escape, strip_invisible
from bot.store.tables import ChannelDefaults

__all__ = [
    "AGENT_TYPES",
    "HELP_TEXT",
    "OPTION_KEYS",
    "AccountCommand",
    "Command",
    "ConfigResetCommand",
    "ConfigSetCommand",
    "ConfigShowCommand",
    "HelpCommand",
    "ListCommand",
    "ParsedRequest",
    "RunCommand",
    "StatusCommand",
    "StopCommand",
    "channel_options",
    "org_options",
    "parse_command",
    "parse_option_value",
    "parse_request_text",
    "parse_run_id",
    "parse_stop",
    "resolve_options",
]

AGENT_TYPES: tuple[str, ...] = get_args(AgentType)
# What a person types → the RunOptions field it sets. `agent_type` is accepted as an alias.
OPTION_KEYS: dict[str, OptionField] = {
    "repo": "repo",
    "model": "model",
    "agent": "agent_type",
    "agent_type": "agent_type",
}
_SHOWN_KEYS = "`repo`, `model`, `agent`"
_SHOWN_AGENTS = ", ".join(f"`{a}`" for a in AGENT_TYPES)
# `config repo=none` clears a saved channel default.
_CLEAR_WORDS = frozenset({"none", "default", "-", "unset", "clear"})
_MAX_MODEL_CHARS = 200


def _echo(text: str) -> str:
    """Typed text quoted back in a message: shortened, and unable to mention or link anyone."""
    text = text.replace("`", "'").replace("\n", " ")
    if len(text) > 80:
        text = text[:79] + "…"
    return slack_escape(text)


# -- commands --------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class HelpCommand(_Frozen):
    kind: Literal["help"] = "help"
    # Why help is shown instead of what was asked (e.g. options but no prompt); None for `help`.
    note: str | None = None


class ComposeCommand(_Frozen):
    """`/codegen` with no text: open the run form."""

    kind: Literal["compose"] = "compose"


class StatusCommand(_Frozen):
    kind: Literal["status"] = "status"
    run_id: int


class StopCommand(_Frozen):
    kind: Literal["stop"] = "stop"
    # None: the run of the thread the words were written in.
    run_id: int | None = None


class AccountCommand(_Frozen):
    """`/codegen login`, `logout` or `whoami`: a person's own Codegen token."""

    kind: Literal["login", "logout", "whoami"]


class ListCommand(_Frozen):
    kind: Literal["list"] = "list"


class ConfigShowCommand(_Frozen):
    kind: Literal["config_show"] = "config_show"


class ConfigSetCommand(_Frozen):
    kind: Literal["config_set"] = "config_set"
    # Defaults to save for the channel; None means "leave as it is".
    options: RunOptions
    # Fields to remove from the channel's defaults (`config model=none`).
    clear: frozenset[OptionField] = frozenset()


class ConfigResetCommand(_Frozen):
    kind: Literal["config_reset"] = "config_reset"


class RunCommand(_Frozen):
    kind: Literal["run"] = "run"
    prompt: str
    options: RunOptions


Command = (
    HelpCommand
    | ComposeCommand
    | StatusCommand
    | StopCommand
    | AccountCommand
    | ListCommand
    | ConfigShowCommand
    | ConfigSetCommand
    | ConfigResetCommand
    | RunCommand
)


class ParsedRequest(_Frozen):
    prompt: str
    options: RunOptions


# -- values ----------------------------------------------------------------------------------

_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_NAME = r"[A-Za-z0-9._-]{1,100}"
_REPO_FULL_NAME = re.compile(rf"^({_OWNER})/({_NAME})$")
_GITHUB_URL = re.compile(
    rf"^(?:https?://)?(?:www\.)?github\.com/({_OWNER})/({_NAME}?)(?:\.git)?(?:[/?#].*)?$",
    re.IGNORECASE,
)
_RUN_ID = re.compile(r"^#?(\d{1,18})$")
_SLACK_LINK = re.compile(r"^<([^<>|]*)(?:\|([^<>]*))?>$")
_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’"}


def _unquote(raw: str) -> str:
    """Strip one pair of quotes (straight or the curly ones Slack clients type)."""
    if len(raw) >= 2 and raw[0] in _QUOTES and raw[-1] == _QUOTES[raw[0]]:
        return raw[1:-1].strip()
    return raw


def _unwrap_slack_link(raw: str) -> str:
    """Slack turns `acme.com/x` into `<http://acme.com/x|acme.com/x>`; take what was typed."""
    match = _SLACK_LINK.match(raw)
    if match is None:
        return raw
    url, label = match.group(1), match.group(2)
    return label if label else url


def _parse_repo(value: str) -> str:
    value = _unwrap_slack_link(value).strip()
    if value.startswith("#"):
        value = value[1:]
    if value.isdigit():
        if int(value) <= 0:
            raise OptionError(
                f"`repo={_echo(value)}` is not a repository id: ids are positive numbers."
            )
        return str(int(value))
    url = _GITHUB_URL.match(value)
    if url is not None:
        owner, name = url.group(1), url.group(2)
    else:
        full = _REPO_FULL_NAME.match(value.removesuffix(".git"))
        if full is None:
            raise OptionError(
                f"`repo={_echo(value)}` is not a repository: use its numeric id (`repo=42`) "
                "or its GitHub name (`repo=owner/name`)."
            )
        owner, name = full.group(1), full.group(2)
    if name in (".", "..") or owner.endswith("-"):
        raise OptionError(f"`repo={_echo(value)}` is not a valid GitHub `owner/name`.")
    return f"{owner}/{name}"


def _parse_model(value: str) -> str:
    if value.startswith(("<@", "<#", "<!")):
        raise OptionError(f"`model={_echo(value)}` is not a model name.")
    value = _unwrap_slack_link(value).strip()
    if (
        not value
        or len(value) > _MAX_MODEL_CHARS
        or any(ch.isspace() and ch != " " for ch in value)
        or any(ord(ch) < 32 for ch in value)
    ):
        raise OptionError(f"`model={_echo(value)}` is not a model name.")
    return value


def _parse_agent(value: str) -> AgentType:
    normal = value.strip().lower().replace("-", "_")
    if normal == "codegen":
        return "codegen"
    if normal in ("claude_code", "claude"):
        return "claude_code"
    raise OptionError(f"`agent={_echo(value)}` is not an agent. Valid values: {_SHOWN_AGENTS}.")


def parse_option_value(key: str, raw: str) -> tuple[OptionField, str]:
    """Check one typed option (`key` as typed, value maybe quoted) → (RunOptions field, value).

    Raises OptionError naming the valid keys or values.
    """
    field = OPTION_KEYS.get(key.lower())
    if field is None:
        raise OptionError(f"Unknown option `{_echo(key)}`. Valid options: {_SHOWN_KEYS}.")
    value = _unquote(raw.strip())
    if not value:
        raise OptionError(f"`{_echo(key)}=` needs a value, e.g. {_example(field)}.")
    if field == "repo":
        return field, _parse_repo(value)
    if field == "model":
        return field, _parse_model(value)
    return field, _parse_agent(value)


def _example(field: OptionField) -> str:
    return {
        "repo": "`repo=acme/web` or `repo=42`",
        "model": '`model=gpt-5` or `model="claude sonnet"`',
        "agent_type": "`agent=claude_code`",
    }[field]


def parse_run_id(text: str) -> int:
    """`123` or `#123` → 123; anything else raises OptionError."""
    match = _RUN_ID.match(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise OptionError(
            f"`{_echo(text.strip())}` is not a run id. Usage: `/codegen status &lt;run id&gt;`, "
            "for example `/codegen status 123`."
        )
    return int(match.group(1))


# -- request text ----------------------------------------------------------------------------

# A value: quoted (straight or curly), a Slack link token, or a run of non-blanks without
# `,`/`;` (they separate options: `repo=a, model=b`).
_VALUE = r"""(?:"[^"\n]*"|'[^'\n]*'|“[^”\n]*”|‘[^’\n]*’|<[^<>\n]*>|[^\s,;"'“‘<][^\s,;]*|)"""
_INLINE_OPTION = re.compile(
    rf"(?<![^\s,;])(?P<key>repo|model|agent_type|agent)=(?P<value>{_VALUE})(?=$|[\s,;.:!?)\]])",
    re.IGNORECASE,
)
# Sentence punctuation after an unquoted value belongs to the sentence, not the value.
_TRAILING_PUNCT = ".:!?)]"
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
# Leading `[key=value, ...]`, optionally after Slack mention tokens (`<@U123> [repo=x] …`).
_LEADING_BLOCK = re.compile(r"^(?P<lead>\s*(?:<[@#!][^<>]*>\s*)*)\[(?P<body>[^\[\]]*)\]")
_LOOKS_LIKE_OPTIONS = re.compile(r"^\s*[A-Za-z_][\w-]*\s*=")
# A group elsewhere is options when its first key is one (`fix it [model=x]`).
_KEYS = r"(?:repo|model|agent_type|agent)"
_LATER_BLOCK = re.compile(
    rf"(?<![^\s,;(])\[(?P<body>\s*{_KEYS}\s*=[^\[\]\n]*)\](?=$|[\s,;.:!?)])", re.IGNORECASE
)
_OPEN_BLOCK = re.compile(rf"(?<![^\s,;(])\[\s*{_KEYS}\s*=", re.IGNORECASE)
_BLOCK_ITEM = re.compile(
    r"""\s*(?P<key>[A-Za-z_][\w-]*)\s*=\s*"""
    r"""(?P<value>"[^"]*"|'[^']*'|“[^”]*”|‘[^’]*’|<[^<>]*>|[^\s,"'“‘<][^\s,]*|)\s*(?:,|(?=\s)|$)"""
)
_SENTINEL = "\x00"


class _Unreadable(Exception):
    """The scan of a `key=value, …` list stopped at text it cannot read (`rest`)."""

    def __init__(self, rest: str) -> None:
        super().__init__(rest)
        self.rest = rest


def _scan_items(body: str) -> Iterator[tuple[str, str]]:
    """Each `key=value` item of a list in turn, as typed; _Unreadable where the scan stops."""
    pos = 0
    while pos < len(body) and body[pos:].strip():
        match = _BLOCK_ITEM.match(body, pos)
        if match is None or match.end() == pos:
            raise _Unreadable(body[pos:])
        yield match.group("key"), match.group("value")
        pos = match.end()


def _parse_block(body: str) -> list[tuple[OptionField, str]]:
    found: list[tuple[OptionField, str]] = []
    try:
        for key, raw in _scan_items(body):
            if key.lower() not in OPTION_KEYS:
                raise OptionError(
                    f"Unknown option `{_echo(key)}` in `[{_echo(body.strip())}]`. "
                    f"Valid options: {_SHOWN_KEYS}."
                )
            found.append(parse_option_value(key, raw))
    except _Unreadable as stop:
        shown = stop.rest.strip().split(",")[0].strip()
        raise OptionError(
            f"Can't read `{_echo(shown)}` in `[{_echo(body.strip())}]`: write options as "
            f"`key=value`, separated by commas. Valid options: {_SHOWN_KEYS}."
        ) from None
    return found


def _inline_options(text: str) -> tuple[str, list[tuple[OptionField, str]]]:
    """Find `key=value` for known keys outside code; replace each with a sentinel."""
    found: list[tuple[OptionField, str]] = []

    def replace(match: re.Match[str]) -> str:
        raw = match.group("value")
        tail = ""
        if raw and raw[0] not in _QUOTES and raw[0] != "<":
            stripped = raw.rstrip(_TRAILING_PUNCT)
            # Keep the value whole when it is nothing but punctuation (reported as invalid).
            if stripped:
                tail = raw[len(stripped) :]
                raw = stripped
        found.append(parse_option_value(match.group("key"), raw))
        return _SENTINEL + tail

    def replace_block(match: re.Match[str]) -> str:
        found.extend(_parse_block(match.group("body")))
        return _SENTINEL

    def read(prose: str) -> str:
        prose = _LATER_BLOCK.sub(replace_block, prose)
        unclosed = _OPEN_BLOCK.search(prose)
        if unclosed is not None:
            shown = prose[unclosed.start() :].split("\n")[0]
            raise OptionError(
                f"The `[` in `{_echo(shown)}` is never closed: a group of options ends with "
                "`]`, e.g. `[repo=acme/web, model=gpt-5] add a readme`. Nothing was started."
            )
        return _INLINE_OPTION.sub(replace, prose)

    pieces: list[str] = []
    pos = 0
    for code in _CODE.finditer(text):
        pieces.append(read(text[pos : code.start()]))
        pieces.append(code.group())
        pos = code.end()
    pieces.append(read(text[pos:]))
    return "".join(pieces), found


def _clean_line(line: str) -> str | None:
    """Close the gap an option left; None when the line held nothing but options."""
    if _SENTINEL not in line:
        return line
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    # A `,` or `;` right after an option separated it from the next one.
    line = re.sub(rf"{_SENTINEL}[ \t]*[,;]", _SENTINEL, line)
    body = re.sub(rf"[ \t]*(?:{_SENTINEL}[ \t]*)+", " ", line[len(indent) :]).strip()
    # "fix it in repo=acme/web." leaves "fix it in ." → "fix it in."
    body = re.sub(r"\s+([.,;:!?])(?=\s|$)", r"\1", body)
    return indent + body if body else None


def _tidy(text: str) -> str:
    """Trim the ends and trailing blanks, keep one blank line between paragraphs (code kept)."""
    lines: list[str] = []
    in_fence = False
    for raw in text.split("\n"):
        line = raw.rstrip() if in_fence else _clean_line(raw.rstrip())
        if line is None:
            continue
        if not in_fence and not line.strip() and lines and not lines[-1].strip():
            continue
        lines.append(line)
        if line.count("```") % 2:
            in_fence = not in_fence
    return strip_invisible("\n".join(lines))


def parse_request_text(text: str) -> ParsedRequest:
    """Split a request into its prompt and inline options (last one wins).

    Raises OptionError for an unknown key inside a leading `[...]` or a bad value for a known
    option. The prompt keeps its line breaks; an empty prompt is the caller's to handle.
    """
    text = text.replace(_SENTINEL, "").replace("\r\n", "\n").replace("\r", "\n")
    values: dict[OptionField, str] = {}

    block = _LEADING_BLOCK.match(text)
    if block is not None and _LOOKS_LIKE_OPTIONS.match(block.group("body")):
        for field, value in _parse_block(block.group("body")):
            values[field] = value
        text = block.group("lead") + _SENTINEL + text[block.end() :]

    text, found = _inline_options(text)
    for field, value in found:
        values[field] = value

    return ParsedRequest(prompt=_tidy(text), options=RunOptions.model_validate(values))


# -- subcommands -----------------------------------------------------------------------------

_HELP_WORDS = frozenset({"help", "-h", "--help", "?", "usage"})
#: Reserved: a request that starts with one of these stops a run and never starts one.
STOP_WORDS = frozenset({"stop", "cancel", "abort"})
_STOP_USAGE = (
    "Usage: `/codegen stop &lt;run id&gt;` (or `cancel`, `abort`), or `@Codegen stop` in the "
    "run's thread."
)


def parse_stop(text: str, *, in_thread: bool) -> StopCommand | None:
    """`stop 123`, `cancel #123`, or a bare `stop` in a run's thread → StopCommand; None when
    the text does not start with a stop word. Anything else after one is an error: these
    words are reserved, so `stop 1000` can never become a run's prompt."""
    words = strip_invisible(text).split()
    if not words or words[0].lower().rstrip(".!") not in STOP_WORDS:
        return None
    rest = words[1:]
    if not rest:
        if in_thread:
            return StopCommand()
        raise OptionError(f"Which run? {_STOP_USAGE}")
    if len(rest) == 1 and _RUN_ID.match(rest[0].rstrip(".!")):
        return StopCommand(run_id=parse_run_id(rest[0].rstrip(".!")))
    raise OptionError(
        f"`{_echo(words[0])}` is reserved for stopping runs, so I did not start one. "
        f"{_STOP_USAGE} To ask the agent for something that starts with that word, put another "
        f"word first (`please {_echo(words[0].lower())} …`)."
    )


_LIST_WORDS = frozenset({"runs", "mine", "all"})


def parse_command(text: str) -> Command:
    """Read the text of `/codegen …`.

    nothing → ComposeCommand (the run form); `help` → HelpCommand; `status <run id>`; `list`;
    `config` (show), `config key=value …` (set), `config reset`; anything else is a run request.
    A reserved word followed by ordinary prose (`list the endpoints that …`, `help me fix …`) is
    a run request. Raises OptionError with a message for the person who typed it.
    """
    stripped = strip_invisible(text)
    if not stripped:
        return ComposeCommand()
    words = stripped.split()
    head, rest = words[0].lower(), words[1:]

    if head in _HELP_WORDS and len(rest) <= 1:  # `help`, `help config`
        return HelpCommand()
    if head in ("login", "logout", "whoami") and not rest:
        return AccountCommand(kind=head)
    stop = parse_stop(stripped, in_thread=False)
    if stop is not None:
        return stop
    if head == "list" and (not rest or (len(rest) == 1 and rest[0].lower() in _LIST_WORDS)):
        return ListCommand()
    if head == "status" and len(rest) <= 1:
        if not rest:
            raise OptionError(
                "Which run? Usage: `/codegen status &lt;run id&gt;`, "
                "for example `/codegen status 123`."
            )
        return StatusCommand(run_id=parse_run_id(rest[0]))
    if head == "config":
        command = _parse_config(stripped[len(words[0]) :].strip())
        if command is not None:
            return command

    parsed = parse_request_text(stripped)
    if not parsed.prompt:
        if parsed.options.given():
            return HelpCommand(
                note="Options alone don't start a run: add what the agent should do, e.g. "
                "`/codegen repo=acme/web fix the flaky login test`. To save defaults for this "
                "channel, use `/codegen config repo=… model=… agent=…`."
            )
        return HelpCommand()
    return RunCommand(prompt=parsed.prompt, options=parsed.options)


def _parse_config(rest: str) -> Command | None:
    """`config` arguments → a command; None when it reads as prose (a run request)."""
    lowered = rest.lower()
    if lowered in ("", "show", "get"):
        return ConfigShowCommand()
    if lowered in ("reset", "clear"):
        return ConfigResetCommand()
    body = rest
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    if not _LOOKS_LIKE_OPTIONS.match(body):
        return None  # `config the linter to …` is a request, not a subcommand
    # Every item must be an option: `config` sets defaults and nothing else.
    values: dict[OptionField, str] = {}
    clear: set[OptionField] = set()
    for field, value in _parse_config_items(body):
        if value.lower() in _CLEAR_WORDS:
            clear.add(field)
            values.pop(field, None)
        else:
            _, checked = parse_option_value(_typed_key(field), value)
            values[field] = checked
            clear.discard(field)
    if not values and not clear:
        raise OptionError(
            "Nothing to set. Usage: `/codegen config repo=acme/web model=gpt-5 agent=codegen`."
        )
    return ConfigSetCommand(options=RunOptions.model_validate(values), clear=frozenset(clear))


def _typed_key(field: OptionField) -> str:
    return "agent" if field == "agent_type" else field


def _parse_config_items(body: str) -> list[tuple[OptionField, str]]:
    items: list[tuple[OptionField, str]] = []
    try:
        for key, raw in _scan_items(body):
            field = OPTION_KEYS.get(key.lower())
            if field is None:
                raise OptionError(f"Unknown option `{_echo(key)}`. Valid options: {_SHOWN_KEYS}.")
            value = _unquote(raw.strip())
            if not value:
                raise OptionError(
                    f"`{_echo(key)}=` needs a value, e.g. {_example(field)}; "
                    f"`{_echo(key)}=none` removes the channel default."
                )
            items.append((field, value))
    except _Unreadable as stop:
        shown = stop.rest.split()[0].rstrip(",")
        raise OptionError(
            f"`/codegen config` only takes options, and `{_echo(shown)}` is not one. "
            f"Usage: `/codegen config repo=acme/web model=gpt-5 agent=codegen`, "
            "`/codegen config reset`, or `/codegen config` to show them."
        ) from None
    return items


# -- where options come from -----------------------------------------------------------------


def resolve_options(
    inline: RunOptions, channel: RunOptions | None, org: RunOptions
) -> ResolvedOptions:
    """Inline beats the channel's defaults, which beat the org defaults (settings)."""
    layers: list[tuple[OptionSource, RunOptions | None]] = [
        ("inline", inline),
        ("channel default", channel),
        ("org default", org),
    ]
    resolved: dict[str, ResolvedOption] = {}
    for field in ("repo", "model", "agent_type"):
        resolved[field] = ResolvedOption()
        for source, layer in layers:
            value = getattr(layer, field) if layer is not None else None
            if value is not None:
                resolved[field] = ResolvedOption(value=value, source=source)
                break
    return ResolvedOptions(**resolved)


def channel_options(row: ChannelDefaults | None) -> RunOptions | None:
    """A channel's saved defaults as options (None: the channel has none)."""
    if row is None:
        return None
    return RunOptions.model_validate(
        {"repo": row.repo, "model": row.model, "agent_type": row.agent_type}
    )


def org_options(settings: Settings) -> RunOptions:
    """The organization's defaults (CODEGEN_DEFAULT_*) as options."""
    repo = settings.codegen_default_repo_id
    return RunOptions.model_validate(
        {
            "repo": str(repo) if repo is not None else None,
            "model": settings.codegen_default_model,
            "agent_type": settings.codegen_default_agent_type,
        }
    )


# -- help (mrkdwn: `<` and `>` are written as entities, or Slack reads them as links) --


@dataclass(frozen=True)
class _HelpLine:
    usage: str
    meaning: str


_COMMANDS = (
    _HelpLine("/codegen &lt;what to do&gt;", "start an agent run; I follow it in the thread"),
    _HelpLine("/codegen", "a form: the request, with repository, model and agent pickers"),
    _HelpLine("/codegen status &lt;run id&gt;", "show where a run is (`#123` works too)"),
    _HelpLine("/codegen list", "your recent runs, with their status and links"),
    _HelpLine(
        "/codegen stop &lt;run id&gt;",
        "ask Codegen to stop a run (`cancel`, `abort` too; yours, or any if you are an admin)",
    ),
    _HelpLine("/codegen login", "use your own Codegen API token for your runs"),
    _HelpLine("/codegen logout", "forget it: your runs use the organization's token again"),
    _HelpLine("/codegen whoami", "how your runs are made and who Codegen says made them"),
    _HelpLine("/codegen config", "show this channel's default options"),
    _HelpLine(
        "/codegen config repo=… model=… agent=…",
        "save defaults for this channel (`repo=none` removes one)",
    ),
    _HelpLine("/codegen config reset", "remove all of this channel's defaults"),
    _HelpLine("/codegen help", "this message"),
)

HELP_TEXT = "\n".join(
    [
        "*Codegen in Slack*: ask an agent to do work, then follow it here.",
        "",
        "*Commands*",
        *(f"• `{line.usage}`: {line.meaning}" for line in _COMMANDS),
        "",
        "*Other ways to ask*",
        "• Mention me in a channel: `@Codegen fix the flaky login test`; "
        "attach screenshots and I pass them on.",
        "• Send me a direct message.",
        "• On any message: *Send to Codegen* (the message's ⋮ menu) opens the form prefilled "
        "with it and its images; the run starts in its thread.",
        "• In a run's thread: reply to answer a paused agent; mention me to follow up; "
        "`@Codegen stop` stops the run.",
        "",
        "*Options* (anywhere as `key=value`, alone or grouped as `[key=value, key=value]`; "
        "the last one wins; an unclosed `[` is an error)",
        "• `repo=&lt;id or owner/name&gt;`: the repository, e.g. `repo=acme/web` or `repo=42`",
        "• `model=&lt;name&gt;`: the model, e.g. `model=gpt-5` "
        '(quote names with spaces: `model="a b"`)',
        f"• `agent=&lt;type&gt;`: {_SHOWN_AGENTS}",
        "Options you type beat the channel's defaults (`/codegen config`), "
        "which beat the organization's defaults.",
        "",
        "*Examples*",
        "• `/codegen repo=acme/web fix the flaky login test`",
        "• `/codegen [repo=acme/api, agent=claude_code] add rate limiting to /v1/search`",
        "• `/codegen status 123`",
        "• `/codegen config repo=acme/web agent=codegen`",
    ]
)
