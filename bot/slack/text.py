"""Slack text, in one place: escaping, un-escaping, message timestamps, mrkdwn.

Pure functions. Slack escapes `&`, `<` and `>` in the text it sends and gives them meaning in
the text it receives; everything a person typed or an agent wrote goes through `slack_escape`
before it reaches mrkdwn (so a prompt cannot ping `<!channel>` or forge a link), and through
`slack_unescape` before it reaches Codegen (which should read what the person typed).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "format_duration",
    "markdown_to_mrkdwn",
    "mrkdwn_to_text",
    "plural",
    "safe_url",
    "sentence",
    "shorten",
    "shorten_mrkdwn",
    "slack_escape",
    "slack_unescape",
    "strip_invisible",
    "ts_key",
]

BUTTON_URL_LIMIT = 3000


def slack_escape(text: str) -> str:
    """Escape the three characters mrkdwn gives meaning to (`&`, `<`, `>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_unescape(text: str) -> str:
    """What the person typed, from the text Slack sent (the inverse of slack_escape)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# Letters and symbols that render as nothing (Hangul fillers, the braille blank, the Mongolian
# vowel separator); format characters (category Cf: U+200B, U+2060, U+FEFF, bidi marks) are
# found by category.
_BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")


def _invisible(char: str) -> bool:
    return char.isspace() or char in _BLANK_GLYPHS or unicodedata.category(char) == "Cf"


def strip_invisible(text: str) -> str:
    """`text` without the whitespace and invisible characters at its ends: a prompt of only
    zero-width characters is empty. Inside the text they stay (a ZWJ joins emoji)."""
    start, end = 0, len(text)
    while start < end and _invisible(text[start]):
        start += 1
    while end > start and _invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def ts_key(ts: str) -> tuple[int, int]:
    """Slack timestamps ("1700000000.000100") in order, without float rounding; (0, 0) for a
    value that is not one."""
    seconds, _, fraction = ts.partition(".")
    try:
        return int(seconds or 0), int(fraction.ljust(6, "0")[:6] or 0)
    except ValueError:
        return 0, 0


def shorten(text: str, limit: int, *, suffix: str = "…") -> str:
    """Cut plain text to at most `limit` characters, at a word boundary when one is near."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit <= len(suffix):
        return text[:limit]
    room = limit - len(suffix)
    cut = text[:room]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= room * 0.8:
        cut = cut[:space]
    return cut.rstrip() + suffix


def shorten_mrkdwn(text: str, limit: int) -> str:
    """`shorten` for mrkdwn: the cut never falls inside a code span, a `<…>` link or mention,
    or an `&…;` entity (an unclosed one is dropped whole rather than broken)."""
    short = shorten(text, limit)
    if short == text:
        return text
    kept = short.removesuffix("…")
    for opener, closer in (("<", ">"), ("&", ";")):
        start = kept.rfind(opener)
        if start != -1 and closer not in kept[start:]:
            kept = kept[:start]
    if kept.count("`") % 2:
        kept = kept[: kept.rfind("`")]
    return kept.rstrip(" ,;:(") + "…"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """1 → "1 attachment", 3 → "3 attachments" (never "attachment(s)")."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


def sentence(text: str) -> str:
    """`text` ending as a sentence does: a period added unless it ends with punctuation."""
    text = text.rstrip()
    if not text or text[-1] in ".!?…:)`\"'":
        return text
    return text + "."


def format_duration(seconds: float) -> str:
    """40 → "40 s", 130 → "2 min", 3900 → "1 h 5 min", 97200 → "1 d 3 h"."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def safe_url(url: str | None) -> str | None:
    """A URL that can stand inside `<url|text>`; None when there is nothing usable."""
    if not url:
        return None
    url = url.strip()
    if not re.match(r"^https?://", url, re.IGNORECASE) or len(url) > BUTTON_URL_LIMIT:
        return None
    return (
        url.replace(" ", "%20")
        .replace("|", "%7C")
        .replace("<", "%3C")
        .replace(">", "%3E")
        .replace("&", "&amp;")
    )


# -- markdown (what agents write) → mrkdwn ----------------------------------------------------

_MD_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def markdown_to_mrkdwn(text: str) -> str:
    """GitHub-flavoured markdown (what agents write) → escaped Slack mrkdwn.

    Bold, italics, strike-through, headings, bullets and `[text](url)` links are converted; code
    spans and fences are only escaped.
    """
    text = text.replace("\x01", "")
    out: list[str] = []
    pos = 0
    for code in _MD_CODE.finditer(text):
        out.append(_md_prose(text[pos : code.start()]))
        out.append(slack_escape(code.group()))
        pos = code.end()
    out.append(_md_prose(text[pos:]))
    return "".join(out)


def _md_prose(text: str) -> str:
    text = slack_escape(text)

    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2).replace("&amp;", "&")
        safe = safe_url(url)
        return f"<{safe}|{label}>" if safe else match.group(0)

    text = re.sub(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)", link, text)
    text = re.sub(r"^[ \t]{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", "\x01\\1\x01", text, flags=re.MULTILINE)
    text = re.sub(r"^([ \t]*)[-*+][ \t]+", "\\1• ", text, flags=re.MULTILINE)
    text = re.sub(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", "\x01\\2\x01", text)
    text = re.sub(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])", "_\\1_", text)
    text = re.sub(r"~~(?=\S)(.+?)(?<=\S)~~", "~\\1~", text)
    return text.replace("\x01", "*")


# -- mrkdwn → plain text --------------------------------------------------------------------

_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def mrkdwn_to_text(mrkdwn: str) -> str:
    """mrkdwn → readable plain text (links as `text (url)`, mentions as `@id`)."""

    def token(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return f"@{label.lstrip('@')}" if label else target
        if target.startswith("#"):
            return f"#{label}" if label else target
        if target.startswith("!"):
            if label:
                return label
            return "@" + target[1:].split("^")[0]
        url = target.replace("&amp;", "&")
        if label and label != target:
            return f"{label} ({url})"
        return url

    return slack_unescape(_LINK.sub(token, mrkdwn))
