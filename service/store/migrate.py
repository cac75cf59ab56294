"""Schema migrations through Alembic's command API, configured in code so that
`lagtrain db upgrade`, the server and the tests work from any working directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

# migrations/ sits at the repository root, next to the service package.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revisions(database_url: str = "") -> tuple[str, ...]:
    """The script directory's heads (a single one unless someone branched)."""
    return tuple(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())
