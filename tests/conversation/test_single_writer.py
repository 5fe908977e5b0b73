"""On a SQLite file the bot writes through one connection only, the writer thread's, and
reads through the reader thread's (bot.store.transactions). SQLite lets one connection write
at a time, and a write through the async engine's connections holds that lock across turns of
a busy event loop (every statement is a hand-off to aiosqlite's thread and back): the acks'
outbox inserts waited behind such writes, up to hundreds of milliseconds each under load. A
read through them costs three times the CPU of one on the reader thread."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event

from tests.harness import Conversation, final_replies, roots

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


async def test_a_run_and_its_follow_up_go_only_through_the_stores_threads(
    sqlite_url: str,
) -> None:
    async with Conversation.start(database_url=sqlite_url) as chat:
        store = chat.runtime.store
        assert store.transactions.on_thread
        writes: list[str] = []
        reads: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            verb = statement.lstrip().split(" ", 1)[0].upper()
            if verb in _WRITES:
                writes.append(statement.split("(")[0].strip())
            elif verb != "PRAGMA":  # the checkpoint is run there on purpose (Store.checkpoint)
                reads.append(statement.split("\n")[0][:60])

        event.listen(store.engine.sync_engine, "before_cursor_execute", record)
        await chat.slash("config repo=acme/web")  # the channel's defaults
        await chat.slash("fix the flaky login test")
        await chat.run_until_idle()
        [root] = roots(chat)
        await chat.mention("also cover the logout path", thread_ts=root)  # a follow-up
        await chat.run_until_idle()
        # The periodic jobs that write: statistics, pruning, the write-ahead log's checkpoint.
        await store.optimize()
        await store.prune(now=chat.clock.now(), keep_events=timedelta(0), keep_spends=timedelta(0))
        await store.checkpoint()
        assert len(chat.emulator.created_bodies()) == 2
        assert len(final_replies(chat, root)) == 2

    assert writes == []
    assert reads == []
