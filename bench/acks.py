"""Slash-command acks and start-up: the bot as a process against a bare Bolt app
(bench/bare_bolt.py), served the same way, measured in the same run.

    python bench/acks.py                        # 2,000 requests, 50 at a time
    python bench/acks.py --requests 500 --starts 3

Each server runs as its own process; the fake Slack and the Codegen emulator run in a third
(bench/services.py) and the load comes from this one, so no two share an event loop. The bot
stores and prepares every request it acks (its card, its root message, its queue place, its
create at 10 a minute) while the acks are measured: background work must not starve the ack
path. The requests go in two rounds, the apps' order reversed in the second (bare, bot, bot,
bare), and each app's latencies are pooled. Start-up is the time from spawning the process to
its first /healthz 200, the bot on a database already at the newest revision (a restart) and,
shown beside it, on a new one; and the bare app made to import the libraries the bot is built
on first (`--libraries`), the floor under any bot on this stack.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import httpx
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stats import percentile  # noqa: E402

SECRET = "acks-bench-signing-secret"
BOT_TOKEN = "xoxb-acks-bench"
CODEGEN_TOKEN = "acks-bench-codegen-token"
ORG_ID = 7
TEAM = "T0BENCH"
CHANNELS = 20
_SETTING_PREFIXES = ("SLACK_", "CODEGEN_", "DATABASE_", "BOT_", "ALLOWED_", "LOG_", "PORT", "MAX_")


@dataclass(frozen=True)
class AckFigures:
    p50_ms: float
    p99_ms: float
    acked: int
    requests: int
    cpu_ms_per_request: float
    stored: int = 0  # requests the bot queued over the measured acks (its /metrics)
    posted: int = 0  # chat.postMessage calls Slack accepted over them: roots and cards


@dataclass(frozen=True)
class StartFigures:
    median_s: float
    first_s: float | None = None  # the bot on a new database (migrations applied)


def _clean_env(**settings: str) -> dict[str, str]:
    """This environment without the bot's settings (a developer's shell may set some)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES)}
    env["PYTHONPATH"] = str(ROOT)
    env.update(settings)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def services(response_urls: int) -> AsyncIterator[dict[str, object]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "services.py"),
        "--bot-token",
        BOT_TOKEN,
        "--codegen-token",
        CODEGEN_TOKEN,
        "--org-id",
        str(ORG_ID),
        "--team",
        TEAM,
        "--channels",
        str(CHANNELS),
        "--response-urls",
        str(response_urls),
        stdout=asyncio.subprocess.PIPE,
        env=_clean_env(),
        limit=2**24,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        if not line:
            raise RuntimeError("bench/services.py exited before it answered")
        yield json.loads(line)
    finally:
        process.terminate()
        await process.wait()


class Server:
    """One server process (the bot or the bare app) on a free port."""

    def __init__(self, kind: str, *, workdir: Path, urls: dict[str, object]) -> None:
        self.kind, self.workdir, self.urls = kind, workdir, urls
        self.port = _free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    def _command(self) -> list[str]:
        if self.kind in ("bare", "libraries"):
            command = [
                sys.executable,
                str(ROOT / "bench" / "bare_bolt.py"),
                "--port",
                str(self.port),
            ]
            return command + (["--libraries"] if self.kind == "libraries" else [])
        return [sys.executable, "-m", "bot.cli", "run"]

    def _env(self) -> dict[str, str]:
        env = _clean_env(SLACK_SIGNING_SECRET=SECRET)
        if self.kind == "bot":
            env.update(
                SLACK_BOT_TOKEN=BOT_TOKEN,
                SLACK_API_URL=str(self.urls["slack_api_url"]),
                CODEGEN_API_TOKEN=CODEGEN_TOKEN,
                CODEGEN_ORG_ID=str(ORG_ID),
                CODEGEN_API_URL=str(self.urls["codegen_api_url"]),
                DATABASE_URL=f"sqlite+aiosqlite:///{self.workdir / 'bot.db'}",
                BOT_MODE="http",
                PORT=str(self.port),
            )
        return env

    async def start(self, http: httpx.AsyncClient) -> float:
        """Spawn it; seconds until /healthz first answers 200."""
        self.starts += 1
        log = (self.workdir / f"{self.kind}-{self.starts}.log").open("w")
        started = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            *self._command(),
            cwd=self.workdir,
            env=self._env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.perf_counter() - started < 60:
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.kind} exited: see {self.workdir}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url)).status_code == 200:
                    return time.perf_counter() - started
            await asyncio.sleep(0.005)
        raise RuntimeError(f"{self.kind} did not answer /healthz within 60 s")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout=15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _slash(n: int, response_url: str) -> tuple[str, dict[str, str]]:
    body = urlencode(
        {
            "team_id": TEAM,
            "channel_id": f"C{n % CHANNELS:03d}",
            "user_id": f"U{n % 40:03d}",
            "user_name": f"u{n % 40:03d}",
            "command": "/codegen",
            "text": f"task {n}: add a test for the parser",
            "response_url": response_url,
            "trigger_id": uuid.uuid4().hex,
        }
    )
    ts = str(int(time.time()))
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body),
    }


