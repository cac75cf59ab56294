"""What a stopping dispatcher writes. A job whose thread did not end in time is handed
back (`hand_back`), and a dispatcher that exits cleanly records that it stopped
(`record_stopped`), so that /v1/cluster reads it stopped at once instead of alive
until its lease timeout (a ghost to an operator restarting dispatchers). Best effort:
the exit goes on whatever the store does."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from service.errors import StaleLease
from service.store.attempts import release
from service.store.db import transaction
from service.store.dispatchers import mark_dispatcher_stopped

log = logging.getLogger(__name__)


def hand_back(sessions: sessionmaker[Session], job_id: int, fencing_token: str) -> None:
    """Release a job whose thread did not hand it back in time — its gang still
    starting (a placement or an actor start cannot be interrupted): the process
    may exit next, and a lease left to run out ends the attempt as 'lost', used.
    If the thread goes on, it finds the lease gone and stops its gang."""
    try:
        with transaction(sessions) as session:
            release(
                session=session,
                job_id=job_id,
                token=fencing_token,
                reason="the dispatcher shut down before the job's thread ended",
            )
    except StaleLease:
        pass  # it ended, or handed itself back, meanwhile
    except Exception as exc:  # the store is down: the lease will run out instead
        log.warning("job %s: could not hand it back: %s", job_id, exc)


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
