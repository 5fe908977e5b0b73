"""When a run looks stuck, and when the bot stops following it. Pure: `now` is an argument."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.codegen.models import StatusKind, classify_status
from bot.slack.text import format_duration


@dataclass(frozen=True)
class Verdict:
    note: str | None = None
    kind: str | None = None  # stable name of the note: the card is edited when it changes
    stop: bool = False


@dataclass(frozen=True)
class Watchdog:
    pending_alert: timedelta = timedelta(minutes=15)
    stale_alert: timedelta = timedelta(hours=3)
    max_age: timedelta = timedelta(hours=24)

    def verdict(
        self, *, status: str | None, started_at: datetime, last_change_at: datetime, now: datetime
    ) -> Verdict:
        """A note for the card, and whether tracking stops."""
        age = now - started_at
        if age >= self.max_age:
            return Verdict(
                f"The bot stopped following this run after {format_duration(age.total_seconds())}"
                "; open it in Codegen for its current state.",
                "max_age",
                True,
            )
        if (status or "").upper() == "PENDING" and age >= self.pending_alert:
            return Verdict(
                f"Still PENDING after {format_duration(age.total_seconds())}: Codegen has not "
                "started it yet.",
                "pending",
            )
        quiet = now - last_change_at
        waiting = classify_status(status) is StatusKind.WAITING_FOR_INPUT
        if quiet >= self.stale_alert and not waiting:
            return Verdict(
                f"No change for {format_duration(quiet.total_seconds())}; it may be stuck.",
                "stale",
            )
        return Verdict()
