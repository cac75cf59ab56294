"""First start: with no users in the store, create the admin. Its token is the
configured bootstrap token, or a fresh one that is printed once and written to
<state_dir>/admin-token with mode 0600."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import Conflict
from service.settings import Settings, check_bootstrap_token
from service.store.audit import user_created
from service.store.db import transaction
from service.store.users import authenticate, count_users, create_user

log = logging.getLogger(__name__)

ADMIN_NAME = "admin"
ADMIN_TOKEN_FILE = "admin-token"
# A changed bootstrap token (a rotated .env) or one whose admin is gone signs nobody in.
IGNORED_BOOTSTRAP_TOKEN = (
    "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN is not a live token: it is used only on the first "
    "start, when the database has no users, and this one has; to sign an admin in again, "
    "run `lagtrain admin create-user NAME --admin` with the server's "
    "LAGTRAIN_DATABASE_URL (docs/operations.md)"
)


def bootstrap_admin(sessions: sessionmaker[Session], settings: Settings) -> bool:
    """Create the admin if the store has no users; True if this call created it."""
    configured = settings.bootstrap_admin_token
    check_bootstrap_token(configured)  # also when settings were built without validation
    token = configured.get_secret_value() if configured is not None else None
    try:
        with transaction(sessions) as session:
            if count_users(session=session) > 0:
                if token is not None and authenticate(session=session, token=token) is None:
                    log.warning(IGNORED_BOOTSTRAP_TOKEN)
                return False
            user, api_token, plain = create_user(
                session=session, name=ADMIN_NAME, role="admin", token=token
            )
            # actor "server"
            user_created(session=session, actor=None, user=user, token_id=api_token.id)
    except Conflict:  # another server process bootstrapped at the same moment
        return False
    if token is None:
        _show_and_keep(Path(settings.state_dir) / ADMIN_TOKEN_FILE, plain)
    else:
        log.info("created user %r with the configured bootstrap token", ADMIN_NAME)
    return True


def _show_and_keep(path: Path, plain: str) -> None:
    """Print the new admin's token first (the admin is committed: a file that cannot
    be written must not lose the only copy), then write it to `path`, moving a file
    already there aside, never over it: a state directory shared by two databases (a
    SQLite one, then a new PostgreSQL one) may hold the only copy of the first's."""
    sys.stderr.write(
        f"lagtrain: created user {ADMIN_NAME!r}; its token (shown once, also in {path}):\n{plain}\n"
    )
    sys.stderr.flush()
    try:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = path.with_name(f"{path.name}.{stamp}")
        with contextlib.suppress(FileNotFoundError):  # none there, or moved meanwhile
            os.rename(path, aside)
            log.warning("%s held another database's admin token; it is kept in %s", path, aside)
        write_secret_file(path, plain)
    except OSError as exc:
        log.warning("could not write the admin token to %s (%s); it is the one shown", path, exc)


def admin_token_place(sessions: sessionmaker[Session], settings: Settings) -> str | None:
    """Where a live admin token of this database is: the token file, the configured
    bootstrap token (also before the first start's bootstrap makes it the admin's),
    or None (neither signs an admin in, e.g. a file written for another database; a
    first start without a configured token prints its own). None too when the
    database does not answer: the start line is no place for that error."""
    configured = settings.bootstrap_admin_token
    places: list[tuple[str, str]] = []
    path = Path(settings.state_dir) / ADMIN_TOKEN_FILE
    if path.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            places.append((str(path), path.read_text(encoding="utf-8").strip()))
    if configured is not None:
        places.append(("LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN", configured.get_secret_value()))
    try:
        with sessions() as session:
            if configured is not None and count_users(session=session) == 0:
                return "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN"
            for place, token in places:
                found = authenticate(session=session, token=token) if token else None
                if found is not None and found[0].role == "admin":
                    return place
    except SQLAlchemyError:
        log.warning("could not look up where the admin token is", exc_info=True)
    return None


def write_secret_file(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.write(fd, (content + "\n").encode())
    finally:
        os.close(fd)
    return path
