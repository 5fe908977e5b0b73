"""Run progress from Codegen's logs: the newest steps on each tracked run, and the endpoints
Codegen does not have for an organization

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracked_runs") as batch:
        batch.add_column(sa.Column("progress", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("progress_read_at", bot.store.tables.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("progress_changed_at", bot.store.tables.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "missing_endpoints",
        sa.Column("org_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("endpoint", sa.String(64), primary_key=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("found_at", bot.store.tables.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("missing_endpoints")
    with op.batch_alter_table("tracked_runs") as batch:
        batch.drop_column("progress_changed_at")
        batch.drop_column("progress_read_at")
        batch.drop_column("progress")
