"""Slack files → checked, size-capped ``data:`` URIs for the Codegen API.

What goes in is what Slack said about the files attached to a message (:class:`SlackFile`);
what comes out is an :class:`ImageBatch`: the images as ``data:<mime>;base64,...`` URIs, and
every file that was left out with a sentence saying why, so the thread can be told.

Rules (docs/contracts.md: file bytes come only from Slack's file hosts):

* **Hosts.** Bytes are fetched, with the bot token, only from ``https://files.slack.com`` and
  from the scheme/host/port of ``SLACK_API_URL`` (that is how a self-hosted proxy or a local
  fake is reached). Nothing else, not even other ``*.slack.com`` hosts: the token is a secret
  and ``files.slack.com`` is the only host Slack documents for ``url_private``. A file whose
  URL is elsewhere is skipped without any request.
* **Redirects** are followed by hand (at most :data:`MAX_REDIRECTS` hops) and only to allowed
  hosts, each hop again with the token. A redirect anywhere else is refused, not followed
  without the token: Slack only redirects away from its file host to send a client to its
  sign-in page, and that is reported as such.
* **Size.** The body is streamed and abandoned past a hard cap (``max_download_bytes``,
  default the larger of 4 × ``max_image_bytes`` and 50 MB); bigger files are skipped. Images
  over ``max_image_bytes`` are scaled down with Pillow (in a worker thread) until they fit
  rather than dropped: an image with transparency stays PNG when a scaled PNG fits, otherwise
  it becomes JPEG at falling quality and size; an animated GIF keeps its first frame. The
  URI's mime type is the one of the final bytes. ``max_image_bytes`` caps the decoded bytes,
  not the base64 text.
* **Content.** The bytes decide, not the claimed mimetype: PNG, JPEG, GIF and WebP by their
  magic numbers. Slack's HTML sign-in page (what a token without access gets, with a 200) is
  recognised and reported as a token problem.
* **Slack Connect** files (``file_access == "check_file_info"``) carry no URL in the event;
  they are looked up with ``files_info(file_id)`` first.
* **Count.** At most ``max_images`` images; later ones are skipped as over the limit (files
  that are plainly not images keep that reason instead).
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    import httpx
    from PIL import Image

from bot.requests import SlackFile

log = logging.getLogger(__name__)

SLACK_FILE_HOSTS: frozenset[str] = frozenset({"files.slack.com"})
MAX_REDIRECTS = 5
MIN_DOWNLOAD_CAP = 50 * 1024 * 1024
# Pillow's own decompression-bomb threshold is ~89 M pixels; we stop well before that.
MAX_PIXELS = 50_000_000
SUPPORTED_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")

LOGIN_PAGE_REASON = "Slack returned a login page: the bot token cannot read this file"
LOGIN_REDIRECT_REASON = "Slack redirected to its sign-in page: the bot token cannot read this file"

FilesInfo = Callable[[str], Awaitable[Mapping[str, Any]]]

# Mime types that are plainly not images: skipped without downloading. Names for the reason.
_KIND_NAMES = {
    "application/pdf": "PDF",
    "application/zip": "ZIP archive",
    "application/json": "JSON",
    "application/msword": "Word document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word document",
    "application/vnd.ms-excel": "Excel spreadsheet",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel spreadsheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (
        "PowerPoint presentation"
    ),
    "text/plain": "text",
    "text/html": "HTML",
    "text/csv": "CSV",
    "image/svg+xml": "SVG",
    "image/heic": "HEIC",
    "image/heif": "HEIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
}
# Kinds that are images, just not ones the Codegen API takes.
_UNSUPPORTED_IMAGE_KINDS = {"SVG", "HEIC", "HEIF", "BMP", "TIFF"}
# Mime types that say nothing: the bytes have to decide.
_UNKNOWN_MIME_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


@dataclass(frozen=True)
class SkippedFile:
    """A file left out, with a sentence for the person who attached it."""

    name: str
    reason: str
    file_id: str | None = None


@dataclass(frozen=True)
class ImageBatch:
    data_uris: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- pure helpers ----------------------------------------------------------------------------


def sniff_image_type(data: bytes) -> str | None:
    """The mime type of a PNG, JPEG, GIF or WebP by its magic number, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def looks_like_html(data: bytes) -> bool:
    """True for an HTML page (Slack's sign-in page starts with ``<!DOCTYPE html``)."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _describe_bytes(data: bytes) -> str | None:
    if data.startswith(b"%PDF-"):
        return "PDF"
    if data.startswith(b"PK\x03\x04"):
        return "ZIP archive"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1"):
        return "HEIC"
    head = data[:256].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:2048].lower():
        return "SVG"
    if looks_like_html(data):
        return "HTML"
    try:
        sample = data[:2048].decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            sample = data[:2044].decode("utf-8")
        except UnicodeDecodeError:
            return None
    if sample and all(ch.isprintable() or ch in "\t\r\n\f" for ch in sample):
        return "text"
    return None


def _not_an_image(kind: str) -> str:
    if kind in _UNSUPPORTED_IMAGE_KINDS:
        return f"not a supported image ({kind}); send PNG, JPEG, GIF or WebP"
    return f"not an image ({kind})"


def _kind_of_mime(mime: str | None) -> str | None:
    if not mime:
        return None
    mime = mime.split(";", 1)[0].strip().lower()
    if mime in _KIND_NAMES:
        return _KIND_NAMES[mime]
    if mime.startswith("video/"):
        return "video"
    if mime.startswith("audio/"):
        return "audio"
    return mime


def _claims_non_image(file: SlackFile) -> str | None:
    """The reason to skip a file whose mimetype plainly says it is no image we can use."""
    mime = (file.mimetype or "").split(";", 1)[0].strip().lower()
    if mime in _UNKNOWN_MIME_TYPES or mime in SUPPORTED_MIME_TYPES:
        return None
    if mime.startswith("image/") and mime not in _KIND_NAMES:
        return None  # an image type we do not know by name: let the bytes decide
    kind = _kind_of_mime(mime)
    return _not_an_image(kind) if kind else None


def _reason_for_unknown_bytes(data: bytes, claimed: str | None) -> str:
    kind = _describe_bytes(data)
    if kind is not None:
        return _not_an_image(kind)
    claimed = (claimed or "").split(";", 1)[0].strip().lower()
    if claimed.startswith("image/"):
        return f"not an image (it claims to be {claimed}, but the content is not)"
    return _not_an_image(_kind_of_mime(claimed) or "unknown format")


def _default_port(scheme: str) -> int | None:
    return {"https": 443, "http": 80}.get(scheme)


def is_allowed_host(url: str, *, slack_api_url: str) -> bool:
    """May the bot token be sent to `url`?

    Yes for ``https://files.slack.com`` and for the exact scheme, host and port of
    `slack_api_url`; no for everything else (other hosts, other ports, credentials in the
    URL, plain http to files.slack.com)."""
    try:
        target = urlsplit(url)
        api = urlsplit(slack_api_url)
        target_port = target.port or _default_port(target.scheme)
        api_port = api.port or _default_port(api.scheme)
    except ValueError:
        return False
    if target.username is not None or target.password is not None:
        return False
    host = (target.hostname or "").lower()
    if not host or target.scheme not in ("https", "http"):
        return False
    if target.scheme == "https" and host in SLACK_FILE_HOSTS and target_port == 443:
        return True
    return (
        target.scheme == api.scheme
        and host == (api.hostname or "").lower()
        and target_port == api_port
    )


def to_data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _human_bytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.0f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


# -- image processing (runs in a worker thread) -----------------------------------------------


def _has_transparency(image: Image.Image) -> bool:
    """True if some pixel is not fully opaque (an opaque RGBA screenshot is not)."""
    if image.mode == "P" and "transparency" in image.info:
        return True
    if image.mode not in ("RGBA", "LA", "PA"):
        return False
    extrema = image.getchannel("A").getextrema()
    return isinstance(extrema[0], int | float) and extrema[0] < 255


def _encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _scaled(image: Image.Image, scale: float) -> Image.Image:
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    from PIL import Image

    return image.resize(size, Image.Resampling.LANCZOS)


def check_image(data: bytes) -> None:
    """Decode the header and structure; raise _Skip for a broken or enormous image."""
    # Pillow is imported by the first image, not at start: most requests carry none.
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise _Skip(f"too large to process ({image.width}×{image.height} pixels)")
            image.verify()
    except _Skip:
        raise
    except Image.DecompressionBombError as exc:
        raise _Skip("too large to process (its pixels would not fit in memory)") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _Skip("not a readable image (the file is damaged)") from exc


def shrink_image(data: bytes, max_bytes: int) -> tuple[bytes, str]:
    """Re-encode and scale `data` down until it fits in `max_bytes`; returns (bytes, mime).

    An image with transparency stays PNG if a (scaled) PNG fits; everything else becomes
    JPEG (transparency flattened on white), first at full size with falling quality, then
    scaled down. Raises _Skip if nothing fits."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > MAX_PIXELS:
                raise _Skip(f"too large to process ({opened.width}×{opened.height} pixels)")
            opened.seek(0)  # animated GIF/WebP/PNG: the first frame
            image = ImageOps.exif_transpose(opened)
            image.load()
    except _Skip:
        raise
    except Image.DecompressionBombError as exc:
        raise _Skip("too large to process (its pixels would not fit in memory)") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _Skip("not a readable image (the file is damaged)") from exc

    # Bytes scale roughly with pixels: start at the scale the ratio suggests, then correct.
    ratio = max_bytes / max(len(data), 1)

    if _has_transparency(image):
        rgba = image.convert("RGBA")
        # A badly compressed PNG may fit at full size once re-encoded: try that when close.
        scale = 1.0 if ratio >= 0.5 else math.sqrt(ratio) * 0.9
        for _ in range(4):
            encoded = _encode(_scaled(rgba, scale), "PNG", optimize=False, compress_level=9)
            if len(encoded) <= max_bytes:
                return encoded, "image/png"
            scale *= math.sqrt(max_bytes / len(encoded)) * 0.9
            if scale * max(rgba.width, rgba.height) < 256:
                break
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        rgb = background
    else:
        rgb = image.convert("RGB")

    encoded = _encode(rgb, "JPEG", quality=85, optimize=True)
    if len(encoded) <= max_bytes:
        return encoded, "image/jpeg"
    if len(encoded) <= 2 * max_bytes:  # close: a lower quality may do without losing pixels
        for quality in (75, 65):
            encoded = _encode(rgb, "JPEG", quality=quality, optimize=True)
            if len(encoded) <= max_bytes:
                return encoded, "image/jpeg"
    scale = 1.0
    quality = 75
    for _ in range(12):
        scale *= min(0.9, math.sqrt(max_bytes / len(encoded)) * 0.95)
        encoded = _encode(_scaled(rgb, scale), "JPEG", quality=quality, optimize=True)
        if len(encoded) <= max_bytes:
            return encoded, "image/jpeg"
        quality = max(50, quality - 5)
    raise _Skip(f"too large: could not be reduced below {_human_bytes(max_bytes)}")


