"""The parts the benches stand on: a clock shared between processes, runs seeded in flight."""

from __future__ import annotations

from pathlib import Path

from bench.shared_clock import SharedClock
from bot.devtools.emulator import EmulatorState


def test_a_shared_clock_moves_for_every_holder(tmp_path: Path) -> None:
    mover = SharedClock(tmp_path / "clock", create=True)
    watcher = SharedClock(tmp_path / "clock")  # as another process opens it
    began = watcher.now()
    mover.advance(2.5)
    assert (watcher.now() - began).total_seconds() == 2.5
    mover.advance_to(began)  # never back
    assert (watcher.now() - began).total_seconds() == 2.5
    mover.close()
    watcher.close()


def test_a_seeded_run_is_in_flight_with_no_call_on_record() -> None:
    emulator = EmulatorState()
    run = emulator.seed_run(
        "task", metadata={"request_id": "r1"}, status="ACTIVE", base_url="http://emu"
    )
    assert emulator.status_of(run.id) == "ACTIVE"
    assert run.metadata == {"request_id": "r1"}
    assert run.web_url == f"http://emu/runs/{run.id}"
    assert emulator.received == []
