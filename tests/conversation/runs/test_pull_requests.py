"""The pull request buttons on a run's final reply (Ready for review, Draft, Close): who may
press them, what Codegen receives, how the reply shows the state and who set it, and what a
refusal says."""

from __future__ import annotations

from typing import Any

from bot.secret_box import new_key
from bot.slack.render import (
    PR_CLOSE_ACTION_ID,
    PR_DRAFT_ACTION_ID,
    PR_READY_ACTION_ID,
    PR_REOPEN_ACTION_ID,
)
from tests.conversation.intake.test_accounts import ERIN_TOKEN, log_in
from tests.harness import Conversation, all_text, edits, final_replies, roots

PR_ID = 71000  # the emulator's pull request of run 1000
VALUE = f"1000:{PR_ID}"


def pr_buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(action id, text) of the pull request buttons on a message."""
    return [
        (element["action_id"], element["text"]["text"])
        for block in message.get("blocks") or []
        if block.get("type") == "actions" and block.get("block_id") == f"pr:{PR_ID}"
        for element in block["elements"]
    ]


async def completed(chat: Conversation, *, user: str = "U1") -> tuple[str, str]:
    """A slash command's run, ended COMPLETE with one pull request: (thread, final reply ts)."""
    await chat.slash("fix the flaky login test", user=user)
    await chat.run_until_idle()
    [root] = roots(chat)[-1:]
    [final] = final_replies(chat, root)
    return root, str(final["ts"])


async def test_the_requester_sets_ready_for_review_and_the_reply_shows_it_and_who(
    sqlite_url: str,
) -> None:
    key = new_key()
    async with Conversation.start(
        database_url=sqlite_url, bot_secret_key=key, admin_slack_users="U3"
    ) as chat:
        erin = chat.emulator.add_person(ERIN_TOKEN, email="erin@example.com", name="Erin")
        await log_in(chat, ERIN_TOKEN, user="U1")
        root, final_ts = await completed(chat)
        final = chat.slack.message("C1", final_ts)
        assert pr_buttons(final) == [
            (PR_READY_ACTION_ID, "Ready for review"),
            (PR_DRAFT_ACTION_ID, "Draft"),
            (PR_CLOSE_ACTION_ID, "Close"),
        ]
        reads = len(chat.emulator.calls("list_runs")) + len(chat.emulator.calls("get_run"))
        budgets = chat.runtime.store.budgets
        read_spent = await budgets.state(org_id=7, bucket="read", window=31, now=chat.clock.now())

        await chat.press(PR_READY_ACTION_ID, value=VALUE, message_ts=final_ts, thread_ts=root)
        [patch] = chat.emulator.calls("set_pull_request_state")
        assert (patch.method, patch.path) == ("PATCH", f"/v1/organizations/7/prs/{PR_ID}")
        assert (patch.json, patch.status) == ({"state": "ready_for_review"}, 200)
        assert patch.caller_id == erin.id  # made with the requester's own token
        assert chat.emulator.pr_states == {PR_ID: "ready_for_review"}
        final = chat.slack.message("C1", final_ts)
        assert "*Ready for review*, set by <@U1>" in all_text(final)
        assert pr_buttons(final) == [(PR_DRAFT_ACTION_ID, "Draft"), (PR_CLOSE_ACTION_ID, "Close")]
        assert final["metadata"]["event_payload"]["run_id"] == 1000  # still findable
        assert not [t for t in chat.ephemeral_texts() if "pull request" in t]
        # Paid from the pull request budget; no status read was spent or made.
        assert reads == len(chat.emulator.calls("list_runs")) + len(chat.emulator.calls("get_run"))
        after = await budgets.state(org_id=7, bucket="read", window=31, now=chat.clock.now())
        assert after.spent == read_spent.spent
        # On another replica (its own process, the same database), an admin closes it with
        # the organization's token: the reply shows the new state from the store, and offers
        # only Reopen.
        async with Conversation.start(
            database_url=sqlite_url,
            replica_id="replica-b",
            bot_secret_key=key,
            admin_slack_users="U3",
            emulator=chat.emulator,
            clock=chat.clock,
            slack=chat.slack,
        ) as other:
            await other.press(
                PR_CLOSE_ACTION_ID, value=VALUE, message_ts=final_ts, thread_ts=root, user="U3"
            )
            close = other.emulator.calls("set_pull_request_state")[-1]
            assert (close.json, close.caller_id) == ({"state": "closed"}, other.emulator.me.id)
            final = other.slack.message("C1", final_ts)
            assert "*Closed*, set by <@U3>" in all_text(final)
            assert "Ready for review" not in all_text(final)
            assert pr_buttons(final) == [(PR_REOPEN_ACTION_ID, "Reopen")]


async def test_someone_else_is_refused_and_nothing_is_sent(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        root, final_ts = await completed(chat)
        before = chat.slack.message("C1", final_ts)
        await chat.press(
            PR_READY_ACTION_ID, value=VALUE, message_ts=final_ts, thread_ts=root, user="U2"
        )
        assert chat.emulator.calls("set_pull_request_state") == []
        [told] = chat.slack.ephemerals
        assert (told["user"], told["thread_ts"]) == ("U2", root)
        assert told["text"] == (
            "Only <@U1>, the person who asked for run #1000, or an admin can change its pull "
            "requests. Admins are listed in ADMIN_SLACK_USERS."
        )
        assert chat.slack.message("C1", final_ts) == before
        assert edits(chat.slack, final_ts) == []


async def test_codegens_refusals_are_explained_and_the_reply_stays_as_it_was(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        root, final_ts = await completed(chat)
        before = chat.slack.message("C1", final_ts)
        script = chat.emulator.script

        async def press(action_id: str) -> str:
            await chat.press(action_id, value=VALUE, message_ts=final_ts, thread_ts=root)
            return str(chat.slack.ephemerals[-1]["text"])

        script.refuse_next_pr_edit("Pull request is already merged")
        told = await press(PR_DRAFT_ACTION_ID)
        assert told.startswith("Codegen did not set pull request “Codegen: fix the flaky")
        assert told.endswith("to *Draft*: Pull request is already merged.")
        script.fail_next_pr_edit(403, message="No write permission on acme/web")
        told = await press(PR_READY_ACTION_ID)
        assert "needs write permission on its repository" in told
        assert "No write permission on acme/web" in told
        script.fail_next_pr_edit(404)
        assert "Codegen does not know pull request" in await press(PR_READY_ACTION_ID)
        script.fail_next_pr_edit(429, retry_after=40)
        assert (await press(PR_CLOSE_ACTION_ID)).endswith("try again in a minute.")
        # The 429 blocks the pull request budget: the next press is not sent at all.
        told = await press(PR_CLOSE_ACTION_ID)
        assert told.startswith("Codegen takes 30 pull request changes a minute")
        assert [c.status for c in chat.emulator.calls("set_pull_request_state")] == [
            200,
            403,
            404,
            429,
        ]
        assert chat.emulator.pr_states == {}
        assert chat.slack.message("C1", final_ts) == before
        assert edits(chat.slack, final_ts) == []
