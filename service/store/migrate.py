"""Schema migrations through Alembic's command API, configured in code so that
`lagtrain db upgrade`, the server and the tests work from any working directory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from service.errors import LagtrainError
from service.store.db import is_sqlite, make_engine

UPGRADE_HINT = "run `lagtrain db upgrade` with the same LAGTRAIN_DATABASE_URL first"

# migrations/ sits at the repository root, next to the service package.
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def upgrade_reporting(database_url: str, revision: str = "head") -> tuple[str, str]:
    """`upgrade`, first checking that the database can be reached (DatabaseNotReady,
    one line, if not): the revisions (comma-joined; "empty") before and after."""
    current = current_revisions(database_url)
    before = ", ".join(current) or "empty"
    script = ScriptDirectory.from_config(alembic_config(database_url))
    known = {s.revision for s in script.walk_revisions()}
    newer = sorted(set(current) - known)
    if newer:  # alembic's own error is a traceback: "Can't locate revision …"
        raise DatabaseNotReady(
            f"the database at {shown_url(database_url)} is at revision {', '.join(newer)}, "
            f"newer than this lagtrain knows (its newest is {', '.join(script.get_heads())}): "
            "a newer release migrated it; run that release's `lagtrain db upgrade`"
        )
    try:
        upgrade(database_url, revision)
    except CommandError as exc:  # e.g. a target revision that does not exist
        raise DatabaseNotReady(f"cannot upgrade to {revision!r}: {exc}") from exc
    return before, ", ".join(current_revisions(database_url))


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revisions(database_url: str = "") -> tuple[str, ...]:
    """The script directory's heads (a single one unless someone branched)."""
    return tuple(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


class DatabaseNotReady(LagtrainError):
    """The database cannot serve this code: unreachable, never migrated, or at an
    older revision; the message says which and what to run."""


class MigrationBlocked(DatabaseNotReady):
    """A migration that cannot run over the rows present: the database stays at the
    revision before it, and the message names the rows and what to change."""


# A row SQLite's foreign_key_check names: (table, rowid, parent table, key index).
ForeignKeyViolation = tuple[str, int | None, str, int]

log = logging.getLogger(__name__)


def foreign_key_violations(conn: Connection) -> set[ForeignKeyViolation]:
    """SQLite's rows that break a foreign key (migrations run with the checks off:
    migrations/env.py). Read inside the migration's transaction."""
    return {tuple(row) for row in conn.exec_driver_sql("PRAGMA foreign_key_check")}


def refuse_new_violations(conn: Connection, before: set[ForeignKeyViolation]) -> None:
    """MigrationBlocked — the migration's transaction rolls back — if the migrations
    just run left rows breaking a foreign key that did not before. Rows that broke one
    already (written with the checks off, as Python's sqlite3 and the sqlite3 shell
    do by default) are the operator's, not the migration's: a warning names them, and
    the upgrade (or the next one, or `server --embedded`'s start) goes on."""
    after = foreign_key_violations(conn)
    if new := sorted(after - before):
        raise MigrationBlocked(
            f"the migration would leave rows violating foreign keys (table, rowid, "
            f"parent, key): {new[:5]}; the database stays at its revision"
        )
    if after:
        log.warning(
            "rows violating foreign keys, there before this upgrade (table, rowid, parent, "
            "key): %s — delete them or give them their parent row",
            sorted(after)[:5],
        )


def shown_url(database_url: str) -> str:
    return make_url(database_url).render_as_string(hide_password=True)


def current_revisions(database_url: str) -> tuple[str, ...]:
    """The revisions the database is at (empty: never migrated); DatabaseNotReady,
    in one line, when it cannot be reached. A SQLite file is created if missing."""
    try:
        engine = make_engine(database_url)
        try:
            with engine.connect() as conn, _quiet_alembic():
                return tuple(MigrationContext.configure(conn).get_current_heads())
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:  # OSError: a SQLite file's folder
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        shown = shown_url(database_url)
        raise DatabaseNotReady(
            f"cannot connect to the database at {shown} (LAGTRAIN_DATABASE_URL): {reason}"
        ) from exc


@contextlib.contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Reading the revision is not news: alembic's "Context impl …" and "Will assume
    … DDL" INFO lines came before a refusal that promises one line."""
    chatter = logging.getLogger("alembic.runtime.migration")
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    try:
        yield
    finally:
        chatter.setLevel(level)


def require_schema(database_url: str) -> None:
    """Raise DatabaseNotReady unless the database has lagtrain's schema at this code's
    head, or at a revision this code does not know (a newer release migrated it while
    this one still runs: docs/cluster.md upgrades the schema before the processes).

    It creates nothing: a SQLite file that does not exist is reported, not made, so a
    command run outside a project leaves no empty ./.lagtrain/lagtrain.db behind
    (only `db upgrade` and `server --embedded` create the database)."""
    shown = shown_url(database_url)
    database = make_url(database_url).database
    sqlite_file = database if is_sqlite(database_url) and database != ":memory:" else None
    if sqlite_file and not Path(sqlite_file).is_file():
        raise DatabaseNotReady(
            f"no database at {shown} ({Path(sqlite_file).resolve()} does not exist): "
            f"{UPGRADE_HINT}, or set LAGTRAIN_DATABASE_URL to the server's database"
        )
    current = current_revisions(database_url)
    if not current:
        raise DatabaseNotReady(f"the database at {shown} has no lagtrain schema: {UPGRADE_HINT}")
    script = ScriptDirectory.from_config(alembic_config(database_url))
    heads = set(script.get_heads())
    known = {s.revision for s in script.walk_revisions()}
    # A revision this code does not know is newer than it: carry on.
    for revision in (set(current) - heads) & known:
        raise DatabaseNotReady(
            f"the database at {shown} is at revision {revision}, older than this "
            f"lagtrain's {', '.join(sorted(heads))}: {UPGRADE_HINT}"
        )