@dataclass
class AckSamples:
    """What one app's rounds of load measured, pooled."""

    latencies_ms: list[float]
    acked: int = 0
    requests: int = 0
    cpu_s: float = 0.0
    stored: int = 0
    posted: int = 0

    def figures(self) -> AckFigures:
        return AckFigures(
            p50_ms=statistics.median(self.latencies_ms),
            p99_ms=percentile(self.latencies_ms, 0.99),
            acked=self.acked,
            requests=self.requests,
            cpu_ms_per_request=self.cpu_s * 1000 / self.requests,
            stored=self.stored,
            posted=self.posted,
        )


async def load(
    server: Server,
    *,
    requests: int,
    concurrency: int,
    response_urls: list[str],
    offset: int,
    into: AckSamples,
) -> None:
    """`requests` signed slash commands, `concurrency` at a time; the latency of each ack,
    whether it was acked, and the server's CPU time are added to `into`."""
    url = f"http://127.0.0.1:{server.port}/slack/events"
    # aiohttp, not httpx: httpx's client costs several milliseconds of this process's CPU a
    # request, so it became the bottleneck (the bare app's 2,000 acks took 10 s through it,
    # 1.5 s through aiohttp) and most of each measured latency was spent queued inside it.
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def post(n: int) -> bool:
            body, headers = _slash(offset + n, response_urls[offset + n])
            async with http.post(url, data=body, headers=headers) as response:
                text = await response.text()
            return response.status == 200 and "Queued" in text

        # A few first, so both servers are measured warm (imports, caches, connections).
        for n in range(concurrency):
            await post(n)
        offset += concurrency
        latencies: list[float] = []
        acked = 0
        next_n = 0

        async def worker() -> None:
            nonlocal acked, next_n
            while next_n < requests:
                n = next_n
                next_n += 1
                sent = time.perf_counter()
                ok = await post(n)
                latencies.append((time.perf_counter() - sent) * 1000)
                acked += ok

        assert server.process is not None
        before = await _outbox(http, server) if server.kind == "bot" else (0, 0)
        cpu_before = _cpu_seconds(server.process.pid)
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu = _cpu_seconds(server.process.pid) - cpu_before
        if server.kind == "bot":
            # What it stored and posted while the measured acks came in: preparing may wait
            # for acks, but it must go on meanwhile, and nothing acked may be missing.
            after = await _outbox(http, server)
            stored, posted = (a - b for a, b in zip(after, before, strict=True))
            into.stored += stored
            into.posted += posted
    into.latencies_ms += latencies
    into.acked += acked
    into.requests += requests
    into.cpu_s += cpu


