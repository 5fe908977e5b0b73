"""Reading what a person typed: inline options, `/codegen` subcommands, option precedence."""

from __future__ import annotations

import pytest

from bot.errors import OptionError
from bot.intake.options import (
    HELP_TEXT,
    ComposeCommand,
    ConfigResetCommand,
    ConfigSetCommand,
    ConfigShowCommand,
    HelpCommand,
    ListCommand,
    RunCommand,
    StatusCommand,
    parse_command,
    parse_request_text,
    parse_run_id,
    resolve_options,
)
from bot.requests import ResolvedOption, RunOptions

# -- parse_request_text: where options may stand -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "prompt", "options"),
    [
        # no options at all
        ("fix the login bug", "fix the login bug", {}),
        # anywhere: end, start, middle
        ("fix the login bug repo=acme/web", "fix the login bug", {"repo": "acme/web"}),
        ("repo=acme/web fix the login bug", "fix the login bug", {"repo": "acme/web"}),
        ("fix repo=acme/web the login bug", "fix the login bug", {"repo": "acme/web"}),
        # every key
        (
            "do it repo=42 model=gpt-5 agent=claude_code",
            "do it",
            {"repo": "42", "model": "gpt-5", "agent_type": "claude_code"},
        ),
        # leading brackets, comma or space separated
        (
            "[repo=acme/web, model=gpt-5] fix it",
            "fix it",
            {"repo": "acme/web", "model": "gpt-5"},
        ),
        (
            "[repo=acme/web agent=codegen] fix it",
            "fix it",
            {"repo": "acme/web", "agent_type": "codegen"},
        ),
        ("  [ repo = acme/web ]   fix it", "fix it", {"repo": "acme/web"}),
        # brackets plus anywhere; the last one wins
        ("[repo=1, model=a] do x repo=2", "do x", {"repo": "2", "model": "a"}),
        ("do x model=a model=b", "do x", {"model": "b"}),
        ("[model=a, model=b] do x", "do x", {"model": "b"}),
        # unknown keys outside brackets are prompt text
        ("set timeout=30 in the config", "set timeout=30 in the config", {}),
        ("set timeout=30 repo=acme/web", "set timeout=30", {"repo": "acme/web"}),
        # a bracket that is not options stays in the prompt
        ("[WIP] fix the thing", "[WIP] fix the thing", {}),
        # a group of options stands anywhere (its first key known), the last value wins
        ("fix it [repo=acme/web]", "fix it", {"repo": "acme/web"}),
        (
            "add a readme [model=gpt-5, agent=codegen].",
            "add a readme.",
            {"model": "gpt-5", "agent_type": "codegen"},
        ),
        ("[repo=1] fix [model=a] then model=b", "fix then", {"repo": "1", "model": "b"}),
        # a bracket in prose that is not a group of options stays
        ("tick [x] when done [timeout=3]", "tick [x] when done [timeout=3]", {}),
        ("see `[repo=foo` in code", "see `[repo=foo` in code", {}),
        # keys are case-insensitive, `agent_type` is an alias, agent values are forgiving
        (
            "Repo=acme/web AGENT=Claude-Code go",
            "go",
            {"repo": "acme/web", "agent_type": "claude_code"},
        ),
        ("agent_type=codegen go", "go", {"agent_type": "codegen"}),
        # options separated by commas, and a sentence's final full stop
        (
            "fix it repo=acme/web, model=x, agent=codegen please",
            "fix it please",
            {"repo": "acme/web", "model": "x", "agent_type": "codegen"},
        ),
        ("repo=acme/web,model=x go", "go", {"repo": "acme/web", "model": "x"}),
        ("deploy it to repo=acme/web.", "deploy it to.", {"repo": "acme/web"}),
        # quoted values, straight and curly
        ('model="gpt 5" hi', "hi", {"model": "gpt 5"}),
        ("model=“gpt 5” hi", "hi", {"model": "gpt 5"}),
        ("[model='gpt 5', repo=7] hi", "hi", {"model": "gpt 5", "repo": "7"}),
        # Slack mention tokens are not options; a leading block may follow them
        ("<@U123> [repo=acme/web] hello", "<@U123> hello", {"repo": "acme/web"}),
        ("ask <@U123> about it model=x", "ask <@U123> about it", {"model": "x"}),
        # Slack auto-links and GitHub URLs for repo
        ("repo=<https://github.com/acme/web|github.com/acme/web> fix", "fix", {"repo": "acme/web"}),
        ("repo=https://github.com/acme/web/pull/3 fix", "fix", {"repo": "acme/web"}),
        ("repo=acme/web.git fix", "fix", {"repo": "acme/web"}),
        ("repo=#42 fix", "fix", {"repo": "42"}),
        # part of a word or URL is not an option
        ("see https://x.com/?repo=foo now", "see https://x.com/?repo=foo now", {}),
        ("myrepo=foo now", "myrepo=foo now", {}),
        # code is never read as options
        ("run `make repo=foo` now", "run `make repo=foo` now", {}),
        ("```\nexport model=bar\n```\nthen go", "```\nexport model=bar\n```\nthen go", {}),
    ],
)
def test_parse_request_text(text: str, prompt: str, options: dict[str, str]) -> None:
    parsed = parse_request_text(text)
    assert parsed.prompt == prompt
    assert parsed.options.given() == options


