"""Whether another transaction waits on a lock: how a race test knows its second
transaction reached the lock the first holds (PostgreSQL), without sleeping."""

from __future__ import annotations

from sqlalchemy import Engine, text

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def a_transaction_waits_on_a_lock(engine: Engine) -> bool:
    """True while a backend of `engine`'s database waits on a lock (PostgreSQL)."""
    with engine.connect() as conn:
        return bool(conn.execute(_WAITING).scalar_one())
