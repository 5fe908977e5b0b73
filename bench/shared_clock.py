"""A fake clock shared by processes: the bot in one, the emulator and the fake Slack in
another, all reading the same moment from one small file mapped into memory. Only the bot's
process moves it; the others see each move at once, with no call between them.
"""

from __future__ import annotations

import mmap
import struct
from datetime import datetime, timedelta
from pathlib import Path

from bot.clock import FakeClock

_OFFSET = struct.Struct("d")  # seconds since the clock's start


class SharedClock(FakeClock):
    def __init__(self, path: Path, *, create: bool = False) -> None:
        super().__init__()
        self._start = self._now
        if create:
            path.write_bytes(_OFFSET.pack(0.0))
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), _OFFSET.size)

    def now(self) -> datetime:
        (offset,) = _OFFSET.unpack_from(self._map, 0)
        return self._start + timedelta(seconds=offset)

    def advance(self, seconds: float) -> datetime:
        return self._set(self.now() + timedelta(seconds=seconds))

    def advance_to(self, moment: datetime) -> datetime:
        return self._set(max(moment, self.now()))

    def _set(self, moment: datetime) -> datetime:
        _OFFSET.pack_into(self._map, 0, (moment - self._start).total_seconds())
        return moment

    def close(self) -> None:
        self._map.close()
        self._file.close()
