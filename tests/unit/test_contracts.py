"""docs/contracts.md against the code: the metadata keys, the option grammar, the status
classes and their cards, the Slack events, actions and scopes, the Codegen endpoints. Each check
fails when the code and the page drift apart."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

import bot.intake.options as options_module
from bot.codegen.models import IN_PROGRESS_STATUSES, KNOWN_FAILURE_STATUSES, classify_status
from bot.requests import RunRequest, SlackContext, Trigger
from bot.slack.cards import phase_reaction, status_reaction
from bot.slack.compose import (
    AGENT_ID,
    COMPOSE_VIEW_ID,
    DEFAULTS_VIEW_ID,
    MODEL_ID,
    PROMPT_ID,
    REPO_ID,
)
from bot.slack.home import EDIT_DEFAULTS_ACTION_ID
from bot.slack.manifest import BOT_SCOPES, load_manifest
from bot.slack.render import (
    LOGIN_VIEW_ID,
    PR_ACTION_STATES,
    STOP_RUN_ACTION_ID,
    VIEW_RUN_ACTION_ID,
    CardView,
    Phase,
    render_card,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    return DOC.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not set(line) <= set("|- "):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]  # without the header


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_readme_links_the_contracts() -> None:
    assert "docs/contracts.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_metadata_key_sent_is_documented_and_nothing_else() -> None:
    request = RunRequest(
        prompt="x",
        slack=SlackContext(team_id="T", channel_id="C", user_id="U", trigger=Trigger.APP_MENTION),
    )
    sent = request.codegen_metadata(request_id="r")
    keys = {k for k in sent if k != "slack"} | {f"slack.{k}" for k in sent["slack"]}
    keys.add("parent_run_id")  # follow-ups (bot.intake.prepare)
    documented = {
        code_spans(row[0])[0] for row in table_rows(section("Metadata sent with every run"))
    }
    assert documented == keys
    # A button or Slack's session stop starts no run.
    triggers = {t.value for t in Trigger if t not in (Trigger.BUTTON, Trigger.AGENT_SESSION)}
    trigger_row = next(
        r for r in table_rows(section("Metadata sent with every run")) if "trigger" in r[0]
    )
    assert set(code_spans(trigger_row[1])) == triggers


def test_the_option_grammar_is_the_one_the_parser_states() -> None:
    def words(text: str) -> str:
        return " ".join(text.replace(">", " ").split())

    documented = words(
        "\n".join(
            line for line in section("The option grammar").splitlines() if line.startswith(">")
        )
    )
    docstring = options_module.__doc__ or ""
    stated = docstring.split("one rule (docs/contracts.md repeats it):", 1)[1].split("\n\n")[1]
    assert documented == words(stated)


def _phase(status: str) -> Phase:
    kind = classify_status(status).value
    if status in ("STOPPED", "CANCELLED"):
        return "stopped"
    return {
        "in_progress": "running",
        "waiting_for_input": "paused",
        "success": "complete",
    }.get(kind, "failed")  # type: ignore[return-value]


STATUS_ROWS = table_rows(section("Statuses and what they do to the card"))


def test_every_known_status_has_a_row() -> None:
    documented = {s for row in STATUS_ROWS for s in code_spans(row[0])}
    known = IN_PROGRESS_STATUSES | KNOWN_FAILURE_STATUSES | {"PAUSED", "COMPLETE"}
    assert known <= documented, known - documented


@pytest.mark.parametrize("row", STATUS_ROWS, ids=lambda row: row[0])
def test_each_status_row_is_what_the_card_and_reactions_do(row: list[str]) -> None:
    statuses = code_spans(row[0]) or ["SOMETHING_NEW"]
    headline, reaction = row[2], row[3]
    emoji = headline.split(" ", 1)[0]
    label = re.search(r"\*([^*]+)\*", headline)
    assert label is not None
    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    for status in statuses:
        view = CardView(
            phase=_phase(status),
            status=status,
            prompt="p",
            requester_id="U1",
            run_id=1,
            created_at=now,
        )
        title = render_card(view, now=now).blocks[0]["text"]["text"]
        assert title.startswith(f"{emoji} *"), (status, title)
        labels = [label.group(1), *re.findall(r"/ \*([^*]+)\*", headline)]
        assert any(f"*{name}*" in title for name in labels), (status, title)
        assert code_spans(reaction)[-1] in (status_reaction(status), phase_reaction(_phase(status)))


def test_every_slack_event_action_and_scope_is_documented() -> None:
    slack = section("Slack: events, interactions, commands and scopes")
    manifest = load_manifest()
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    tables = slack.split("\n\n")
    spans = {
        span
        for line in slack.splitlines()
        if line.startswith("|")
        for span in code_spans(line.split("|")[1])
    }
    assert events <= spans, events - spans
    assert {VIEW_RUN_ACTION_ID, STOP_RUN_ACTION_ID} <= spans
    assert set(PR_ACTION_STATES) <= spans, set(PR_ACTION_STATES) - spans
    for action_id, state in PR_ACTION_STATES.items():  # each row names the state it asks for
        [row] = [line for line in slack.splitlines() if line.startswith(f"| `{action_id}`")]
        assert f"`{state}`" in row, action_id
    assert f"`{LOGIN_VIEW_ID}`" in slack  # the login modal's callback id
    # The shortcuts of the manifest have rows, and so do the run form and its fields.
    assert {s["callback_id"] for s in manifest["features"]["shortcuts"]} <= spans
    for name in (
        COMPOSE_VIEW_ID,
        PROMPT_ID,
        REPO_ID,
        MODEL_ID,
        AGENT_ID,
        DEFAULTS_VIEW_ID,
        EDIT_DEFAULTS_ACTION_ID,
    ):
        assert f"`{name}`" in slack, name
    assert set(BOT_SCOPES) <= spans, set(BOT_SCOPES) - spans
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == set(BOT_SCOPES)
    assert tables  # the section is not empty


def test_every_codegen_endpoint_the_client_calls_is_documented() -> None:
    client = (ROOT / "bot" / "codegen" / "client.py").read_text(encoding="utf-8")
    paths = {
        re.sub(r"\{self\._org_id\}", "{org_id}", p) for p in re.findall(r'f?"(/v1/[^"]+)"', client)
    }
    documented = section("Codegen: the endpoints the bot calls")
    for path in paths:
        shown = path.replace("{run_id}", "{id}")
        assert shown in documented, path