# -- downloading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    index: int
    file: SlackFile
    name: str


async def _resolve(file: SlackFile, files_info: FilesInfo | None) -> SlackFile:
    """Complete a Slack Connect stub (or a file without a URL) with files.info."""
    access = file.file_access
    if access == "access_denied":
        raise _Skip("the bot has no access to this file (shared from another organization)")
    if access == "hidden_by_limit":
        raise _Skip("hidden by the workspace's Slack plan limits")
    needs_lookup = access == "check_file_info" or not (
        file.url_private or file.url_private_download
    )
    if not needs_lookup:
        return file
    if files_info is None:
        raise _Skip("Slack did not give its address, and files.info is not available")
    try:
        answer = await files_info(file.id)
    except Exception as exc:
        # The gateway's SlackError carries Slack's code; a bare slack_sdk error its response.
        response: Any = getattr(exc, "response", None)
        error = getattr(exc, "error", None) or (
            response.get("error") if hasattr(response, "get") else None
        )
        reason = f"Slack would not describe it (files.info: {error or type(exc).__name__})"
        raise _Skip(reason) from exc
    described = answer.get("file", answer)
    if not isinstance(described, Mapping):
        raise _Skip("Slack would not describe it (files.info gave no file)")
    resolved = SlackFile.model_validate({**file.model_dump(exclude_none=True), **described})
    if resolved.file_access == "check_file_info":
        resolved = resolved.model_copy(update={"file_access": None})
    if not (resolved.url_private or resolved.url_private_download):
        raise _Skip("Slack gave no download address for it")
    return resolved