@pytest.mark.parametrize(
    ("text", "prompt"),
    [
        # newlines inside the prompt are kept; an options-only line goes away
        ("line one\nrepo=acme/web\nline two", "line one\nline two"),
        ("line one\n\nrepo=acme/web\n\nline two", "line one\n\nline two"),
        # ends trimmed, trailing spaces trimmed, blank runs collapsed to one blank line
        ("  fix it  \n\n\n\nthen test   ", "fix it\n\nthen test"),
        # indentation survives, also where an option stood at the start of the line
        ("steps:\n    repo=acme/web run tests", "steps:\n    run tests"),
        ("a\n  indented model=x", "a\n  indented"),
        # code fences keep their blank lines
        ("```\na\n\n\n\nb\n```", "```\na\n\n\n\nb\n```"),
        # CRLF from some clients
        ("one\r\ntwo", "one\ntwo"),
    ],
)
def test_whitespace(text: str, prompt: str) -> None:
    assert parse_request_text(text).prompt == prompt


def test_options_only_gives_empty_prompt() -> None:
    parsed = parse_request_text("[repo=acme/web] model=x")
    assert parsed.prompt == ""
    assert parsed.options == RunOptions(repo="acme/web", model="x")


@pytest.mark.parametrize(
    ("text", "must_mention"),
    [
        # unknown key inside a leading block: names the valid keys
        ("[foo=1] fix it", ["`foo`", "`repo`", "`model`", "`agent`"]),
        ("[repo=acme/web, timeout=3] fix it", ["`timeout`", "`repo`", "`model`", "`agent`"]),
        # garbage inside an options block
        ("[repo=acme/web junk] fix it", ["`junk`", "key=value"]),
        # bad agent value: names the valid values
        ("agent=foo fix it", ["`agent=foo`", "`codegen`", "`claude_code`"]),
        ("[agent=gpt] fix it", ["`codegen`", "`claude_code`"]),
        # repo shape
        ("repo=a/b/c fix", ["`repo=a/b/c`", "owner/name"]),
        ("repo=acme fix", ["`repo=acme`", "owner/name"]),
        ("repo=-acme/web fix", ["`repo=-acme/web`"]),
        ("repo=acme/.. fix", ["owner/name"]),
        ("repo=0 fix", ["positive"]),
        # empty values
        ("model= fix", ["`model=`", "needs a value"]),
        ('model="" fix', ["`model=`", "needs a value"]),
        ("[repo=] fix", ["`repo=`", "needs a value"]),
        # a mention is not a model
        ("model=<@U123> fix", ["is not a model"]),
        # a group of options that is never closed
        (
            "[repo=acme/web, model=y agent=claude_code add a readme",
            ["The `[` in `[repo=acme/web, model=y", "is never closed", "`]`"],
        ),
        ("add a readme [model=gpt-5", ["is never closed"]),
        # an unknown key in a later group of options
        ("fix it [repo=acme/web, timeout=3]", ["`timeout`", "`repo`"]),
    ],
)
def test_option_errors(text: str, must_mention: list[str]) -> None:
    with pytest.raises(OptionError) as caught:
        parse_request_text(text)
    for part in must_mention:
        assert part in caught.value.message
    assert str(caught.value) == caught.value.message


@pytest.mark.parametrize(
    ("value", "repo"),
    [
        ("42", "42"),
        ("007", "7"),
        ("acme/web", "acme/web"),
        ("acme-corp/web.app_v2", "acme-corp/web.app_v2"),
        ("https://github.com/acme/web", "acme/web"),
        ("github.com/acme/web", "acme/web"),
    ],
)
def test_repo_values(value: str, repo: str) -> None:
    assert parse_request_text(f"go repo={value}").options.repo == repo


