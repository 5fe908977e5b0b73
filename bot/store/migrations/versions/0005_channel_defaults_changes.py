"""Who changed a channel's defaults, when, and from what to what

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_defaults_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("changed_at", bot.store.tables.UTCDateTime(), nullable=False),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_channel_defaults_changes_channel",
        "channel_defaults_changes",
        ["channel_id", "changed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_channel_defaults_changes_channel", "channel_defaults_changes")
    op.drop_table("channel_defaults_changes")
