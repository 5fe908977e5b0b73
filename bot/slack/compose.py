"""The forms: the run form, which `/codegen` with no text and the message shortcut "Send to
Codegen" open, what its submission says and the repository choices its search offers; and
the channel defaults form that Home's Change button opens.

Pure: it takes what to show and gives Block Kit, or takes Slack's `view.state.values` and
gives the fields. Where the run goes (the channel, the message and its thread, its author and
images) rides in the view's `private_metadata` as a ComposeOrigin, so the submission needs no
look-up and any replica can take it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.codegen.models import AgentType, RepoResponse
from bot.requests import OptionField, ResolvedOption, ResolvedOptions, SlackFile
from bot.slack.text import plural, shorten

#: The view's callback id (its view_submission) and the message shortcut's callback id.
COMPOSE_VIEW_ID = "codegen_run"
SEND_TO_CODEGEN_ID = "send_to_codegen"
#: Block ids, each the action id of its one element too.
PROMPT_ID = "prompt"
REPO_ID = "repo"
MODEL_ID = "model"
AGENT_ID = "agent"

#: The channel defaults form (Home's Change button); its private_metadata is the channel id.
DEFAULTS_VIEW_ID = "codegen_channel_defaults"
#: The agent picker's choice for "no default of the channel's own".
NO_DEFAULT = "none"

#: Slack's limits: a plain_text_input holds 3,000 characters; private_metadata 3,000; a
#: select's option text 75; an options answer 100 options; a modal 100 blocks.
INPUT_CHARS = 3000
METADATA_CHARS = 3000
OPTION_TEXT_CHARS = 75
MAX_OPTIONS = 100
#: Images shown in the form (all of them go with the request).
SHOWN_IMAGES = 5

_AGENT_LABELS: dict[str, str] = {"codegen": "Codegen", "claude_code": "Claude Code"}


class ComposeOrigin(BaseModel):
    """Where the form's run goes and what it was made from."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    team_id: str
    channel_id: str
    # The message sent to Codegen (the shortcut) and its thread; None for `/codegen`.
    message_ts: str | None = None
    thread_ts: str | None = None
    author_id: str | None = None
    files: tuple[SlackFile, ...] = ()

    def encode(self) -> tuple[str, int]:
        """The private_metadata text, and how many files it had to leave out to fit.

        File URLs go first when space is short: a file without one is looked up by id
        (files.info) when the request is prepared, as Slack Connect files are."""
        text = self.model_dump_json(exclude_none=True, exclude_defaults=True)
        if len(text) <= METADATA_CHARS:
            return text, 0
        bare = tuple(
            SlackFile(id=f.id, name=f.name, mimetype=f.mimetype, size=f.size) for f in self.files
        )
        for kept in range(len(bare), -1, -1):
            text = self.model_copy(update={"files": bare[:kept]}).model_dump_json(
                exclude_none=True, exclude_defaults=True
            )
            if len(text) <= METADATA_CHARS:
                return text, len(bare) - kept
        raise ValueError("the form's origin does not fit in private_metadata")

    @classmethod
    def decode(cls, text: str | None) -> ComposeOrigin | None:
        try:
            return cls.model_validate_json(text or "")
        except ValidationError:
            return None


