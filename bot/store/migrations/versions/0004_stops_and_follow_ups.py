"""Stops and follow-ups: who asked Codegen to stop a run, organizations whose Codegen refused a
stop, and the run a follow-up started a new run after

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracked_runs") as batch:
        batch.add_column(sa.Column("stop_requested_by", sa.String(32), nullable=True))
        batch.add_column(
            sa.Column("stop_requested_at", bot.store.tables.UTCDateTime(), nullable=True)
        )
        batch.add_column(sa.Column("follows_run_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("follow_reason", sa.String(32), nullable=True))
    op.create_table(
        "stop_refusals",
        sa.Column("org_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("refused_at", bot.store.tables.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stop_refusals")
    with op.batch_alter_table("tracked_runs") as batch:
        batch.drop_column("follow_reason")
        batch.drop_column("follows_run_id")
        batch.drop_column("stop_requested_at")
        batch.drop_column("stop_requested_by")
