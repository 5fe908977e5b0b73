"""Secrets the bot keeps at rest (people's Codegen API tokens), sealed with Fernet.

    box = SecretBox.from_settings(settings)     # None without BOT_SECRET_KEY: no login
    sealed = box.seal(token); box.open(sealed) == token

BOT_SECRET_KEY holds one or more Fernet keys, comma-separated: the first seals, every one
opens. A key is rotated in two steps: put the new key first (the old one after it), run
`codegen-bot rotate-key` to seal every stored secret again under the new key, then drop the
old key. Nothing here logs or returns a secret in a message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.errors import ConfigError

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

# cryptography is imported where a key is used, not at start (it costs start-up time, and a
# bot without BOT_SECRET_KEY never needs it).

__all__ = ["SecretBox", "SecretUnreadable", "fingerprint", "new_key"]


class SecretUnreadable(Exception):
    """A sealed secret that none of the keys opens (sealed under a key since removed)."""


def new_key() -> str:
    """A fresh key for BOT_SECRET_KEY."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def fingerprint(secret: str) -> str:
    """A short digest naming a secret in budgets and logs without revealing it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class SecretBox:
    def __init__(self, keys: Sequence[str]) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        if not keys:
            raise ConfigError("BOT_SECRET_KEY is empty")
        try:
            self._fernet: MultiFernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
        except (ValueError, TypeError):
            raise ConfigError(
                "BOT_SECRET_KEY is not a Fernet key (32 url-safe base64-encoded bytes); "
                "`codegen-bot rotate-key` prints a new one"
            ) from None
        self.key_count = len(keys)

    @classmethod
    def from_keys(cls, value: str | None) -> SecretBox | None:
        """From BOT_SECRET_KEY's value; None when it is unset."""
        if value is None or not value.strip():
            return None
        return cls([key for key in value.split(",") if key.strip()])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("no key in BOT_SECRET_KEY opens this secret") from None

    def reseal(self, sealed: str) -> str:
        """The same secret sealed under the first key (a rotation's second step)."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("no key in BOT_SECRET_KEY opens this secret") from None