class ComposedFields(BaseModel):
    """What the person left in the form (None: left empty)."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    repo: str | None = None
    model: str | None = None
    agent_type: AgentType | None = None


# -- the form --------------------------------------------------------------------------------


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _default_hint(option: ResolvedOption, label: str | None = None) -> str:
    if option.value is None or option.source is None:
        return "Empty: Codegen's own default for the organization."
    return f"Empty: {option.source}, {shorten(label or option.value, 100)}."


def _agent_option(value: str) -> dict[str, Any]:
    return {"text": _plain(_AGENT_LABELS.get(value, value)), "value": value}


def is_image(file: SlackFile) -> bool:
    return (file.mimetype or "").startswith("image/")


def render_compose_modal(
    *,
    origin: ComposeOrigin,
    metadata: str,
    prompt: str,
    defaults: ResolvedOptions,
    repo_label: str | None = None,
    files_left_out: int = 0,
    max_prompt_chars: int = INPUT_CHARS,
) -> dict[str, Any]:
    """The modal: what to do (prefilled with the message's text), the images that go with it,
    and repository, model and agent pickers whose hints say what empty means.

    `metadata` is `origin.encode()`'s text; `repo_label` names the default repository when it
    is an id."""
    limit = min(max_prompt_chars, INPUT_CHARS)
    blocks: list[dict[str, Any]] = []
    if origin.message_ts is not None:
        author = f"<@{origin.author_id}>'s message" if origin.author_id else "the message"
        blocks.append(_context(f"From {author}. The run starts in its thread."))
    else:
        blocks.append(_context(f"The run starts in a new thread in <#{origin.channel_id}>."))
    prompt_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": PROMPT_ID,
        "multiline": True,
        "max_length": limit,
        "placeholder": _plain("What should Codegen build or fix?"),
    }
    if prompt:
        prompt_input["initial_value"] = prompt[:limit]
    blocks.append(
        {
            "type": "input",
            "block_id": PROMPT_ID,
            "label": _plain("Request"),
            "element": prompt_input,
            "hint": _plain("Options such as repo=owner/name may be typed here too."),
        }
    )
    if len(prompt) > limit:
        blocks.append(
            _context(f"The message is longer than {limit:,} characters; this holds its start.")
        )
    images = [f for f in origin.files if is_image(f)]
    if images or files_left_out:
        names = ", ".join(shorten(f.name or f.id, 60) for f in images[:SHOWN_IMAGES])
        count = plural(len(images), "image")
        line = f"With the request: {count} from the message ({names})." if images else ""
        if files_left_out:
            line += f" ({plural(files_left_out, 'more file')} could not be carried by the form.)"
        blocks.append(_context(line.strip()))
        for file in images[:SHOWN_IMAGES]:
            blocks.append(
                {
                    "type": "image",
                    "slack_file": {"id": file.id},
                    "alt_text": shorten(file.name or "image", 100),
                }
            )
    blocks.append(
        {
            "type": "input",
            "block_id": REPO_ID,
            "optional": True,
            "label": _plain("Repository"),
            "element": {
                "type": "external_select",
                "action_id": REPO_ID,
                "min_query_length": 0,
                "placeholder": _plain("Search the organization's repositories"),
            },
            "hint": _plain(_default_hint(defaults.repo, repo_label)),
        }
    )
    blocks.append(
        {
            "type": "input",
            "block_id": MODEL_ID,
            "optional": True,
            "label": _plain("Model"),
            "element": {
                "type": "plain_text_input",
                "action_id": MODEL_ID,
                "max_length": 100,
                "placeholder": _plain("a model name, e.g. gpt-5"),
            },
            "hint": _plain(_default_hint(defaults.model)),
        }
    )
    blocks.append(
        {
            "type": "input",
            "block_id": AGENT_ID,
            "optional": True,
            "label": _plain("Agent"),
            "element": {
                "type": "static_select",
                "action_id": AGENT_ID,
                "placeholder": _plain("Choose an agent"),
                "options": [_agent_option(v) for v in get_args(AgentType)],
            },
            "hint": _plain(_default_hint(defaults.agent_type)),
        }
    )
    return {
        "type": "modal",
        "callback_id": COMPOSE_VIEW_ID,
        "title": _plain("Send to Codegen"),
        "submit": _plain("Start run"),
        "close": _plain("Cancel"),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def render_defaults_modal(
    *, channel_id: str, current: dict[str, str | None], org: ResolvedOptions
) -> dict[str, Any]:
    """The form that changes a channel's defaults: each field holds the channel's own value
    (`current`, by RunOptions field); empty means the organization's default (`org`)."""

    def text_input(
        block_id: str, label: str, placeholder: str, org_option: ResolvedOption
    ) -> dict[str, Any]:
        element: dict[str, Any] = {
            "type": "plain_text_input",
            "action_id": block_id,
            "max_length": 200,
            "placeholder": _plain(placeholder),
        }
        value = current.get(block_id)  # the block ids are the fields' names
        if value:
            element["initial_value"] = value
        return {
            "type": "input",
            "block_id": block_id,
            "optional": True,
            "label": _plain(label),
            "element": element,
            "hint": _plain(_default_hint(org_option)),
        }

    agent_options = [_agent_option(v) for v in get_args(AgentType)]
    agent_options.append({"text": _plain("The organization's default"), "value": NO_DEFAULT})
    agent = current.get("agent_type")
    agent_element: dict[str, Any] = {
        "type": "static_select",
        "action_id": AGENT_ID,
        "options": agent_options,
        "initial_option": next(
            (o for o in agent_options if o["value"] == (agent or NO_DEFAULT)), agent_options[-1]
        ),
    }
    return {
        "type": "modal",
        "callback_id": DEFAULTS_VIEW_ID,
        "title": _plain("Channel defaults"),
        "submit": _plain("Save"),
        "close": _plain("Cancel"),
        "private_metadata": channel_id,
        "blocks": [
            _context(
                f"Runs started in <#{channel_id}> use these unless the request names its own."
            ),
            text_input(REPO_ID, "Repository", "owner/name or id, e.g. acme/web", org.repo),
            text_input(MODEL_ID, "Model", "a model name, e.g. gpt-5", org.model),
            {
                "type": "input",
                "block_id": AGENT_ID,
                "label": _plain("Agent"),
                "element": agent_element,
                "hint": _plain(_default_hint(org.agent_type)),
            },
        ],
    }


def read_defaults_submission(values: dict[str, Any]) -> dict[OptionField, str | None]:
    """The defaults form's fields as typed, by RunOptions field (None: left empty, or the
    organization's default chosen)."""
    agent = _selected(_element(values, AGENT_ID))
    return {
        "repo": _text(_element(values, REPO_ID)),
        "model": _text(_element(values, MODEL_ID)),
        "agent_type": None if agent in (None, NO_DEFAULT) else agent,
    }


def render_notice_modal(text: str) -> dict[str, Any]:
    """A form that only says why there is no form (the shortcut has no other way to answer
    in a channel the bot may not be in)."""
    return {
        "type": "modal",
        "title": _plain("Send to Codegen"),
        "close": _plain("Close"),
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


# -- the submission --------------------------------------------------------------------------


def _element(values: dict[str, Any], block_id: str) -> dict[str, Any]:
    block = values.get(block_id)
    element = block.get(block_id) if isinstance(block, dict) else None
    return element if isinstance(element, dict) else {}


def _text(element: dict[str, Any]) -> str | None:
    value = element.get("value")
    return value.strip() or None if isinstance(value, str) else None


def _selected(element: dict[str, Any]) -> str | None:
    option = element.get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    return value if isinstance(value, str) and value else None


def read_submission(values: dict[str, Any]) -> ComposedFields:
    """The fields of a submitted form (`view.state.values`); what is not there is empty."""
    agent = _selected(_element(values, AGENT_ID))
    return ComposedFields(
        prompt=_text(_element(values, PROMPT_ID)) or "",
        repo=_selected(_element(values, REPO_ID)),
        model=_text(_element(values, MODEL_ID)),
        agent_type=agent if agent in get_args(AgentType) else None,
    )


# -- the repository search -------------------------------------------------------------------


def repo_options(repos: Sequence[RepoResponse], query: str) -> list[dict[str, Any]]:
    """The repositories whose name holds `query` (any case), names that start with it first,
    then by name; archived ones left out. Values are repository ids."""
    wanted = query.strip().casefold()

    def rank(repo: RepoResponse) -> tuple[int, str]:
        name = repo.full_name.casefold()
        starts = name.startswith(wanted) or repo.name.casefold().startswith(wanted)
        return (0 if starts else 1, name)

    found = [
        r for r in repos if not r.archived and (not wanted or wanted in r.full_name.casefold())
    ]
    return [
        {"text": _plain(shorten(r.full_name, OPTION_TEXT_CHARS)), "value": str(r.id)}
        for r in sorted(found, key=rank)[:MAX_OPTIONS]
    ]
