"""INSERT ... ON CONFLICT, which Core spells per dialect."""

from __future__ import annotations

from typing import Any


def dialect_insert(*, is_postgres: bool) -> Any:
    """The INSERT of the dialect in use (for ON CONFLICT). Imported here, not at the top:
    the PostgreSQL dialect costs a SQLite install about 25 ms of start-up for nothing."""
    if is_postgres:
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
