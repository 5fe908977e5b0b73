"""The terminal console: the real handlers, queue, dispatcher and tracker, driven by typed lines,
with Slack replaced by the fake Slack shown in the terminal and Codegen by the emulator.

The console runs on the real clock (it is what a person uses), so these tests use very short
emulated runs and wait for conditions with a time limit; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from PIL import Image

from bot.config import Settings
from bot.devtools.console import (
    BOT_USER_ID,
    CHANNEL_ID,
    DM_ID,
    USER_ID,
    Console,
    converse,
    derive_settings,
    split_images,
)

# Fast emulated runs: PENDING 0.1 s, ACTIVE 0.2 s; the tracker polls every 0.1-0.3 s.
FAST = {"pending_seconds": 0.1, "active_seconds": 0.2}


def console_settings(**overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "_env_file": None,
        "codegen_api_token": None,
        "codegen_org_id": None,
        "slack_bot_token": None,
        "slack_app_token": None,
        "slack_signing_secret": None,
        "codegen_poll_min_seconds": 0.1,
        "codegen_poll_max_seconds": 0.3,
    }
    fields.update(overrides)
    return Settings(**fields)


def between(text: str, start: str, end: str | None = None) -> str:
    tail = text[text.index(start) :]
    return tail if end is None else tail[: tail.index(end, len(start))]


async def test_a_scripted_slash_command_shows_the_whole_run(sqlite_url: str) -> None:
    out = io.StringIO()
    # ACTIVE lasts longer than the longest poll interval, so the card shows it for sure.
    async with Console.start(
        console_settings(),
        database_url=sqlite_url,
        out=out,
        echo=True,
        pending_seconds=0.2,
        active_seconds=0.8,
    ) as console:
        status = await converse(console, ["/codegen write a hello world script"], wait=30)
        assert console.emulator is not None
        created = console.emulator.created_bodies()

    text = out.getvalue()
    print(text)
    assert status == 0
    # The banner says loudly what is real and what is not.
    assert "NO SLACK" in text and "BUILT-IN EMULATOR" in text
    # What Codegen received came through the real handler and intake.
    assert len(created) == 1
    assert created[0]["prompt"] == "write a hello world script"
    assert created[0]["metadata"]["source"] == "slack"
    assert created[0]["metadata"]["slack"]["trigger"] == "slash_command"
    assert created[0]["metadata"]["slack"]["channel_id"] == CHANNEL_ID
    assert created[0]["metadata"]["slack"]["user_id"] == USER_ID
    # The ack, then the root message that starts the thread, then the card moving on.
    assert "only visible to you" in text and "Queued. I will post the run" in text
    assert "starts thread 1" in text and "@you asked Codegen: write a hello world script" in text
    card_states = [
        line.strip().split(":")[0]
        for line in text.splitlines()
        if line.strip().startswith(("⏳", "🏃", "✅"))
    ]
    assert card_states[0] == "⏳ Queued"
    assert "🏃 Running" in card_states
    assert "✅ Complete" in card_states
    # The final reply: the requester by name, the summary, the pull request as a link.
    final = between(text, "@you Codegen run #1000")
    assert "is complete" in final
    assert "Pull request" in final
    assert "https://github.com/acme/web/pull/1000" in final
    assert "codegen-bot/run-1000" in final
    # Reactions on the thread's first message end at done.
    assert "reacted ✅" in text
    assert text.index("reacted 👀") < text.index("reacted ⏳") < text.index("reacted ✅")


async def test_mention_with_an_image_and_a_reply_in_the_thread(
    sqlite_url: str, tmp_path: Path
) -> None:
    shot = tmp_path / "shot.png"
    Image.new("RGB", (32, 24), (220, 20, 20)).save(shot)
    out = io.StringIO()
    async with Console.start(
        console_settings(), database_url=sqlite_url, out=out, echo=True, **FAST
    ) as console:
        assert console.emulator is not None
        console.emulator.script.next_run_ends("PAUSED")
        status = await converse(
            console,
            [
                f"@codegen the red box is misaligned --image {shot} repo=acme/web",
                "wait 20",  # until the agent pauses and asks
                "> make it 8px to the left",
            ],
            wait=30,
        )
        created = console.emulator.created_bodies()
        resumed = console.emulator.resume_bodies()
        mention_ts = next(
            m["ts"] for m in console.slack.messages(CHANNEL_ID) if "misaligned" in m["text"]
        )

    text = out.getvalue()
    print(text)
    assert status == 0
    assert len(created) == 1
    body = created[0]
    assert body["prompt"] == "the red box is misaligned"
    assert body["repo_id"] == 101
    assert body["metadata"]["slack"]["trigger"] == "app_mention"
    assert body["metadata"]["slack"]["message_ts"] == mention_ts
    # The file went through the bot's downloader (bot token, SLACK_API_URL host) unchanged.
    [uri] = body["images"]
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == shot.read_bytes()
    # The run paused and asked; the reply typed with ">" resumed that very run.
    assert "paused" in text.lower()
    assert resumed == [{"agent_run_id": 1000, "prompt": "make it 8px to the left"}]
    assert "Sent to run #1000." in text
    assert "✅ Complete" in text


async def test_direct_message_and_help_and_mistakes(sqlite_url: str) -> None:
    out = io.StringIO()
    async with Console.start(
        console_settings(), database_url=sqlite_url, out=out, echo=True, **FAST
    ) as console:
        status = await converse(
            console,
            [
                "# a comment line is ignored",
                "help",
                "> nothing to reply to yet",
                "@codegen look at this --image missing.png",
                "/codegen agent=foo do it",
                "something else",
                "dm add a README for <project> & its docs",
            ],
            wait=30,
        )
        assert console.emulator is not None
        created = console.emulator.created_bodies()

    text = out.getvalue()
    assert status == 0
    assert "a comment line" not in text
    assert "reply in the latest thread" in text  # the console's help
    assert "There is no thread yet" in text
    assert "No such file: missing.png (nothing was sent)" in text
    assert "`agent=foo` is not an agent" in text  # the bot's own option error, as an ack
    assert "Not understood" in text
    # Only the DM became a run.
    assert [b["prompt"] for b in created] == ["add a README for <project> & its docs"]
    assert created[0]["metadata"]["slack"]["channel_id"] == DM_ID
    assert created[0]["metadata"]["slack"]["trigger"] == "direct_message"
    assert "DM · starts thread" not in text  # the user's DM started the thread, not the bot


async def test_quit_leaves_without_waiting(sqlite_url: str) -> None:
    out = io.StringIO()
    async with Console.start(
        console_settings(),
        database_url=sqlite_url,
        out=out,
        pending_seconds=60,
        active_seconds=60,
    ) as console:
        status = await converse(console, ["/codegen a long job", "quit", "/codegen never"], wait=30)
        assert console.emulator is not None
        assert [b["prompt"] for b in console.emulator.created_bodies()] == ["a long job"]
        assert await console.unfinished() == 1
    assert status == 0
    assert "waiting up to" not in out.getvalue()


async def test_end_of_input_gives_up_after_the_wait(sqlite_url: str) -> None:
    out = io.StringIO()
    async with Console.start(
        console_settings(),
        database_url=sqlite_url,
        out=out,
        pending_seconds=60,
        active_seconds=60,
    ) as console:
        status = await converse(console, ["/codegen a long job"], wait=0.3)
    assert status == 1
    assert "gave up waiting after 0.3 s; 1 still unfinished" in out.getvalue()


def test_console_settings_point_the_bot_at_the_terminal() -> None:
    settings = Settings(
        _env_file=None,
        slack_bot_token="xoxb-real-workspace-token",
        slack_signing_secret="real-secret",
        allowed_slack_users="U1,U2",
    )
    derived = derive_settings(
        settings, slack_api_url="http://127.0.0.1:9/api/", database_url="sqlite+aiosqlite:///x"
    )
    assert derived.slack_bot_token is not None
    assert derived.slack_bot_token.get_secret_value().startswith("xoxb-console")
    assert derived.slack_signing_secret is None and derived.slack_app_token is None
    assert derived.slack_api_url == "http://127.0.0.1:9/api/"
    # The allow-lists stay, so they can be tried in the console.
    assert derived.allowed_slack_users == ["U1", "U2"]
    # Emulated runs are short: poll often unless told otherwise.
    assert derived.codegen_poll_min_seconds == 1.0
    assert derived.codegen_poll_max_seconds == 5.0
    told = Settings(_env_file=None, codegen_poll_min_seconds=3, codegen_poll_max_seconds=9)
    kept = derive_settings(
        told, slack_api_url="http://x/api/", database_url="sqlite+aiosqlite:///x"
    )
    assert (kept.codegen_poll_min_seconds, kept.codegen_poll_max_seconds) == (3, 9)


def test_split_images() -> None:
    assert split_images("fix this --image a.png now") == ("fix this now", ["a.png"])
    assert split_images('x --image "my shot.png" --image=b.jpg') == ("x", ["my shot.png", "b.jpg"])
    assert split_images("no images") == ("no images", [])
    assert BOT_USER_ID not in split_images("a --image z.png")[0]


async def test_the_console_tries_pauses_failures_stops_and_allow_lists(sqlite_url: str) -> None:
    """Everything a person can meet in Slack, without Slack: a pause answered by a plain reply,
    a failure, a stop, reactions taken back, names instead of ids, the allow-lists."""
    out = io.StringIO()
    async with Console.start(
        console_settings(),
        database_url=sqlite_url,
        out=out,
        echo=True,
        pending_seconds=0.1,
        active_seconds=60,
        log="/tmp/example.log (-v shows it here)",
    ) as console:
        assert console.emulator is not None
        status = await converse(
            console,
            [
                "@codegen migrate the settings page",
                "codegen pause 1000",
                "wait 20",  # until the bot has seen the pause and asked
                "> use the release branch",  # a plain reply: the answer
                "codegen fail 1000",
                "wait 20",
                "/codegen tidy the imports",
                "/codegen stop 1001",
                "wait 20",
                "/codegen config",
                "codegen finish 4242",
            ],
            wait=30,
        )
        resumed = console.emulator.resume_bodies()
        stops = console.emulator.calls("stop_run")

    text = out.getvalue()
    print(text)
    assert status == 0
    assert "Log:      /tmp/example.log (-v shows it here)" in text
    assert "(emulator: run #1000 is PAUSED now)" in text
    assert resumed == [{"agent_run_id": 1000, "prompt": "use the release branch"}]
    assert "(emulator: run #1000 is FAILED now)" in text
    assert "failed (status `FAILED`)" in between(text, "@you Codegen run #1000 (")
    assert [c.json for c in stops] == [{"agent_run_id": 1001}]
    assert "was stopped." in between(text, "@you Codegen run #1001 (")
    assert "took back 👀" in text and "reacted ⏹️" in text
    assert "Defaults for runs started in #console" in text and "C0CONSOLE>" not in text
    assert "(the emulator has no run #4242)" in text
    assert "WARNING" not in text and "INFO" not in text  # the log is elsewhere

    out = io.StringIO()
    async with Console.start(
        console_settings(allowed_slack_users="U0SOMEONE"), database_url=sqlite_url, out=out, **FAST
    ) as console:
        await converse(console, ["/codegen write docs"], wait=5)
        assert console.emulator is not None and console.emulator.created_bodies() == []
    text = out.getvalue()
    assert "ALLOWED_SLACK_USERS is set: you may NOT start runs" in text
    assert "not on this bot's list of people who may start Codegen runs" in text


async def test_as_another_person_tries_admins_and_membership(sqlite_url: str) -> None:
    out = io.StringIO()
    settings = console_settings(admin_slack_users=USER_ID, codegen_members_only=True)
    async with Console.start(
        settings, database_url=sqlite_url, out=out, echo=True, **FAST
    ) as console:
        await converse(
            console,
            [
                "as bob /codegen config repo=acme/api",  # not an admin
                "/codegen config repo=acme/api",  # you are
                "as carol /codegen write docs",  # not a member of the organization
                "as teammate /codegen write docs",  # a member
                "home",  # yours, an admin's
            ],
            wait=20,
        )
        assert console.emulator is not None
        created = console.emulator.created_bodies()
    text = out.getvalue()
    print(text)
    assert "(as @bob, U0BOB)" in text
    home = between(text, "codegen · Home")
    assert "You have not started any Codegen runs" in home  # only `config` so far
    assert "Admin: who may ask" in home and "Admins (may stop any run" in home
    assert "Creates: 1 of 10 spent" in home  # the teammate's run
    assert "Only admins change this channel's defaults here" in text
    assert "Last changed by @you" in text
    assert "`carol@example.com`" in text and "Only members of this bot's Codegen" in text
    [body] = created
    assert body["metadata"]["slack"]["user_id"] == "U0TEAMMATE"
    assert body["metadata"]["codegen_user_id"] == 8


async def test_the_console_logs_a_person_in_with_their_own_token(sqlite_url: str) -> None:
    from bot.secret_box import new_key

    out = io.StringIO()
    settings = console_settings(bot_secret_key=new_key())
    async with Console.start(
        settings, database_url=sqlite_url, out=out, echo=True, **FAST
    ) as console:
        await converse(
            console,
            [
                "codegen person erin",
                "as erin /codegen login",
                "as erin submit not-her-token",
                "as erin /codegen login",
                "as erin submit cg-console-erin-token",
                "as erin /codegen whoami",
                "as erin /codegen write docs",
            ],
            wait=20,
        )
        assert console.emulator is not None
        erin = console.emulator.tokens["cg-console-erin-token"].user
        creates = [c for c in console.emulator.calls("create_run") if c.run_id]
    text = out.getvalue()
    print(text)
    assert "form: Codegen login" in text and "(type: submit <text>)" in text
    assert "not accepted: Codegen did not accept this token" in text
    assert "Logged in as erin@example.com" in text
    assert "your own Codegen token (erin@example.com" in text
    assert [c.caller_id for c in creates] == [erin.id]


async def test_the_console_opens_the_run_form_and_submits_it(sqlite_url: str) -> None:
    out = io.StringIO()
    async with Console.start(
        console_settings(), database_url=sqlite_url, out=out, echo=True, **FAST
    ) as console:
        await converse(console, ["/codegen", "submit add a changelog page"], wait=40)
        assert console.emulator is not None
        [body] = console.emulator.created_bodies()
    text = out.getvalue()
    print(text)
    assert "form: Send to Codegen" in text and "(type: submit <text>)" in text
    assert body["prompt"] == "add a changelog page"
    assert body["metadata"]["slack"]["trigger"] == "modal"
    assert "(closed)" in text and "Complete" in text


async def test_the_console_presses_a_pull_request_button_on_the_final_reply(
    sqlite_url: str,
) -> None:
    out = io.StringIO()
    async with Console.start(
        console_settings(), database_url=sqlite_url, out=out, echo=True, **FAST
    ) as console:
        await converse(
            console,
            [
                "/codegen write docs",
                "wait 20",
                "as bob press ready for review",  # not the requester, nor an admin
                "press ready for review",
                "press nothing like it",
            ],
            wait=20,
        )
        assert console.emulator is not None
        states = console.emulator.pr_states
    text = out.getvalue()
    print(text)
    assert "[Ready for review]  [Draft]  [Close]" in text
    assert "Only @you, the person who asked for run #1000, or an admin" in text
    assert "Ready for review, set by @you" in text
    assert "(no button [nothing like it] on the bot's messages)" in text
    assert states == {71000: "ready_for_review"}
