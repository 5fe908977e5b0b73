"""App Home: who opened it and when it was last published; indexes on a person's runs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "home_tabs",
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(32), primary_key=True),
        sa.Column("opened_at", bot.store.tables.UTCDateTime(), nullable=False),
        sa.Column("published_at", bot.store.tables.UTCDateTime(), nullable=True),
    )
    op.create_index("ix_tracked_runs_user", "tracked_runs", ["user_id", "last_change_at"])
    op.create_index("ix_queued_requests_user", "queued_requests", ["user_id", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_queued_requests_user", "queued_requests")
    op.drop_index("ix_tracked_runs_user", "tracked_runs")
    op.drop_table("home_tabs")
