"""The states people set a run's pull requests to (the final reply's buttons), one row per
pull request: the last state Codegen accepted wins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.store.tables import PullRequestState
from bot.store.transactions import Transactions


class PullRequestStateStore:
    def __init__(self, transactions: Transactions) -> None:
        self.transactions = transactions

    async def for_run(self, run_id: int) -> dict[int, PullRequestState]:
        statement = select(PullRequestState).where(PullRequestState.run_id == run_id)
        rows = await self.transactions.read(lambda session: list(session.scalars(statement)))
        return {row.pr_id: row for row in rows}

    async def record(
        self, *, pr_id: int, run_id: int, state: str, set_by: str, now: datetime
    ) -> None:
        def record(session: Session) -> None:
            row = session.get(PullRequestState, pr_id)
            if row is None:
                session.add(
                    PullRequestState(
                        pr_id=pr_id, run_id=run_id, state=state, set_by=set_by, set_at=now
                    )
                )
            else:
                row.run_id, row.state, row.set_by, row.set_at = run_id, state, set_by, now

        for attempt in range(2):
            try:
                await self.transactions.run_in_session(record)
                return
            except IntegrityError:
                # Another replica inserted the row first: update it on the second try.
                if attempt:
                    raise
