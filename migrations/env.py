"""Alembic environment. The database URL comes from, in order: the in-code Config
(`config.attributes["database_url"]`, set by service.store.migrate), `-x
database_url=...` on the alembic command line, or Settings (LAGTRAIN_DATABASE_URL).
An open connection may also be handed over in `config.attributes["connection"]` (on
SQLite, with foreign keys off: see _sqlite_foreign_keys)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from service.store.db import is_sqlite, make_engine
from service.store.migrate import foreign_key_violations, refuse_new_violations
from service.store.models import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = config.attributes.get("database_url") or context.get_x_argument(as_dictionary=True).get(
        "database_url"
    )
    if url:
        return str(url)
    from service.settings import Settings

    return Settings().database_url


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=sqlite,
        compare_type=True,
        # One transaction for the whole run on SQLite too (Alembic assumes its DDL is
        # not transactional and commits each step; with service.store.db's own BEGIN
        # it is): a run that fails — a blocked migration, or the foreign-key check
        # below — leaves the database at the revision it started from.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        # Checked in the transaction, so a migration that breaks a foreign key rolls
        # back; after its commit (as before), the revision had moved on and every
        # later upgrade failed on the same rows, old orphans included. Skipped when
        # no migration ran (a start at head: one scan, as before, not two).
        migrations = context.get_context()
        before = foreign_key_violations(connection) if sqlite else set()
        heads = migrations.get_current_heads()
        context.run_migrations()
        if sqlite and migrations.get_current_heads() != heads:
            refuse_new_violations(connection, before)


def run_migrations_offline() -> None:
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=is_sqlite(url),
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                _sqlite_foreign_keys(conn, on=False)
            _run(conn)
            conn.commit()
            if sqlite:
                _sqlite_foreign_keys(conn, on=True)
    finally:
        engine.dispose()


def _sqlite_foreign_keys(conn: Connection, *, on: bool) -> None:
    """SQLite's batch mode rebuilds a table (create a copy, drop the old one, rename).
    With foreign keys on, dropping a parent such as `jobs` would delete every row
    that references it (ON DELETE CASCADE), so migrations run with them off, as
    SQLite's own procedure for altering a table says. The PRAGMA is ignored inside a
    transaction, so it goes to the driver's connection, which is in autocommit mode
    between transactions (service.store.db). The migrated rows are checked inside the
    migration's transaction (_run)."""
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    dbapi.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
