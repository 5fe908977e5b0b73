"""One-shot instructions for the emulator's next calls (see the package docstring)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScriptedFailure:
    status: int
    message: str | None = None
    retry_after: float | str | None = None
    detail: list[dict[str, Any]] | None = None
    after_creating: bool = False
    kind: str | None = None  # reads: only a read of this kind (None: the next read)


class EmulatorScript:
    """One-shot instructions for the next calls; see the module docstring."""

    def __init__(self) -> None:
        self.create_failures: deque[ScriptedFailure] = deque()
        self.resume_failures: deque[ScriptedFailure] = deque()
        self.read_failures: deque[ScriptedFailure] = deque()
        self.stop_failures: deque[ScriptedFailure] = deque()
        self.pr_edit_failures: deque[ScriptedFailure] = deque()
        # The next pull request edits answer 200 with `success: false` and this `error`.
        self.pr_edit_refusals: deque[str] = deque()
        self.create_delays: deque[float] = deque()
        self.read_delays: deque[float] = deque()
        self.create_hangs: deque[float] = deque()
        self.run_endings: deque[str] = deque()
        self.resume_endings: deque[str] = deque()

    def fail_next_create(
        self,
        status: int,
        *,
        message: str | None = None,
        retry_after: float | str | None = None,
        detail: list[dict[str, Any]] | None = None,
        after_creating: bool = False,
        times: int = 1,
    ) -> None:
        failure = ScriptedFailure(status, message, retry_after, detail, after_creating)
        self.create_failures.extend([failure] * times)

    def fail_next_resume(
        self,
        status: int,
        *,
        message: str | None = None,
        retry_after: float | str | None = None,
        detail: list[dict[str, Any]] | None = None,
        times: int = 1,
    ) -> None:
        self.resume_failures.extend([ScriptedFailure(status, message, retry_after, detail)] * times)

    def fail_next_read(
        self,
        status: int,
        *,
        message: str | None = None,
        retry_after: float | str | None = None,
        times: int = 1,
        kind: str | None = None,
    ) -> None:
        """The next read (of `kind`, e.g. "list_users", when given) answers `status`."""
        failure = ScriptedFailure(status, message, retry_after, kind=kind)
        self.read_failures.extend([failure] * times)

    def take_read_failure(self, kind: str) -> ScriptedFailure | None:
        """The first scripted read failure meant for a read of `kind`, removed."""
        for failure in self.read_failures:
            if failure.kind in (None, kind):
                self.read_failures.remove(failure)
                return failure
        return None

    def fail_next_stop(self, status: int, *, message: str | None = None, times: int = 1) -> None:
        self.stop_failures.extend([ScriptedFailure(status, message)] * times)

    def fail_next_pr_edit(
        self,
        status: int,
        *,
        message: str | None = None,
        retry_after: float | str | None = None,
        times: int = 1,
    ) -> None:
        """The next pull request edit answers `status` (403: no write permission, 429, …)."""
        failure = ScriptedFailure(status, message, retry_after)
        self.pr_edit_failures.extend([failure] * times)

    def refuse_next_pr_edit(self, error: str, *, times: int = 1) -> None:
        """The next pull request edit answers 200 `{"success": false, "error": error}`."""
        self.pr_edit_refusals.extend([error] * times)

    def delay_next_create(self, seconds: float) -> None:
        self.create_delays.append(seconds)

    def delay_next_read(self, seconds: float) -> None:
        self.read_delays.append(seconds)

    def create_then_hang(self, seconds: float) -> None:
        self.create_hangs.append(seconds)

    def next_run_ends(self, status: str) -> None:
        self.run_endings.append(status)

    def next_resume_ends(self, status: str) -> None:
        self.resume_endings.append(status)