async def _download(
    url: str,
    *,
    http: httpx.AsyncClient,
    bot_token: str,
    slack_api_url: str,
    cap: int,
) -> bytes:
    import httpx  # already loaded: `http` is one of its clients

    headers = {"Authorization": f"Bearer {bot_token}"}
    for _hop in range(MAX_REDIRECTS + 1):
        if not is_allowed_host(url, slack_api_url=slack_api_url):
            raise _Skip("not hosted by Slack, so it was not downloaded")
        try:
            async with http.stream("GET", url, headers=headers, follow_redirects=False) as resp:
                if resp.is_redirect:
                    location = resp.headers.get("location")
                    if not location:
                        raise _Skip(f"could not be downloaded (HTTP {resp.status_code})")
                    next_url = urljoin(url, location)
                    if not is_allowed_host(next_url, slack_api_url=slack_api_url):
                        host = urlsplit(next_url).hostname or "?"
                        if host == "slack.com" or host.endswith(".slack.com"):
                            raise _Skip(LOGIN_REDIRECT_REASON)
                        raise _Skip(f"Slack redirected the download to {host}, which was refused")
                    url = next_url
                    continue
                if resp.status_code != 200:
                    raise _Skip(f"could not be downloaded (HTTP {resp.status_code})")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise _Skip(f"too large to process (over {_human_bytes(cap)})")
                chunks: list[bytes] = []
                total = 0
                async for chunk in resp.aiter_bytes():
                    total += len(chunk)
                    if total > cap:
                        raise _Skip(f"too large to process (over {_human_bytes(cap)})")
                    chunks.append(chunk)
                body = b"".join(chunks)
                content_type = resp.headers.get("content-type", "").lower()
                if looks_like_html(body) or (
                    content_type.startswith("text/html") and sniff_image_type(body) is None
                ):
                    raise _Skip(LOGIN_PAGE_REASON)
                return body
        except httpx.TimeoutException as exc:
            raise _Skip("could not be downloaded (Slack took too long)") from exc
        except httpx.HTTPError as exc:
            raise _Skip(f"could not be downloaded ({type(exc).__name__})") from exc
    raise _Skip(f"could not be downloaded (more than {MAX_REDIRECTS} redirects)")


