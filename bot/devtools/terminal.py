"""Slack as a terminal shows it: Block Kit → plain text, and a view that prints every message
the bot posts or edits, its reactions and its ephemeral answers, as a person in the channel
would see them. The console hangs the view on the fake Slack as an observer."""

from __future__ import annotations

import re
from typing import Any, TextIO

from bot.devtools.slack import FakeSlack, SlackCall
from bot.slack.render import RenderedMessage
from bot.slack.text import mrkdwn_to_text

REACTION_EMOJI = {
    "eyes": "👀",
    "hourglass_flowing_sand": "⏳",
    "white_check_mark": "✅",
    "x": "❌",
    "black_square_for_stop": "⏹️",
}


def render_text(message: RenderedMessage) -> str:
    """Block Kit → plain text for the terminal."""
    if not message.blocks:
        return mrkdwn_to_text(message.text)
    lines: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "section":
            if block.get("text"):
                lines.append(_text_of(block["text"]))
            for field in block.get("fields", []):
                lines.append(f"  {_text_of(field)}")
            accessory = block.get("accessory")
            if isinstance(accessory, dict):
                lines.append(_element_text(accessory))
        elif kind == "header":
            title = _text_of(block.get("text"))
            lines.extend([title, "=" * min(len(title), 60)])
        elif kind == "context":
            parts = [_element_text(e) for e in block.get("elements", [])]
            lines.append(" · ".join(p for p in parts if p))
        elif kind == "actions":
            parts = [_element_text(e) for e in block.get("elements", [])]
            lines.append("  ".join(p for p in parts if p))
        elif kind == "divider":
            lines.append("-" * 40)
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        elif kind == "markdown":
            lines.append(str(block.get("text", "")))
        elif kind == "plan":  # a card's latest steps, one task card each
            lines.append(str(block.get("title", "")))
            for task in block.get("tasks", []):
                mark = _TASK_MARKS.get(str(task.get("status")), "·")
                lines.append(f"  {mark} {task.get('title', '')}")
    return "\n".join(lines)


_TASK_MARKS = {"in_progress": "▸", "complete": "✓", "pending": "·", "error": "✗"}


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        text = obj.get("text", "")
        if obj.get("type") == "mrkdwn":
            return mrkdwn_to_text(str(text))
        return str(text)
    return ""


def _element_text(element: dict[str, Any]) -> str:
    if element.get("type") == "button":
        label = f"[{_text_of(element.get('text'))}]"
        return f"{label} {element['url']}" if element.get("url") else label
    if element.get("type") == "image":
        return f"[image: {element.get('alt_text', '')}]"
    return _text_of(element)


_CHANNEL_ID = re.compile(r"#([CGD][A-Z0-9]{2,})\b")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")


