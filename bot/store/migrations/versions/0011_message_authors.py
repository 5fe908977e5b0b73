"""The author of the message a run was made from, when someone else sent it to Codegen (the
message shortcut): the card names both

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tracked_runs") as batch:
        batch.add_column(sa.Column("author_id", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tracked_runs") as batch:
        batch.drop_column("author_id")
