"""Pull request states set from the final reply's buttons: which state, by whom, when

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_request_states",
        sa.Column("pr_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("set_by", sa.String(32), nullable=False),
        sa.Column("set_at", bot.store.tables.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_pull_request_states_run", "pull_request_states", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_pull_request_states_run", table_name="pull_request_states")
    op.drop_table("pull_request_states")