class TerminalView:
    """Prints the conversation; numbers threads so a person can reply in one."""

    def __init__(
        self,
        out: TextIO,
        slack: FakeSlack,
        *,
        channel_id: str,
        channel_name: str,
        user_id: str,
        user_name: str,
        bot_name: str,
    ) -> None:
        self.out = out
        self.slack = slack
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.user_id = user_id
        self.user_name = user_name
        self.bot_name = bot_name
        self.threads: dict[tuple[str, str], int] = {}
        self.latest_thread: tuple[str, str] | None = None

    # -- threads -----------------------------------------------------------------------------

    def touch_thread(self, channel: str, root_ts: str) -> int:
        key = (channel, root_ts)
        if key not in self.threads:
            self.threads[key] = len(self.threads) + 1
        self.latest_thread = key
        return self.threads[key]

    def thread_by_number(self, number: int) -> tuple[str, str] | None:
        return next((key for key, n in self.threads.items() if n == number), None)

    def where(self, channel: str, thread_ts: str | None) -> str:
        place = f"#{self.channel_name}" if channel == self.channel_id else "DM"
        if thread_ts:
            number = self.threads.get((channel, thread_ts))
            return f"{place} · thread {number}" if number else place
        return place

    # -- printing ----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def show(self, header: str, body: str) -> None:
        lines = [f"── {header} " + "─" * max(3, 74 - len(header))]
        lines += [f"   {line}" if line else "" for line in body.splitlines()]
        self.say("\n".join(lines))

    def render(self, message: dict[str, Any]) -> str:
        text = str(message.get("text") or "")
        blocks = message.get("blocks")
        if blocks:
            return self._names(render_text(RenderedMessage(text=text, blocks=blocks)))
        return self.plain(text)

    def plain(self, mrkdwn: str) -> str:
        return self._names(mrkdwn_to_text(mrkdwn))

    def _names(self, text: str) -> str:
        """Terminal touches on top of mrkdwn_to_text: names for ids, no bold stars, quote bars."""
        text = text.replace(f"@{self.user_id}", f"@{self.user_name}")
        text = text.replace(f"@{self.slack.bot_user_id}", f"@{self.bot_name}")
        for user_id, user in self.slack.users.items():
            text = text.replace(f"@{user_id}", f"@{user.get('name') or user_id}")
        text = _CHANNEL_ID.sub(lambda m: f"#{self._channel_name(m.group(1))}", text)
        lines = []
        for line in text.splitlines():
            if line.startswith("&gt;") or line.startswith(">"):
                line = "│ " + line.removeprefix("&gt;").removeprefix(">").lstrip()
            lines.append(_BOLD.sub(r"\1", line))
        return "\n".join(lines)

    def _channel_name(self, channel_id: str) -> str:
        if channel_id == self.channel_id:
            return self.channel_name
        channel = self.slack.channels.get(channel_id) or {}
        return str(channel.get("name") or channel_id)

    # -- the fake Slack's observer -----------------------------------------------------------

    def __call__(self, call: SlackCall, answer: dict[str, Any]) -> None:
        method = call.method
        if method == "chat.postMessage":
            channel, ts = str(answer["channel"]), str(answer["ts"])
            thread_ts = call.get("thread_ts") or None
            number = self.touch_thread(channel, thread_ts or ts)
            header = f"{self.bot_name} · {self.where(channel, thread_ts)}"
            if not thread_ts:
                header += f" · starts thread {number}"
            self.show(header, self.render(self.slack.message(channel, ts)))
        elif method == "chat.update":
            channel, ts = str(answer["channel"]), str(answer["ts"])
            message = self.slack.message(channel, ts)
            thread_ts = message.get("thread_ts")
            where = self.where(channel, thread_ts if thread_ts != ts else None)
            self.show(f"{self.bot_name} · {where} · card updated", self.render(message))
        elif method == "views.open" and answer.get("ok"):
            view = answer.get("view") or {}
            title = (view.get("title") or {}).get("text", "a form")
            body = self.render({"text": "", "blocks": view.get("blocks") or []})
            self.show(f"{self.bot_name} · form: {title}", body + "\n(type: submit <text>)")
        elif method in ("chat.postEphemeral", "response_url") and call.get("text"):
            self.show(f"{self.bot_name} · only visible to you", self.plain(str(call.get("text"))))
        elif method == "reactions.add":
            channel, ts = str(call.get("channel")), str(call.get("timestamp"))
            message = self.slack.message(channel, ts)
            name = str(call.get("name") or "")
            emoji = REACTION_EMOJI.get(name, f":{name}:")
            whose = (
                "your message"
                if message.get("user") == self.user_id
                else "the thread's first message"
            )
            where = self.where(channel, message.get("thread_ts") or ts)
            self.say(f"   ({self.bot_name} reacted {emoji} to {whose} in {where})")
        elif method == "reactions.remove" and answer.get("ok"):
            channel, ts = str(call.get("channel")), str(call.get("timestamp"))
            name = str(call.get("name") or "")
            emoji = REACTION_EMOJI.get(name, f":{name}:")
            message = self.slack.message(channel, ts)
            whose = (
                "your message"
                if message.get("user") == self.user_id
                else "the thread's first message"
            )
            where = self.where(channel, message.get("thread_ts") or ts)
            self.say(f"   ({self.bot_name} took back {emoji} from {whose} in {where})")
