"""A dispatcher that exits cleanly records that it stopped, so that /v1/cluster reads
it stopped at once instead of alive until its lease timeout (a ghost to an operator
restarting dispatchers). Best effort: the exit goes on whatever the store does."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from service.store.db import transaction
from service.store.dispatchers import mark_dispatcher_stopped

log = logging.getLogger(__name__)

# How long an exiting dispatcher waits for the store to record that it stopped: an
# outage must not hold the exit (a locked SQLite waits out its busy timeout, 30 s; a
# PostgreSQL host that does not answer, longer). Otherwise it takes milliseconds.
RECORD_STOPPED_SECONDS = 3.0


def record_stopped(
    sessions: sessionmaker[Session],
    dispatcher_id: str,
    *,
    within: float = RECORD_STOPPED_SECONDS,
) -> bool:
    """Mark the dispatcher stopped, waiting at most `within` seconds (the write runs on
    a daemon thread, which a hung store cannot hold the process by). Whether it was
    recorded; if not, a warning says why and the row ages into "lost"."""
    recorded = threading.Event()

    def mark() -> None:
        try:
            with transaction(sessions) as session:
                mark_dispatcher_stopped(session=session, dispatcher_id=dispatcher_id)
            recorded.set()
        except Exception as exc:  # the store is down or refuses: the exit goes on
            log.warning(
                "dispatcher %s: could not record that it stopped (it reads alive "
                "until its lease timeout): %s",
                dispatcher_id,
                exc,
            )

    marking = threading.Thread(target=mark, name=f"record-stopped-{dispatcher_id}", daemon=True)
    marking.start()
    marking.join(timeout=within)
    if marking.is_alive():
        log.warning(
            "dispatcher %s: the store did not record that it stopped within %g s; exiting "
            "without (it reads alive until its lease timeout)",
            dispatcher_id,
            within,
        )
    return recorded.is_set()
