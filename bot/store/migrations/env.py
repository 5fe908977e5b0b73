"""Alembic environment: run with a connection handed over by bot.store.db.migrate()."""

from __future__ import annotations

from alembic import context

from bot.store.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # pragma: no cover - only via bot.store.db.migrate
        raise RuntimeError("run migrations with `codegen-bot migrate`")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