async def _outbox(http: aiohttp.ClientSession, server: Server) -> tuple[int, int]:
    """The bot's requests queued so far and chat.postMessage calls Slack accepted (roots and
    cards), from its /metrics."""
    async with http.get(f"http://127.0.0.1:{server.port}/metrics") as response:
        text = await response.text()
    queued = _metric(text, "codegen_bot_requests_queued_total")
    posted = _metric(text, "codegen_bot_slack_calls_total", method="chat.postMessage", outcome="ok")
    return int(queued), int(posted)


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` with `labels` in a Prometheus text exposition."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def compile_bytecode(tree: Path = ROOT) -> None:
    """The bytecode of the bot in `tree`, as installing it leaves it (pip compiles every module
    of a wheel). A checkout run with PYTHONDONTWRITEBYTECODE, as on this machine, would
    otherwise compile its 90 modules from source at every start, which is not what a deployed
    bot does."""
    for package in ("bot", "handlers"):
        compileall.compile_dir(tree / package, quiet=1)


async def measure(
    *, requests: int, concurrency: int, starts: int, rounds: int = 2
) -> tuple[dict[str, AckFigures], dict[str, StartFigures]]:
    """Start-ups, then `requests` acks of each app in `rounds` rounds, the order of the two
    apps reversed from one round to the next (bare, bot, bot, bare): a stretch of time when
    the machine is slower, or a drift across the run, falls on both apps alike instead of on
    whichever ran then. The latencies of an app's rounds are pooled."""
    per_round = [requests // rounds + (i < requests % rounds) for i in range(rounds)]
    needed = 2 * (requests + rounds * concurrency)
    compile_bytecode()
    samples = {kind: AckSamples([]) for kind in ("bare", "bot")}
    start_times: dict[str, list[float]] = {"bare": [], "libraries": [], "bot": []}
    first: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        async with services(needed) as urls, httpx.AsyncClient(timeout=2) as probe:
            response_urls = [str(u) for u in urls["response_urls"]]  # type: ignore[attr-defined]
            servers = {kind: Server(kind, workdir=Path(tmp), urls=urls) for kind in start_times}
            # Start-ups, alternating; the bot's first one migrates a new database.
            for _ in range(starts):
                for kind, server in servers.items():
                    seconds = await server.start(probe)
                    if kind == "bot" and first is None:
                        first = seconds
                    else:
                        start_times[kind].append(seconds)
                    await server.stop()
            offset = 0
            for round_, count in enumerate(per_round):
                order = ("bare", "bot") if round_ % 2 == 0 else ("bot", "bare")
                for kind in order:
                    server = servers[kind]
                    await server.start(probe)
                    try:
                        await load(
                            server,
                            requests=count,
                            concurrency=concurrency,
                            response_urls=response_urls,
                            offset=offset,
                            into=samples[kind],
                        )
                    finally:
                        await server.stop()
                    offset += count + concurrency
                    print(
                        f"measured acks of the {kind} app, round {round_ + 1} of {rounds}",
                        file=sys.stderr,
                        flush=True,
                    )
    acks = {kind: pooled.figures() for kind, pooled in samples.items()}
    startup = {
        "bare": StartFigures(statistics.median(start_times["bare"])),
        "libraries": StartFigures(statistics.median(start_times["libraries"])),
        "bot": StartFigures(statistics.median(start_times["bot"] or [first or 0.0]), first),
    }
    return acks, startup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    acks, startup = asyncio.run(
        measure(
            requests=args.requests,
            concurrency=args.concurrency,
            starts=args.starts,
            rounds=args.rounds,
        )
    )
    print(f"libraries alone: start {startup['libraries'].median_s:.2f} s")
    for kind in ("bare", "bot"):
        a, s = acks[kind], startup[kind]
        print(
            f"{kind:5} ack p50 {a.p50_ms:6.1f} ms  p99 {a.p99_ms:6.1f} ms  acked {a.acked}/"
            f"{a.requests}  cpu {a.cpu_ms_per_request:.2f} ms/request  start {s.median_s:.2f} s"
            + (f" (first, migrating: {s.first_s:.2f} s)" if s.first_s is not None else "")
        )
    bot = acks["bot"]
    print(f"bot   stored {bot.stored}/{bot.requests}  posted {bot.posted} messages while acking")
    return 0


if __name__ == "__main__":
    sys.exit(main())
