"""`codegen-bot console` as a person runs it: a real process, its standard input piped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.process.support import bot_env


def test_piped_into_codegen_bot_console(tmp_path: Path) -> None:
    """`echo '/codegen …' | codegen-bot console` shows a whole run, queued to complete."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "console",
            "--emulator-pending",
            "0.2",
            "--emulator-active",
            "0.4",
            "--wait",
            "60",
        ],
        input="/codegen write a hello world script\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=bot_env(CODEGEN_POLL_MIN_SECONDS="0.2", CODEGEN_POLL_MAX_SECONDS="0.5"),
        timeout=90,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "BUILT-IN EMULATOR" in out
    assert "you> /codegen write a hello world script" in out
    assert "⏳ Queued" in out
    assert "✅ Complete" in out
    assert "@you Codegen run #1000" in out and "is complete" in out
    # Nothing was left behind in the working directory (the console's database is throwaway).
    assert list(tmp_path.iterdir()) == []
