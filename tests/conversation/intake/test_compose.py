"""The run form: "Send to Codegen" on a message, and `/codegen` with no text. Both open one
modal (request, repository search, model, agent) whose submission is a request like any other.
"""

from __future__ import annotations

import base64
import json

from tests.conversation.intake.test_threads import png
from tests.harness import Conversation, ack_text, all_text, card_text, roots


def _inputs(view: dict[str, object]) -> dict[str, dict[str, object]]:
    blocks = view["blocks"]
    assert isinstance(blocks, list)
    return {b["block_id"]: b["element"] for b in blocks if b["type"] == "input"}


async def test_the_shortcut_sends_a_message_and_its_image_into_a_run_in_its_thread(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        shot = chat.slack.add_file("checkout.png", png(21), "image/png")
        asked = chat.slack.add_message(
            "C1", "the checkout button is cut off on mobile &amp; tablets", "U2", files=[shot]
        )
        response = await chat.shortcut(asked, user="U1")
        assert response.status_code == 200

        # The modal: prefilled with the message (as typed, entities undone) and its image,
        # with repository, model and agent pickers. Nothing is queued until it is sent.
        view = chat.opened_view()
        assert view["callback_id"] == "codegen_run"
        fields = _inputs(view)
        assert list(fields) == ["prompt", "repo", "model", "agent"]
        assert fields["prompt"]["initial_value"] == (
            "the checkout button is cut off on mobile & tablets"
        )
        assert fields["repo"]["type"] == "external_select"
        assert [o["value"] for o in fields["agent"]["options"]] == ["codegen", "claude_code"]
        images = [b for b in view["blocks"] if b["type"] == "image"]
        assert [b["slack_file"] for b in images] == [{"id": shot["id"]}]
        assert "<@U2>'s message" in json.dumps(view["blocks"])
        assert chat.emulator.created_bodies() == []
        assert await chat.queued_requests() == []

        # The repository search lists the organization's repositories by name.
        options = await chat.suggest("we")
        assert [o["text"]["text"] for o in options] == ["acme/web"]
        assert [o["text"]["text"] for o in await chat.suggest("")] == [
            "acme/api",
            "acme/docs",
            "acme/web",
        ]

        answer = await chat.submit_form(
            user="U1", repo=options[0], agent="claude_code", model="gpt-5"
        )
        assert answer == {}  # the modal closes

        [body] = chat.emulator.created_bodies()
        assert body["prompt"].startswith("the checkout button is cut off on mobile & tablets")
        assert body["repo_id"] == 101
        assert body["agent_type"] == "claude_code" and body["model"] == "gpt-5"
        [uri] = body["images"]
        assert base64.b64decode(uri.partition(",")[2]) == png(21)
        slack = body["metadata"]["slack"]
        assert slack["trigger"] == "message_shortcut"
        assert slack["user_id"] == "U1" and slack["author_id"] == "U2"
        assert slack["thread_ts"] == asked and slack["message_ts"] == asked

        # The same submission delivered again (a retry) is the same request.
        assert await chat.submit_form(user="U1", repo=options[0]) == {}
        assert len(chat.emulator.created_bodies()) == 1

        # The card is in the message's thread and names the sender and the message's author.
        card = card_text(chat, asked)
        assert "Requested by <@U1> from <@U2>'s message" in card
        assert "acme/web" in card
        await chat.run_until_idle()
        assert chat.emulator.status_of(1000) == "COMPLETE"
        assert any("Complete" in t for t in chat.bot_texts("C1", asked))


async def test_the_shortcut_in_a_thread_carries_the_thread_and_goes_on_there(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        root = chat.slack.add_message("C1", "login fails for SSO users since Tuesday", "U2")
        reply = chat.slack.add_message("C1", "it is the redirect URI, I think", "U3", root)
        await chat.shortcut(reply, user="U3")
        assert await chat.submit_form(user="U3") == {}

        [body] = chat.emulator.created_bodies()
        assert body["prompt"].startswith("it is the redirect URI, I think")
        assert "login fails for SSO users since Tuesday" in body["prompt"]  # the thread
        slack = body["metadata"]["slack"]
        assert slack["thread_ts"] == root and slack["message_ts"] == reply
        assert slack["author_id"] is None  # their own message
        card = card_text(chat, root)
        assert "Requested by <@U3>" in card and "'s message" not in card


async def test_codegen_alone_opens_the_form_and_help_stays_help(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        help_text = ack_text(await chat.slash("help"))
        assert "/codegen" in help_text and not chat.slack.views

        response = await chat.slash("")
        assert response.status_code == 200 and not response.content  # the form, no text
        view = chat.opened_view()
        assert view["callback_id"] == "codegen_run"
        assert "initial_value" not in _inputs(view)["prompt"]
        assert "a new thread in <#C1>" in json.dumps(view["blocks"])

        # Sent empty: said under the field, nothing queued.
        answer = await chat.submit_form(prompt=None)
        assert answer["response_action"] == "errors"
        assert answer["errors"] == {"prompt": "Say what Codegen should do."}
        assert await chat.queued_requests() == []

        # What is typed in a form comes back as typed: no entities to undo.
        assert await chat.submit_form(prompt="explain &lt;br&gt; vs <br> in the footer") == {}
        assert chat.emulator.created_bodies()[0]["prompt"] == (
            "explain &lt;br&gt; vs <br> in the footer"
        )

        # Typed options count as anywhere; a picker beats them (a new form: one form is one
        # request, however often its submission arrives).
        await chat.slash("")
        answer = await chat.submit_form(
            prompt="add a changelog page [repo=acme/api, agent=codegen]", agent="claude_code"
        )
        assert answer == {}
        body = chat.emulator.created_bodies()[1]
        assert body["prompt"] == "add a changelog page"
        assert body["repo_id"] == 102 and body["agent_type"] == "claude_code"
        assert body["metadata"]["slack"]["trigger"] == "modal"
        # Like a slash command: a root message in the channel, the card in its thread.
        root = roots(chat)[1]
        assert "asked Codegen: add a changelog page" in all_text(chat.slack.message("C1", root))
        assert "Requested by <@U1>" in card_text(chat, root)


async def test_the_form_refuses_what_cannot_be_taken_and_queues_nothing(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url, allowed_slack_users="U1") as chat:
        # Someone not on the allow-list is told at once, in a form of its own.
        asked = chat.slack.add_message("C1", "rename the billing tables", "U1")
        await chat.shortcut(asked, user="U9")
        notice = chat.opened_view()
        assert "callback_id" not in notice and "ALLOWED_SLACK_USERS" in json.dumps(notice)

        # An unknown repository typed in the request is said under the request field, once
        # the list is known (the form read it when it opened).
        await chat.shortcut(asked, user="U1")
        answer = await chat.submit_form(prompt="rename the billing tables repo=acme/webb")
        assert answer["response_action"] == "errors"
        assert "Closest: acme/web" in answer["errors"]["prompt"]

        # An options group left open is the grammar's error, in plain text.
        answer = await chat.submit_form(prompt="[repo=acme/web rename the billing tables")
        assert "`" not in answer["errors"]["prompt"] and "[" in answer["errors"]["prompt"]

        # A form whose origin did not come back (forged or truncated) is refused.
        view = chat.opened_view()
        chat.slack.views[-1]["view"] = {**view, "private_metadata": "{not json"}
        answer = await chat.submit_form()
        assert answer["errors"] == {"prompt": "This form can no longer be sent; open it again."}

        # A message where the bot is not: it could not follow a run in that thread.
        chat.slack.add_channel("C7", is_member=False)
        elsewhere = chat.slack.add_message("C7", "rename the billing tables", "U1")
        await chat.shortcut(elsewhere, user="U1", channel="C7")
        notice = chat.opened_view()
        assert "callback_id" not in notice and "/invite @Codegen" in json.dumps(notice)

        assert await chat.queued_requests() == []
        assert chat.emulator.created_bodies() == []