# -- parse_command -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ComposeCommand()),
        ("   ", ComposeCommand()),
        ("help", HelpCommand()),
        ("HELP", HelpCommand()),
        ("help config", HelpCommand()),
        ("status 123", StatusCommand(run_id=123)),
        ("status #123", StatusCommand(run_id=123)),
        ("  Status   7 ", StatusCommand(run_id=7)),
        ("list", ListCommand()),
        ("list runs", ListCommand()),
        ("config", ConfigShowCommand()),
        ("config show", ConfigShowCommand()),
        ("config reset", ConfigResetCommand()),
        (
            "config repo=acme/web model=gpt-5 agent=codegen",
            ConfigSetCommand(
                options=RunOptions(repo="acme/web", model="gpt-5", agent_type="codegen")
            ),
        ),
        ("config [repo=42]", ConfigSetCommand(options=RunOptions(repo="42"))),
        (
            "config repo=acme/web model=none",
            ConfigSetCommand(options=RunOptions(repo="acme/web"), clear=frozenset({"model"})),
        ),
        # ordinary requests
        (
            "fix the login bug repo=acme/web",
            RunCommand(prompt="fix the login bug", options=RunOptions(repo="acme/web")),
        ),
        (
            "[agent=claude_code] write docs",
            RunCommand(prompt="write docs", options=RunOptions(agent_type="claude_code")),
        ),
        # reserved words followed by prose are requests
        (
            "help me fix the login bug",
            RunCommand(prompt="help me fix the login bug", options=RunOptions()),
        ),
        (
            "list the endpoints without tests",
            RunCommand(prompt="list the endpoints without tests", options=RunOptions()),
        ),
        (
            "status page is broken, fix it",
            RunCommand(prompt="status page is broken, fix it", options=RunOptions()),
        ),
        (
            "config the linter to allow long lines",
            RunCommand(prompt="config the linter to allow long lines", options=RunOptions()),
        ),
    ],
)
def test_parse_command(text: str, expected: object) -> None:
    assert parse_command(text) == expected


def test_options_without_prompt_show_help_with_a_note() -> None:
    command = parse_command("repo=acme/web")
    assert isinstance(command, HelpCommand)
    assert command.note is not None
    assert "/codegen config" in command.note


@pytest.mark.parametrize(
    ("text", "must_mention"),
    [
        ("status", ["/codegen status &lt;run id&gt;"]),
        ("status abc", ["`abc`", "not a run id"]),
        ("status #x1", ["not a run id"]),
        ("status 0", ["not a run id"]),
        ("config foo=1", ["`foo`", "`repo`", "`model`", "`agent`"]),
        ("config agent=gpt", ["`codegen`", "`claude_code`"]),
        ("config repo=acme/web junk", ["`junk`", "/codegen config"]),
        ("config model=", ["needs a value", "model=none"]),
        ("[foo=bar] hi", ["`foo`"]),
    ],
)
def test_command_errors(text: str, must_mention: list[str]) -> None:
    with pytest.raises(OptionError) as caught:
        parse_command(text)
    for part in must_mention:
        assert part in caught.value.message


@pytest.mark.parametrize(("text", "run_id"), [("1", 1), ("#99", 99), (" 12 ", 12)])
def test_parse_run_id(text: str, run_id: int) -> None:
    assert parse_run_id(text) == run_id


# -- resolve_options -----------------------------------------------------------------------------


def test_inline_beats_channel_beats_org() -> None:
    resolved = resolve_options(
        RunOptions(repo="acme/web"),
        RunOptions(repo="acme/api", model="gpt-5"),
        RunOptions(repo="1", model="o3", agent_type="codegen"),
    )
    assert resolved.repo == ResolvedOption(value="acme/web", source="inline")
    assert resolved.model == ResolvedOption(value="gpt-5", source="channel default")
    assert resolved.agent_type == ResolvedOption(value="codegen", source="org default")
    assert resolved.effective() == RunOptions(repo="acme/web", model="gpt-5", agent_type="codegen")


def test_nothing_set_leaves_it_to_the_api() -> None:
    resolved = resolve_options(RunOptions(), None, RunOptions())
    for _, option in resolved.items():
        assert option == ResolvedOption(value=None, source=None)
    assert resolved.effective() == RunOptions()


def test_no_channel_defaults_falls_through_to_org() -> None:
    resolved = resolve_options(RunOptions(model="x"), None, RunOptions(repo="9", model="y"))
    assert resolved.repo == ResolvedOption(value="9", source="org default")
    assert resolved.model == ResolvedOption(value="x", source="inline")


# -- help ----------------------------------------------------------------------------------------


def test_help_text_names_every_command_option_and_example() -> None:
    for part in [
        "/codegen status &lt;run id&gt;",
        "/codegen list",
        "/codegen config",
        "/codegen config reset",
        "/codegen help",
        "repo=",
        "model=",
        "agent=",
        "`codegen`",
        "`claude_code`",
        "[key=value, key=value]",
        "last one wins",
        "/codegen repo=acme/web",
    ]:
        assert part in HELP_TEXT
    assert len(HELP_TEXT) < 3000  # fits one section block


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u2060", " \ufeff \u200e\u3164 ", "\u2800"])
def test_invisible_characters_alone_are_an_empty_prompt(text: str) -> None:
    assert parse_request_text(text).prompt == ""
    assert parse_request_text("\u200bfix it\u2060").prompt == "fix it"
    # Inside the text they stay: a zero-width joiner holds an emoji together.
    assert parse_request_text("add 👩\u200d💻 to the docs").prompt == "add 👩\u200d💻 to the docs"