async def _one_image(
    candidate: _Candidate,
    *,
    http: httpx.AsyncClient,
    bot_token: str,
    slack_api_url: str,
    max_image_bytes: int,
    cap: int,
    files_info: FilesInfo | None,
) -> str:
    file = await _resolve(candidate.file, files_info)
    reason = _claims_non_image(file)
    if reason is not None:
        raise _Skip(reason)
    if file.size is not None and file.size > cap:
        raise _Skip(f"too large to process (over {_human_bytes(cap)})")
    url = file.url_private or file.url_private_download
    assert url is not None  # _resolve guarantees one
    data = await _download(
        url, http=http, bot_token=bot_token, slack_api_url=slack_api_url, cap=cap
    )
    mime = sniff_image_type(data)
    if mime is None:
        raise _Skip(_reason_for_unknown_bytes(data, file.mimetype))
    if len(data) <= max_image_bytes:
        await asyncio.to_thread(check_image, data)
        return to_data_uri(data, mime)
    shrunk, _ = await asyncio.to_thread(shrink_image, data, max_image_bytes)
    final_mime = sniff_image_type(shrunk) or "application/octet-stream"
    log.info(
        "image %s scaled down from %d to %d bytes (%s)",
        file.id,
        len(data),
        len(shrunk),
        final_mime,
    )
    return to_data_uri(shrunk, final_mime)


async def fetch_images(
    files: Sequence[SlackFile],
    *,
    http: httpx.AsyncClient,
    bot_token: str,
    slack_api_url: str,
    max_images: int,
    max_image_bytes: int,
    files_info: FilesInfo | None = None,
    max_download_bytes: int | None = None,
) -> ImageBatch:
    """Download, check and cap the images among `files`, in their order.

    `files_info(file_id)` looks a file up in Slack (files.info); it may return the whole
    answer (``{"ok": true, "file": {...}}``) or just the file object. Every file that is not
    used is in ``skipped`` with the reason; nothing raises for a bad file."""
    cap = max_download_bytes or max(4 * max_image_bytes, MIN_DOWNLOAD_CAP)
    skipped: dict[int, SkippedFile] = {}
    uris: dict[int, str] = {}

    candidates: list[_Candidate] = []
    for index, file in enumerate(files):
        name = file.name or file.id
        reason = _claims_non_image(file)
        if reason is not None:
            skipped[index] = SkippedFile(name, reason, file.id)
        else:
            candidates.append(_Candidate(index, file, name))

    async def attempt(candidate: _Candidate) -> None:
        try:
            uris[candidate.index] = await _one_image(
                candidate,
                http=http,
                bot_token=bot_token,
                slack_api_url=slack_api_url,
                max_image_bytes=max_image_bytes,
                cap=cap,
                files_info=files_info,
            )
        except _Skip as skip:
            log.info("file %s skipped: %s", candidate.file.id, skip.reason)
            skipped[candidate.index] = SkippedFile(candidate.name, skip.reason, candidate.file.id)
        except Exception:
            # Whatever else a decoder throws: this file is skipped, the request goes on (raised,
            # it would fail the whole request again on every retry).
            log.warning("file %s could not be processed", candidate.file.id, exc_info=True)
            skipped[candidate.index] = SkippedFile(
                candidate.name, "could not be processed as an image", candidate.file.id
            )

    # Fetch in waves of as many as may still be used, so a failed one lets the next one in,
    # and never more downloads than images allowed at a time.
    pending = list(candidates)
    while pending and len(uris) < max_images:
        wave, pending = pending[: max_images - len(uris)], pending[max_images - len(uris) :]
        await asyncio.gather(*(attempt(candidate) for candidate in wave))
    for candidate in pending:
        skipped[candidate.index] = SkippedFile(
            candidate.name, f"over the limit of {max_images} images", candidate.file.id
        )

    return ImageBatch(
        data_uris=[uris[i] for i in sorted(uris)],
        skipped=[skipped[i] for i in sorted(skipped)],
    )
