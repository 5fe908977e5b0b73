"""Slack budgets: longer bucket names (`slack:chat.update`, `slack:post:<channel>`), when a
waiting card's queue line was last changed, and what a run's card is known to show

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("rate_budgets", "rate_spends"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "bucket",
                existing_type=sa.String(length=16),
                type_=sa.String(length=64),
                existing_nullable=False,
            )
    with op.batch_alter_table("queued_requests") as batch:
        batch.add_column(sa.Column("queue_noted_at", bot.store.tables.UTCDateTime(), nullable=True))
    with op.batch_alter_table("tracked_runs") as batch:
        batch.add_column(sa.Column("card_shown", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracked_runs") as batch:
        batch.drop_column("card_shown")
    with op.batch_alter_table("queued_requests") as batch:
        batch.drop_column("queue_noted_at")
    for table in ("rate_budgets", "rate_spends"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "bucket",
                existing_type=sa.String(length=64),
                type_=sa.String(length=16),
                existing_nullable=False,
            )
