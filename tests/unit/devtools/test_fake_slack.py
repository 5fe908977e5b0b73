"""The fake Slack Web API behaves like Slack for slack_sdk's AsyncWebClient."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.clock import FakeClock
from bot.devtools.slack import FakeSlack
from bot.slack.budget import CHANNEL_POST_RATE, TIER_3


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack.running(bot_token="xoxb-test") as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.api_url)


async def test_serves_on_loopback(slack: FakeSlack) -> None:
    assert slack.base_url.startswith("http://127.0.0.1:")
    assert slack.api_url == slack.base_url + "/api/"


async def test_auth_test_reports_identity_and_scopes() -> None:
    async with FakeSlack.running(bot_token="xoxb-1", scopes=["chat:write", "files:read"]) as fake:
        client = AsyncWebClient(token="xoxb-1", base_url=fake.api_url)
        response = await client.auth_test()
        assert response["ok"] is True
        assert response["team_id"].startswith("T")
        assert response["user_id"] == fake.bot_user_id
        assert response["bot_id"] == fake.bot_id
        assert response.headers["x-oauth-scopes"] == "chat:write,files:read"

        call = fake.last_call("auth.test")
        assert call.token == "xoxb-1"
        assert "authorization" not in {k.lower() for k in call.headers}


async def test_bad_or_missing_token_is_refused(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as bad:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test()
    assert bad.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=slack.api_url).auth_test()
    assert missing.value.response["error"] == "not_authed"


async def test_missing_scope_is_refused() -> None:
    async with FakeSlack.running(scopes=["chat:write"]) as fake:
        client = fake.client()
        root = fake.add_message("C1", "hello", "U1")
        with pytest.raises(SlackApiError) as err:
            await client.reactions_add(channel="C1", timestamp=root, name="eyes")
        assert err.value.response["error"] == "missing_scope"
        assert err.value.response["needed"] == "reactions:write"


async def test_post_update_and_read_a_thread(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.add_message("C1", "please fix the login page", "U1")
    posted = await client.chat_postMessage(
        channel="C1",
        thread_ts=root,
        text="Queued",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*Queued*"}}],
        metadata={"event_type": "codegen_run", "event_payload": {"request_id": "r-1"}},
    )
    assert posted["ok"] is True
    assert posted["channel"] == "C1"
    assert float(posted["ts"]) > float(root)
    assert posted["message"]["thread_ts"] == root

    second = await client.chat_postMessage(channel="C1", thread_ts=root, text="later")
    assert float(second["ts"]) > float(posted["ts"])

    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="Running")
    assert updated["message"]["text"] == "Running"
    assert slack.message("C1", posted["ts"])["text"] == "Running"
    assert slack.message("C1", posted["ts"])["blocks"][0]["type"] == "section"

    replies = await client.conversations_replies(channel="C1", ts=root)
    texts = [m["text"] for m in replies["messages"]]
    assert texts == ["please fix the login page", "Running", "later"]
    assert replies["messages"][0]["reply_count"] == 2
    assert "metadata" not in replies["messages"][1]

    with_meta = await client.conversations_replies(channel="C1", ts=root, include_all_metadata=True)
    assert with_meta["messages"][1]["metadata"]["event_payload"] == {"request_id": "r-1"}

    assert [m["text"] for m in slack.bot_messages("C1", thread_ts=root)] == ["Running", "later"]
    assert slack.calls_to("chat.postMessage")[0].params["text"] == "Queued"


async def test_update_of_unknown_message_fails(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"


async def test_history_lists_top_level_newest_first(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    first = slack.add_message("C1", "one", "U1")
    slack.add_message("C1", "reply", "U2", thread_ts=first)
    slack.add_message("C1", "two", "U1")
    history = await client.conversations_history(channel="C1")
    assert [m["text"] for m in history["messages"]] == ["two", "one"]
    paged = await client.conversations_history(channel="C1", limit=1)
    assert paged["has_more"] is True
    rest = await client.conversations_history(
        channel="C1", limit=1, cursor=paged["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["one"]


async def test_reactions_track_state_like_slack(slack: FakeSlack, client: AsyncWebClient) -> None:
    ts = slack.add_message("C1", "go", "U1")
    await client.reactions_add(channel="C1", timestamp=ts, name="eyes")
    assert slack.bot_reactions("C1", ts) == ["eyes"]
    with pytest.raises(SlackApiError) as again:
        await client.reactions_add(channel="C1", timestamp=ts, name="eyes")
    assert again.value.response["error"] == "already_reacted"

    await client.reactions_remove(channel="C1", timestamp=ts, name="eyes")
    assert slack.bot_reactions("C1", ts) == []
    with pytest.raises(SlackApiError) as none:
        await client.reactions_remove(channel="C1", timestamp=ts, name="eyes")
    assert none.value.response["error"] == "no_reaction"


async def test_fail_next_answers_ok_false_once(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.fail_next("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "channel_not_found"
    ok = await client.chat_postMessage(channel="C1", text="hi")
    assert ok["ok"] is True
    assert slack.faults["chat.postMessage", "error"] == 1
    assert len(slack.calls_to("chat.postMessage")) == 2


async def test_rate_limit_answers_429_with_retry_after(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.rate_limit_next("chat.update", retry_after=7, times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.chat_update(channel="C1", ts="1.0", text="x")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] == "7"
        assert err.value.response["error"] == "ratelimited"
    assert slack.faults["chat.update", "ratelimited"] == 2
    assert slack.pending_faults("chat.update") == 0


async def test_server_error(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.server_error_next("conversations.info", status=503)
    with pytest.raises(SlackApiError) as err:
        await client.conversations_info(channel="C1")
    assert err.value.response.status_code == 503
    info = await client.conversations_info(channel="C1")
    assert info["channel"]["id"] == "C1"


async def test_declared_response_for_any_method(slack: FakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.api_call("team.info")
    assert err.value.response["error"] == "unknown_method"

    slack.respond("team.info", {"ok": True, "team": {"id": "T9", "name": "Nine"}})
    answer = await client.api_call("team.info")
    assert answer["team"]["name"] == "Nine"

    slack.respond("users.info", lambda call: {"ok": True, "user": {"id": call["user"]}}, once=True)
    assert (await client.users_info(user="U42"))["user"] == {"id": "U42"}
    assert (await client.users_info(user="U42"))["user"]["name"] == "user-u42"


async def test_channels_users_dms_and_permalinks(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_channel("C2", name="secret", is_private=True, is_member=False)
    slack.add_user("U7", "ada", real_name="Ada Lovelace", display_name="ada.l")
    info = await client.conversations_info(channel="C2")
    assert info["channel"]["is_private"] is True
    assert info["channel"]["is_member"] is False
    # As Slack answers a bot outside a conversation: a private one is hidden from it.
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C2", text="x")
    assert err.value.response["error"] == "channel_not_found"
    slack.add_channel("C3", name="public", is_member=False)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C3", text="x")
    assert err.value.response["error"] == "not_in_channel"

    user = await client.users_info(user="U7")
    assert user["user"]["profile"]["display_name"] == "ada.l"
    assert user["user"]["real_name"] == "Ada Lovelace"

    opened = await client.conversations_open(users="U7")
    dm = opened["channel"]["id"]
    assert dm.startswith("D")
    assert (await client.conversations_open(users="U7"))["channel"]["id"] == dm
    dm_info = await client.conversations_info(channel=dm)
    assert dm_info["channel"]["is_im"] is True

    root = slack.add_message("C1", "root", "U1")
    reply = slack.add_message("C1", "reply", "U1", thread_ts=root)
    link = await client.chat_getPermalink(channel="C1", message_ts=reply)
    assert link["permalink"].endswith(f"?thread_ts={root}&cid=C1")

    eph = await client.chat_postEphemeral(channel="C1", user="U7", text="only you")
    assert eph["message_ts"]
    assert slack.ephemerals[0]["text"] == "only you"


async def test_files_are_served_only_with_the_bot_token(slack: FakeSlack) -> None:
    file = slack.add_file("shot.png", b"\x89PNG\r\n\x1a\nrest", "image/png")
    async with httpx.AsyncClient(trust_env=False) as http:
        good = await http.get(file["url_private"], headers={"Authorization": "Bearer xoxb-test"})
        bad = await http.get(file["url_private"])
    assert good.content == b"\x89PNG\r\n\x1a\nrest"
    assert good.headers["content-type"] == "image/png"
    assert bad.status_code == 200
    assert bad.headers["content-type"].startswith("text/html")
    assert bad.text.startswith("<!DOCTYPE html>")
    assert [d.served for d in slack.downloads] == ["file", "login_page"]

    connect = slack.add_file("c.png", b"x", "image/png", file_access="check_file_info")
    assert connect == {"id": connect["id"], "file_access": "check_file_info"}
    info = await slack.client().files_info(file=connect["id"])
    assert info["file"]["url_private"].startswith(slack.base_url)


async def test_response_urls_record_posts(slack: FakeSlack) -> None:
    url = slack.response_url()
    async with httpx.AsyncClient(trust_env=False) as http:
        answer = await http.post(url, json={"response_type": "ephemeral", "text": "working"})
    assert answer.status_code == 200
    assert slack.responses[0].text == "working"
    assert slack.responses[0].url == url


async def test_slacks_own_rates_are_enforced_per_method_and_per_channel() -> None:
    clock = FakeClock()
    async with FakeSlack.running(bot_token="xoxb-test", clock=clock) as slack:
        slack.add_channel("C1", name="general")
        slack.add_channel("C2", name="random")
        client = slack.client(retry_handlers=[])
        root = (await client.chat_postMessage(channel="C2", text="hello"))["ts"]
        for _ in range(TIER_3.limit):  # chat.update: Tier 3, 50 a minute per workspace
            await client.chat_update(channel="C2", ts=root, text="x")
        with pytest.raises(SlackApiError) as err:
            await client.chat_update(channel="C2", ts=root, text="x")
        assert err.value.response.status_code == 429
        assert err.value.response.headers["Retry-After"] == "60"
        assert slack.rate_limited("chat.update") == 1
        clock.advance(60)
        await client.chat_update(channel="C2", ts=root, text="x")  # a minute later: room again

        for _ in range(CHANNEL_POST_RATE.limit):  # postMessage: 1 a second per channel, bursts
            await client.chat_postMessage(channel="C1", text="hi")
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C1", text="one too many")
        assert err.value.response.status_code == 429
        await client.chat_postMessage(channel="C2", text="another channel has its own")
        assert slack.rate_limited() == 2
        # A refused call was not carried out.
        assert "one too many" not in [m["text"] for m in slack.messages("C1")]
