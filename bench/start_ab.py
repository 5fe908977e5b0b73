"""Start-up of the bot from two trees, alternating, beside the bare Bolt app: the only way to
tell a change of a few percent from the machine's start-to-start noise (about ±20 ms in a
median of 15 starts here).

    git worktree add /tmp/before <commit>
    python bench/start_ab.py /tmp/before             # this checkout against /tmp/before
    python bench/start_ab.py /tmp/before --starts 41

Each round starts the bare app, the old tree's bot and this tree's bot once each, against one
fake Slack and Codegen emulator (bench/services.py); the figures are the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.acks import Server, compile_bytecode, services  # noqa: E402


class TreeBot(Server):
    """The bot as bench/acks.py starts it, imported from `tree`."""

    def __init__(self, tree: Path, *, workdir: Path, urls: dict[str, object]) -> None:
        super().__init__("bot", workdir=workdir, urls=urls)
        self.tree = tree

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["PYTHONPATH"] = str(self.tree)
        return env


async def measure(trees: dict[str, Path], *, starts: int) -> dict[str, float]:
    for tree in trees.values():
        compile_bytecode(tree)
    times: dict[str, list[float]] = {"bare": [], **{name: [] for name in trees}}
    with tempfile.TemporaryDirectory() as tmp:
        async with services(10) as urls, httpx.AsyncClient(timeout=2) as probe:
            servers: dict[str, Server] = {"bare": Server("bare", workdir=Path(tmp), urls=urls)}
            for name, tree in trees.items():
                workdir = Path(tmp) / name
                workdir.mkdir()
                servers[name] = TreeBot(tree, workdir=workdir, urls=urls)
                await servers[name].start(probe)  # migrates its new database: not counted
                await servers[name].stop()
            for _ in range(starts):
                for name, server in servers.items():
                    times[name].append(await server.start(probe))
                    await server.stop()
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="the other tree (a git worktree)")
    parser.add_argument("--starts", type=int, default=21)
    args = parser.parse_args()
    medians = asyncio.run(measure({"before": args.before, "after": ROOT}, starts=args.starts))
    bare = medians["bare"]
    for name in ("bare", "before", "after"):
        print(
            f"{name:6} start → /healthz {medians[name] * 1000:6.0f} ms  {medians[name] / bare:.2f}×"
        )
    print(f"after − before: {(medians['after'] - medians['before']) * 1000:+.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
