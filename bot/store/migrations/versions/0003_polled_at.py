"""When each tracked run was last read: the tracker spends spare reads on runs not read for a
while, due or not, and never reads one more often than the minimum interval

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracked_runs") as batch:
        batch.add_column(sa.Column("polled_at", bot.store.tables.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracked_runs") as batch:
        batch.drop_column("polled_at")
