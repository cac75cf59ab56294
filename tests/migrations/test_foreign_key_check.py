"""SQLite migrations run with foreign keys off (migrations/env.py); the rows they
leave are checked inside their transaction. A row that broke a foreign key before
the upgrade (written with the checks off, as Python's sqlite3 and the sqlite3 shell
do by default) no longer fails every upgrade after it; a row the migration itself
leaves broken rolls it back."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from service.store import migrate
from service.store.db import make_engine
from service.store.migrate import (
    MigrationBlocked,
    foreign_key_violations,
    refuse_new_violations,
)

ORPHAN = (
    "INSERT INTO datasets (owner_id, filename, format, bytes, sha256, uri, created_at) "
    "VALUES (999, 'd.txt', 'text', 1, '{}', '/d', '2026-12-01 00:00:00')"
)


def _before_head() -> str:
    script = ScriptDirectory.from_config(migrate.alembic_config(""))
    (head,) = script.get_heads()
    below = script.get_revision(head).down_revision
    assert isinstance(below, str)
    return below


def _add_orphan(path: Path) -> None:
    connection = sqlite3.connect(path)  # foreign keys off: sqlite3's default
    with connection:
        connection.execute(ORPHAN.format("0" * 64))
    connection.close()


def test_an_orphan_row_from_before_warns_and_every_upgrade_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "lab.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url, _before_head())
    _add_orphan(path)
    with caplog.at_level(logging.WARNING, logger="service.store.migrate"):
        before, after = migrate.upgrade_reporting(url)
    assert (before, after) == (_before_head(), ", ".join(migrate.head_revisions()))
    assert (
        "('datasets', 1, 'users', 0)" in caplog.text and "there before this upgrade" in caplog.text
    )
    # At head already: nothing runs, and nothing fails (before, every later upgrade
    # and `server --embedded`'s start raised on the same row).
    assert migrate.upgrade_reporting(url) == (after, after)


def test_rows_a_migration_breaks_roll_it_back(tmp_path: Path) -> None:
    path = tmp_path / "lab.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            dbapi = conn.connection.driver_connection
            assert dbapi is not None
            dbapi.execute("PRAGMA foreign_keys=OFF")  # as migrations/env.py runs them
            with conn.begin():
                before = foreign_key_violations(conn)
                conn.exec_driver_sql(ORPHAN.format("1" * 64))
                with pytest.raises(MigrationBlocked, match="would leave rows violating"):
                    refuse_new_violations(conn, before)
                conn.rollback()
            count = conn.execute(sa.text("SELECT count(*) FROM datasets")).scalar_one()
            assert count == 0
    finally:
        engine.dispose()


BROKEN_REVISION = """
from alembic import op

revision = "9999"
down_revision = "{head}"


def upgrade() -> None:
    op.execute(
        "INSERT INTO datasets (owner_id, filename, format, bytes, sha256, uri, created_at) "
        "VALUES (999, 'd.txt', 'text', 1, '{sha}', '/d', '2026-12-01 00:00:00')"
    )


def downgrade() -> None:
    pass
"""


def test_a_revision_that_breaks_a_key_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    """A real migration run: the revision's rows and its version stamp roll back with
    it (Alembic commits each SQLite step unless told its DDL is transactional: the
    check raised "the database stays at its revision" with the revision moved on)."""
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    migrate.upgrade(url)
    (head,) = migrate.head_revisions()
    scripts = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, scripts)
    broken = BROKEN_REVISION.format(head=head, sha="2" * 64)
    (scripts / "versions" / "9999_breaks_a_key.py").write_text(broken)
    config = migrate.alembic_config(url)
    config.set_main_option("script_location", str(scripts))
    with pytest.raises(MigrationBlocked, match="would leave rows violating"):
        command.upgrade(config, "head")
    assert migrate.current_revisions(url) == (head,)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM datasets")).scalar_one() == 0
    finally:
        engine.dispose()
