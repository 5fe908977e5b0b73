"""`@Codegen <prompt>` in a channel, with screenshots attached."""

from __future__ import annotations

import base64
import io
import os
import struct
import zlib
from typing import Any

from PIL import Image

from tests.harness import TEAM, Conversation


def png(width: int = 8, height: int = 6, *, noisy: bool = False) -> bytes:
    if noisy:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (200, 30, 30))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A small file that claims a huge image: a valid header and one tiny compressed row.
    Pillow refuses to open it (DecompressionBombError) before decoding anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def decode(uri: str) -> tuple[str, bytes]:
    head, _, data = uri.partition(",")
    assert head.startswith("data:") and head.endswith(";base64")
    return head[5:].removesuffix(";base64"), base64.b64decode(data)


async def test_a_png_attached_to_a_mention_reaches_codegen_byte_for_byte(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        content = png()
        shot = chat.slack.add_file("broken-button.png", content, "image/png")
        ts = await chat.mention("the save button overlaps the footer", files=[shot])

        body = chat.emulator.created_bodies()[0]
        assert body["prompt"] == "the save button overlaps the footer"
        [uri] = body["images"]
        assert decode(uri) == ("image/png", content)
        # Downloaded with the bot token from the Slack file host, nothing else.
        assert [(d.token, d.served) for d in chat.slack.downloads] == [
            ("xoxb-test-bot-token", "file")
        ]
        assert body["metadata"] == {
            "source": "slack",
            "request_id": (await chat.queued_requests())[0].id,
            "codegen_user_id": 7,  # alice is the emulator's token owner
            "slack": {
                "team_id": TEAM,
                "channel_id": "C1",
                "user_id": "U1",
                "thread_ts": ts,
                "message_ts": ts,
                "trigger": "app_mention",
                "permalink": f"https://fake-team.slack.com/archives/C1/p{ts.replace('.', '')}",
                "author_id": None,
            },
        }
        # 👀 at once, then ⏳ once the run exists; the card is in the message's thread.
        assert chat.slack.bot_reactions("C1", ts) == ["hourglass_flowing_sand"]
        assert "Codegen run #1000" in chat.bot_texts("C1", ts)[0]


async def test_an_oversized_screenshot_is_scaled_down_and_sent(sqlite_url: str) -> None:
    cap = 100_000
    async with Conversation.start(database_url=sqlite_url, max_image_bytes=cap) as chat:
        content = png(800, 500, noisy=True)
        assert len(content) > 5 * cap
        shot = chat.slack.add_file("screenshot.png", content, "image/png")
        ts = await chat.mention("this chart renders wrong", files=[shot])

        [uri] = chat.emulator.created_bodies()[0]["images"]
        mime, data = decode(uri)
        assert len(data) <= cap
        with Image.open(io.BytesIO(data)) as image:
            assert image.format is not None and mime == f"image/{image.format.lower()}"
            assert image.width < 800
            assert abs(image.width / image.height - 1.6) < 0.05
        # Nothing was left out, so nothing is listed.
        assert not any("left out" in t for t in chat.bot_texts("C1", ts))


async def test_a_decompression_bomb_is_skipped_and_the_good_screenshot_goes(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        bomb = chat.slack.add_file("huge.png", bomb_png(), "image/png")
        shot = chat.slack.add_file("login.png", png(), "image/png")
        ts = await chat.mention("the login page is blank", files=[bomb, shot])
        await chat.run_until_idle()

        [body] = chat.emulator.created_bodies()  # sent once, not retried
        assert [decode(uri)[1] for uri in body["images"]] == [png()]
        [note] = [t for t in chat.bot_texts("C1", ts) if "left out" in t]
        assert "huge.png: too large to process" in note
        assert note.startswith("I left out 1 attachment:")


async def test_a_pdf_is_skipped_and_named_in_the_thread(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        shot = chat.slack.add_file("login.png", png(), "image/png")
        spec = chat.slack.add_file("spec.pdf", b"%PDF-1.7 the spec", "application/pdf")
        page = chat.slack.add_file("fake.png", b"<!DOCTYPE html><html>hi</html>", "image/png")
        ts = await chat.mention("match the spec", files=[spec, shot, page])

        body = chat.emulator.created_bodies()[0]
        assert len(body["images"]) == 1
        assert decode(body["images"][0])[1] == png()
        notes = [t for t in chat.bot_texts("C1", ts) if "left out" in t]
        assert len(notes) == 1
        assert "spec.pdf: not an image (PDF)" in notes[0]
        assert "fake.png" in notes[0]
        # The PDF was never downloaded.
        assert all("spec.pdf" not in d.path for d in chat.slack.downloads)


async def test_images_over_max_images_are_listed(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url, max_images=2) as chat:
        files = [chat.slack.add_file(f"s{n}.png", png(4 + n, 4), "image/png") for n in range(3)]
        ts = await chat.mention("compare these", files=files)
        images = chat.emulator.created_bodies()[0]["images"]
        assert [decode(uri)[1] for uri in images] == [png(4, 4), png(5, 4)]
        notes = [t for t in chat.bot_texts("C1", ts) if "left out" in t]
        assert "s2.png: over the limit of 2 images" in notes[0]


def file_share(
    chat: Conversation, ts: str, text: str, files: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "file_share",
        "channel": "C1",
        "channel_type": "channel",
        "user": "U1",
        "text": text,
        "ts": ts,
        "files": files,
        "team": TEAM,
    }


async def test_a_mention_with_a_file_arriving_as_mention_and_file_share_is_handled_once(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        shot = chat.slack.add_file("bug.png", png(), "image/png")
        text = f"<@{chat.slack.bot_user_id}> fix this"
        ts = chat.slack.add_message("C1", text, "U1", files=[shot])
        mention = {"type": "app_mention", "user": "U1", "text": text, "ts": ts, "channel": "C1"}
        mention["files"] = [shot]
        await chat.event(file_share(chat, ts, text, [shot]))
        await chat.event(mention)
        await chat.run_until_idle()

        assert len(await chat.queued_requests()) == 1
        assert len(chat.emulator.created_bodies()) == 1
        assert len(chat.emulator.created_bodies()[0]["images"]) == 1
        assert len(chat.bot_texts("C1", ts)) == 2  # one card, one final reply


async def test_a_mention_that_arrives_only_as_file_share_is_handled(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        shot = chat.slack.add_file("bug.png", png(), "image/png")
        text = f"<@{chat.slack.bot_user_id}> fix this"
        ts = chat.slack.add_message("C1", text, "U1", files=[shot])
        await chat.event(file_share(chat, ts, text, [shot]))

        [body] = chat.emulator.created_bodies()
        assert body["prompt"] == "fix this"
        assert body["metadata"]["slack"]["trigger"] == "app_mention"
        assert decode(body["images"][0])[1] == png()

        # A file shared without mentioning the bot is not a request.
        other = chat.slack.add_message("C1", "holiday photo", "U2", files=[shot])
        await chat.event(file_share(chat, other, "holiday photo", [shot]) | {"user": "U2"})
        assert len(chat.emulator.created_bodies()) == 1


async def test_a_mention_with_only_images_gets_a_default_prompt(sqlite_url: str) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        shot = chat.slack.add_file("bug.png", png(), "image/png")
        await chat.mention("", files=[shot])
        [body] = chat.emulator.created_bodies()
        assert body["prompt"] == "See the attached images."
        assert len(body["images"]) == 1


async def test_files_are_fetched_only_from_slack_hosts_following_redirects_by_hand(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        moved = chat.slack.add_file("moved.png", png(9, 9), "image/png", redirect=True)
        # A redirect to another host (same server, other name): the token must not follow it.
        away = chat.slack.add_file(
            "away.png",
            png(7, 7),
            "image/png",
            redirect=f"http://localhost:{chat.slack.port}/files-tmb/elsewhere/away.png",
        )
        foreign = dict(chat.slack.add_file("foreign.png", png(5, 5), "image/png"))
        foreign["url_private"] = foreign["url_private"].replace("127.0.0.1", "localhost")
        foreign["url_private_download"] = foreign["url_private"]
        # A Slack Connect file comes without a URL: files.info tells where it is.
        connect = chat.slack.add_file(
            "shared.png", png(10, 10), "image/png", file_access="check_file_info"
        )
        assert "url_private" not in connect
        ts = await chat.mention("four screenshots", files=[moved, away, foreign, connect])

        uris = chat.emulator.created_bodies()[0]["images"]
        assert [decode(uri)[1] for uri in uris] == [png(9, 9), png(10, 10)]
        assert chat.slack.last_call("files.info")["file"] == connect["id"]
        notes = next(t for t in chat.bot_texts("C1", ts) if "left out" in t)
        assert "away.png" in notes and "foreign.png" in notes
        # Every request for bytes went to the Slack host the bot was configured with.
        assert {d.host for d in chat.slack.downloads} == {f"127.0.0.1:{chat.slack.port}"}
        assert tuple(d.served for d in chat.slack.downloads if "moved.png" in d.path) == (
            "redirect",
            "file",
        )
