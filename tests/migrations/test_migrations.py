"""Migrations: one head, reversible, documented, and identical to the ORM models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from service.store import migrate
from service.store.db import make_engine
from service.store.models import Base, User, table_of, utcnow

REPO = Path(__file__).resolve().parents[2]
TABLES = set(Base.metadata.tables)


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def diffs(url: str, metadata: sa.MetaData) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_single_head_and_every_revision_says_why() -> None:
    heads = migrate.head_revisions()
    assert len(heads) == 1
    script = ScriptDirectory.from_config(migrate.alembic_config(""))
    for revision in script.walk_revisions():
        assert revision.module.__doc__ and "Why:" in revision.module.__doc__, revision.revision


def test_upgrade_downgrade_upgrade_from_any_cwd(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the script location must not depend on the cwd
    migrate.upgrade(empty_db_url)
    assert tables(empty_db_url) == TABLES
    assert current_revision(empty_db_url) == migrate.head_revisions()[0]
    # Downgrading to base drops every table, and with it all data.
    migrate.downgrade(empty_db_url, "base")
    assert tables(empty_db_url) == set()
    assert current_revision(empty_db_url) is None
    migrate.upgrade(empty_db_url)
    assert tables(empty_db_url) == TABLES

    # Data written after the upgrade survives a repeated upgrade (a no-op at head).
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(table_of(User)),
                {"name": "ann", "role": "admin", "share_weight": 1.0, "created_at": utcnow()},
            )
        migrate.upgrade(empty_db_url)
        with engine.connect() as conn:
            assert conn.execute(sa.select(table_of(User).c.name)).scalars().all() == ["ann"]
    finally:
        engine.dispose()


def test_models_match_migrations(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    assert diffs(empty_db_url, Base.metadata) == []

    # The comparison really looks: a column the migrations lack is reported.
    changed = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["jobs"].append_column(sa.Column("extra", sa.Integer()))
    reported = diffs(empty_db_url, changed)
    assert [d[:3] for d in reported if isinstance(d, tuple)] == [("add_column", None, "jobs")]


def test_alembic_cli_takes_the_url_from_x_argument(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    alembic = Path(sys.executable).with_name("alembic")
    ini = REPO / "alembic.ini"
    result = subprocess.run(
        [str(alembic), "-c", str(ini), "-x", f"database_url={url}", "upgrade", "head"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert tables(url) == TABLES


def test_without_a_url_env_uses_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'from-settings.db'}"
    monkeypatch.setenv("LAGTRAIN_DATABASE_URL", url)
    config = migrate.alembic_config("")
    del config.attributes["database_url"]
    command.upgrade(config, "head")
    assert tables(url) == TABLES


def test_dataset_shape_round_trip_keeps_the_rows(empty_db_url: str) -> None:
    """0002 down and up again with data present: datasets keep their rows; the shape
    summary goes with the column on the way down and comes back empty (NULL), which
    the submit check treats as 'not recorded'."""
    migrate.upgrade(empty_db_url)
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            user_id = conn.execute(
                sa.insert(table_of(User)).returning(table_of(User).c.id),
                {"name": "ann", "role": "user", "share_weight": 1.0, "created_at": utcnow()},
            ).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO datasets (owner_id, filename, format, bytes, sha256, uri,"
                    " created_at, shape) VALUES (:o, 'd.csv', 'csv', 10, :h, '/x', :t, :s)"
                ),
                {"o": user_id, "h": "0" * 64, "t": utcnow(), "s": '{"rows": 5}'},
            )
        migrate.downgrade(empty_db_url, "0001")
        with engine.connect() as conn:
            names = conn.execute(sa.text("SELECT filename FROM datasets")).scalars().all()
        assert names == ["d.csv"]
        migrate.upgrade(empty_db_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT filename, shape FROM datasets")).all()
        assert [(r[0], r[1]) for r in rows] == [("d.csv", None)]
    finally:
        engine.dispose()
