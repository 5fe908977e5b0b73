"""People's own Codegen API tokens, sealed at rest

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.store.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "personal_tokens",
        sa.Column("slack_user_id", sa.String(32), primary_key=True),
        sa.Column("sealed_token", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("codegen_user_id", sa.BigInteger(), nullable=False),
        sa.Column("codegen_email", sa.String(320), nullable=True),
        sa.Column("created_at", bot.store.tables.UTCDateTime(), nullable=False),
        sa.Column("rejected_at", bot.store.tables.UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("personal_tokens")
