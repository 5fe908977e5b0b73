"""bot/images.py against the fake Slack over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.devtools.slack import FakeSlack
from bot.intake.images import (
    LOGIN_PAGE_REASON,
    ImageBatch,
    SkippedFile,
    fetch_images,
    is_allowed_host,
    shrink_image,
    sniff_image_type,
    to_data_uri,
)
from bot.requests import SlackFile

TOKEN = "xoxb-test"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack.running(bot_token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        yield client


def png(width: int = 40, height: int = 30, *, mode: str = "RGB", noisy: bool = False) -> bytes:
    if noisy:
        channels = len(mode)
        image = Image.frombytes(mode, (width, height), os.urandom(width * height * channels))
    else:
        image = Image.new(mode, (width, height), (10, 120, 200, 128)[: len(mode)])
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def decode(uri: str) -> tuple[str, bytes]:
    head, _, payload = uri.partition(",")
    assert head.startswith("data:") and head.endswith(";base64")
    return head[5 : -len(";base64")], base64.b64decode(payload)


async def fetch(
    slack: FakeSlack,
    http: httpx.AsyncClient,
    files: Sequence[Mapping[str, Any] | SlackFile],
    **overrides: Any,
) -> ImageBatch:
    options: dict[str, Any] = {
        "http": http,
        "bot_token": TOKEN,
        "slack_api_url": slack.api_url,
        "max_images": 6,
        "max_image_bytes": 10 * 1024 * 1024,
    }
    options.update(overrides)
    models = [f if isinstance(f, SlackFile) else SlackFile.model_validate(f) for f in files]
    return await fetch_images(models, **options)


# -- pure helpers ----------------------------------------------------------------------------


def test_sniff_image_type_reads_magic_numbers() -> None:
    assert sniff_image_type(png()) == "image/png"
    assert sniff_image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert sniff_image_type(b"GIF89a....") == "image/gif"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"%PDF-1.7") is None
    assert sniff_image_type(b"<!DOCTYPE html>") is None
    assert sniff_image_type(b"") is None


def test_is_allowed_host_is_strict() -> None:
    api = "https://slack.com/api/"
    assert is_allowed_host("https://files.slack.com/files-pri/T1-F1/a.png", slack_api_url=api)
    assert is_allowed_host("https://slack.com/files-pri/T1-F1/a.png", slack_api_url=api)
    assert not is_allowed_host("http://files.slack.com/files-pri/T1-F1/a.png", slack_api_url=api)
    assert not is_allowed_host("https://files.slack.com:8443/x", slack_api_url=api)
    assert not is_allowed_host("https://evil.com/files.slack.com/x", slack_api_url=api)
    assert not is_allowed_host("https://files.slack.com.evil.com/x", slack_api_url=api)
    assert not is_allowed_host("https://u:p@files.slack.com/x", slack_api_url=api)
    assert not is_allowed_host("https://team.slack.com/x", slack_api_url=api)
    assert not is_allowed_host("ftp://files.slack.com/x", slack_api_url=api)
    local = "http://127.0.0.1:8123/api/"
    assert is_allowed_host("http://127.0.0.1:8123/files-pri/x", slack_api_url=local)
    assert not is_allowed_host("http://127.0.0.1:8124/files-pri/x", slack_api_url=local)
    assert not is_allowed_host("http://localhost:8123/files-pri/x", slack_api_url=local)
    assert not is_allowed_host("https://127.0.0.1:8123/files-pri/x", slack_api_url=local)


def test_to_data_uri() -> None:
    assert to_data_uri(b"abc", "image/png") == "data:image/png;base64,YWJj"


def test_shrink_turns_an_opaque_rgba_screenshot_into_jpeg() -> None:
    opaque = Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3)).convert("RGBA")
    out = io.BytesIO()
    opaque.save(out, format="PNG", compress_level=1)
    shrunk, mime = shrink_image(out.getvalue(), 50_000)
    assert mime == sniff_image_type(shrunk) == "image/jpeg"
    assert len(shrunk) <= 50_000


def test_shrink_keeps_first_frame_of_an_animated_gif() -> None:
    frames = [Image.new("P", (300, 300), color) for color in (1, 2, 3)]
    for frame in frames:
        frame.putdata(list(os.urandom(300 * 300)))
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    data = out.getvalue()
    shrunk, mime = shrink_image(data, len(data) // 4)
    assert len(shrunk) <= len(data) // 4
    assert mime == sniff_image_type(shrunk) == "image/jpeg"


# -- fetch_images over HTTP ------------------------------------------------------------------


async def test_png_arrives_as_identical_data_uri(slack: FakeSlack, http: httpx.AsyncClient) -> None:
    content = png()
    file = slack.add_file("shot.png", content, "image/png")
    batch = await fetch(slack, http, [file])
    assert batch.skipped == []
    mime, data = decode(batch.data_uris[0])
    assert (mime, data) == ("image/png", content)
    assert [(d.token, d.served) for d in slack.downloads] == [(TOKEN, "file")]


async def test_large_screenshot_is_scaled_down_to_fit(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    content = png(3000, 2000, noisy=True)
    assert len(content) > 200_000
    file = slack.add_file("screenshot.png", content, "image/png")
    batch = await fetch(slack, http, [file], max_image_bytes=200_000)
    assert batch.skipped == []
    mime, data = decode(batch.data_uris[0])
    assert len(data) <= 200_000
    assert mime == sniff_image_type(data)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.width < 3000
        assert abs(image.width / image.height - 1.5) < 0.02


async def test_transparent_png_stays_png_when_it_fits(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    content = png(600, 600, mode="RGBA", noisy=True)
    file = slack.add_file("overlay.png", content, "image/png")
    batch = await fetch(slack, http, [file], max_image_bytes=300_000)
    mime, data = decode(batch.data_uris[0])
    assert mime == "image/png"
    assert len(data) <= 300_000
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "RGBA"


async def test_pdf_is_skipped_and_named_without_download(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    file = slack.add_file("spec.pdf", b"%PDF-1.7\n...", "application/pdf")
    batch = await fetch(slack, http, [file])
    assert batch.data_uris == []
    assert batch.skipped == [SkippedFile("spec.pdf", "not an image (PDF)", file["id"])]
    assert slack.downloads == []


async def test_content_decides_not_the_claimed_mimetype(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    fake_png = slack.add_file("notes.png", b"just some notes\n", "image/png")
    real_png = slack.add_file("real.bin", png(), "application/octet-stream")
    pdf_as_png = slack.add_file("doc.png", b"%PDF-1.4 ...", "image/png")
    batch = await fetch(slack, http, [fake_png, real_png, pdf_as_png])
    assert [decode(uri)[0] for uri in batch.data_uris] == ["image/png"]
    reasons = {s.name: s.reason for s in batch.skipped}
    assert reasons["notes.png"] == "not an image (text)"
    assert reasons["doc.png"] == "not an image (PDF)"


async def test_bad_token_gets_the_login_page_reason(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    file = slack.add_file("shot.png", png(), "image/png")
    batch = await fetch(slack, http, [file], bot_token="xoxb-revoked")
    assert batch.data_uris == []
    assert batch.skipped[0].reason == LOGIN_PAGE_REASON
    assert [d.served for d in slack.downloads] == ["login_page"]


async def test_redirect_on_the_same_host_is_followed_with_the_token(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    content = png()
    file = slack.add_file("moved.png", content, "image/png", redirect=True)
    batch = await fetch(slack, http, [file])
    assert decode(batch.data_uris[0])[1] == content
    assert [(d.served, d.token) for d in slack.downloads] == [
        ("redirect", TOKEN),
        ("file", TOKEN),
    ]
    assert slack.downloads[1].path.startswith("/files-tmb/")


async def test_redirect_to_another_host_is_refused(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    elsewhere = f"http://localhost:{slack.port}/files-tmb/T0FAKETEAM-F1/x.png"
    file = slack.add_file("away.png", png(), "image/png", redirect=elsewhere)
    batch = await fetch(slack, http, [file])
    assert batch.data_uris == []
    assert "localhost" in batch.skipped[0].reason
    assert [d.served for d in slack.downloads] == ["redirect"]
    assert all(d.host.startswith("127.0.0.1") for d in slack.downloads)


async def test_url_on_another_host_is_refused_without_any_request(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    file = slack.add_file("shot.png", png(), "image/png")
    moved = dict(file, url_private=file["url_private"].replace("127.0.0.1", "localhost"))
    batch = await fetch(slack, http, [moved])
    assert batch.data_uris == []
    assert batch.skipped[0].reason == "not hosted by Slack, so it was not downloaded"
    assert slack.downloads == []


async def test_slack_connect_file_is_resolved_with_files_info(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    content = png()
    stub = slack.add_file("connect.png", content, "image/png", file_access="check_file_info")
    assert "url_private" not in stub
    client = slack.client()

    async def files_info(file_id: str) -> Mapping[str, Any]:
        return (await client.files_info(file=file_id)).data  # type: ignore[return-value]

    batch = await fetch(slack, http, [stub], files_info=files_info)
    assert decode(batch.data_uris[0])[1] == content
    assert [c.params["file"] for c in slack.calls_to("files.info")] == [stub["id"]]

    without = await fetch(slack, http, [stub])
    assert "files.info" in without.skipped[0].reason

    slack.fail_next("files.info", "file_not_found")
    failed = await fetch(slack, http, [stub], files_info=files_info)
    assert failed.skipped[0].reason == "Slack would not describe it (files.info: file_not_found)"


async def test_images_over_the_limit_are_listed(slack: FakeSlack, http: httpx.AsyncClient) -> None:
    files = [slack.add_file(f"shot{i}.png", png(10 + i, 10), "image/png") for i in range(4)]
    pdf = slack.add_file("late.pdf", b"%PDF-1.7", "application/pdf")
    batch = await fetch(slack, http, [*files, pdf], max_images=2)
    assert len(batch.data_uris) == 2
    assert [Image.open(io.BytesIO(decode(u)[1])).width for u in batch.data_uris] == [10, 11]
    assert [(s.name, s.reason) for s in batch.skipped] == [
        ("shot2.png", "over the limit of 2 images"),
        ("shot3.png", "over the limit of 2 images"),
        ("late.pdf", "not an image (PDF)"),
    ]
    assert len(slack.downloads) == 2


async def test_a_failed_image_lets_the_next_one_in(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    gone = slack.add_file("gone.png", png(), "image/png")
    slack.remove_file(gone["id"])
    ok = [slack.add_file(f"ok{i}.png", png(), "image/png") for i in range(2)]
    batch = await fetch(slack, http, [gone, *ok], max_images=2)
    assert len(batch.data_uris) == 2
    assert [(s.name, s.reason) for s in batch.skipped] == [
        ("gone.png", "could not be downloaded (HTTP 404)")
    ]


async def test_download_is_abandoned_past_the_hard_cap(
    slack: FakeSlack, http: httpx.AsyncClient
) -> None:
    file = slack.add_file("big.png", png(200, 200, noisy=True), "image/png")
    batch = await fetch(
        slack, http, [dict(file, size=None)], max_image_bytes=2048, max_download_bytes=10_000
    )
    assert batch.data_uris == []
    assert batch.skipped[0].reason.startswith("too large to process")


async def test_damaged_png_is_reported(slack: FakeSlack, http: httpx.AsyncClient) -> None:
    file = slack.add_file("broken.png", png()[:40], "image/png")
    batch = await fetch(slack, http, [file])
    assert batch.skipped[0].reason == "not a readable image (the file is damaged)"
