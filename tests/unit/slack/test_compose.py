"""The run form's pure parts: what rides in private_metadata, the repository search, and what a
submission says."""

from __future__ import annotations

from bot.codegen.models import RepoResponse
from bot.requests import ResolvedOption, ResolvedOptions, SlackFile
from bot.slack.compose import (
    METADATA_CHARS,
    ComposeOrigin,
    read_submission,
    render_compose_modal,
    repo_options,
)


def _file(n: int) -> SlackFile:
    return SlackFile(
        id=f"F{n:08d}",
        name=f"screenshot-{n}.png",
        mimetype="image/png",
        size=1000 + n,
        url_private=f"https://files.slack.com/files-pri/T0-F{n:08d}/screenshot-{n}.png",
        url_private_download=f"https://files.slack.com/files-pri/T0-F{n:08d}/download/s-{n}.png",
    )


def _repo(repo_id: int, full_name: str, *, archived: bool = False) -> RepoResponse:
    return RepoResponse(
        id=repo_id,
        name=full_name.split("/")[1],
        full_name=full_name,
        description=None,
        github_id=str(repo_id),
        organization_id=1,
        visibility="PRIVATE",
        archived=archived,
        setup_status="COMPLETED",
        language=None,
    )


def test_the_origin_round_trips_and_sheds_urls_then_files_to_fit() -> None:
    few = ComposeOrigin(
        team_id="T1", channel_id="C1", message_ts="1.2", author_id="U2", files=(_file(1),)
    )
    text, left_out = few.encode()
    assert left_out == 0 and ComposeOrigin.decode(text) == few

    many = few.model_copy(update={"files": tuple(_file(n) for n in range(12))})
    text, left_out = many.encode()
    assert len(text) <= METADATA_CHARS and left_out == 0
    decoded = ComposeOrigin.decode(text)
    assert decoded is not None and [f.id for f in decoded.files] == [f.id for f in many.files]
    assert all(f.url_private is None for f in decoded.files)  # looked up by id when prepared

    flood = few.model_copy(update={"files": tuple(_file(n) for n in range(200))})
    text, left_out = flood.encode()
    decoded = ComposeOrigin.decode(text)
    assert len(text) <= METADATA_CHARS and decoded is not None
    assert left_out == 200 - len(decoded.files) > 0
    assert [f.id for f in decoded.files] == [f.id for f in flood.files[: len(decoded.files)]]

    assert ComposeOrigin.decode("{not json") is None and ComposeOrigin.decode(None) is None


def test_the_repository_search_ranks_names_that_start_with_the_query_first() -> None:
    repos = [
        _repo(1, "acme/frontend-web"),
        _repo(2, "acme/web"),
        _repo(3, "web-tools/cli"),
        _repo(4, "acme/webhooks", archived=True),
        _repo(5, "acme/api"),
    ]
    found = [o["text"]["text"] for o in repo_options(repos, " WEB ")]
    assert found == ["acme/web", "web-tools/cli", "acme/frontend-web"]
    assert [o["value"] for o in repo_options(repos, "api")] == ["5"]
    assert len(repo_options([_repo(n, f"acme/r{n:03d}") for n in range(300)], "")) == 100
    long = repo_options([_repo(9, "acme/" + "x" * 200)], "")
    assert len(long[0]["text"]["text"]) == 75


def test_a_submission_reads_what_was_left_and_ignores_what_is_not_there() -> None:
    values = {
        "prompt": {"prompt": {"type": "plain_text_input", "value": "  fix it  "}},
        "repo": {"repo": {"type": "external_select", "selected_option": {"value": "101"}}},
        "model": {"model": {"type": "plain_text_input", "value": "   "}},
        "agent": {"agent": {"type": "static_select", "selected_option": {"value": "robot"}}},
    }
    fields = read_submission(values)
    assert (fields.prompt, fields.repo, fields.model, fields.agent_type) == (
        "fix it",
        "101",
        None,
        None,
    )
    assert read_submission({}).prompt == "" and read_submission({"prompt": "x"}).repo is None


def test_the_form_says_what_empty_fields_mean_and_fits_a_long_message() -> None:
    origin = ComposeOrigin(team_id="T1", channel_id="C1", message_ts="1.2", author_id="U2")
    defaults = ResolvedOptions(
        repo=ResolvedOption(value="101", source="channel default"),
        model=ResolvedOption(value="gpt-5", source="org default"),
    )
    view = render_compose_modal(
        origin=origin,
        metadata=origin.encode()[0],
        prompt="y" * 5000,
        defaults=defaults,
        repo_label="acme/web",
    )
    hints = {b["block_id"]: b["hint"]["text"] for b in view["blocks"] if b["type"] == "input"}
    assert hints["repo"] == "Empty: channel default, acme/web."
    assert hints["model"] == "Empty: org default, gpt-5."
    assert hints["agent"] == "Empty: Codegen's own default for the organization."
    [prompt] = [b for b in view["blocks"] if b.get("block_id") == "prompt"]
    assert len(prompt["element"]["initial_value"]) == 3000
    assert "longer than 3,000 characters" in str(view["blocks"])
