"""Slack agent sessions: each run thread's session status, and workspaces without sessions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_sessions",
        sa.Column("channel_id", sa.String(32), primary_key=True),
        sa.Column("thread_ts", sa.String(32), primary_key=True),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("initiator_user_id", sa.String(32), nullable=False),
        sa.Column("wanted", sa.String(16), nullable=False),
        sa.Column("sent", sa.String(16), nullable=True),
        sa.Column("updated_at", bot.store.tables.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_agent_sessions_unsent", "agent_sessions", ["wanted", "sent"])
    op.create_table(
        "session_support",
        sa.Column("team_id", sa.String(32), primary_key=True),
        sa.Column("error", sa.String(64), nullable=False),
        sa.Column("refused_at", bot.store.tables.UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("session_support")
    op.drop_index("ix_agent_sessions_unsent", "agent_sessions")
    op.drop_table("agent_sessions")
