"""First start: with no users in the store, create the admin. Its token is the
configured bootstrap token, or a fresh one that is printed once and written to
<state_dir>/admin-token with mode 0600."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

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
        path = write_secret_file(Path(settings.state_dir) / ADMIN_TOKEN_FILE, plain)
        sys.stderr.write(
            f"lagtrain: created user {ADMIN_NAME!r}; its token (shown once, also in {path}):\n"
            f"{plain}\n"
        )
        sys.stderr.flush()
    else:
        log.info("created user %r with the configured bootstrap token", ADMIN_NAME)
    return True


def write_secret_file(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.write(fd, (content + "\n").encode())
    finally:
        os.close(fd)
    return path
