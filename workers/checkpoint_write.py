"""A checkpoint write that rides through a short fault of the artifacts location (an
NFS blip, a disk full for a moment, a folder made unwritable): the write is retried
with backoff inside the attempt instead of failing it. Before, every attempt failed
at its first checkpoint, was requeued and claimed again at once, and all of a job's
attempts were gone within seconds, while a database outage of up to
LAGTRAIN_STORE_OUTAGE_SECONDS was ridden out (workers.store_writer).

Plain code (no Ray): the driver (workers.ray_actors.JobDriver) calls it from its
round loop, which waits meanwhile; tests drive it with a fake wait and clock.

Nothing but the bound ends the wait from inside: a drain wants exactly this
checkpoint (it is the drain's point), and the dispatcher bounds the drain itself — at
its deadline the job is handed back without using an attempt and the gang is killed,
the wait with it. A cancel kills the gang the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from service.schemas.defaults import DEFAULT_STORE_OUTAGE_SECONDS

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
# The bound where no settings are passed (run_on_ray, tests): the setting's default.
OUTAGE_SECONDS: float = DEFAULT_STORE_OUTAGE_SECONDS


def write_with_retry(
    write: Callable[[], object],
    *,
    name: str,
    url: str,
    give_up_seconds: float,
    wait: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_failure: Callable[[OSError], None] = lambda _error: None,
) -> None:
    """Call `write` until it returns. An OSError (PermissionError, ENOSPC, EIO,
    NotADirectoryError, fsspec's remote errors) is retried after a backoff that
    doubles from FIRST_BACKOFF_SECONDS to MAX_BACKOFF_SECONDS, for up to
    `give_up_seconds` from the first failure; past that, the write's last error is
    raised, as without the retry. Any other error is raised at once: a bug or bad
    data does not heal with time.

    `wait(seconds)` sleeps; `name` (the job) and `url` are for the log; `on_failure`
    sees each OSError (the driver counts them)."""
    backoff = FIRST_BACKOFF_SECONDS
    deadline: float | None = None
    while True:
        try:
            write()
            return
        except OSError as error:
            on_failure(error)
            now = clock()
            deadline = now + give_up_seconds if deadline is None else deadline
            left = deadline - now
            what = f"{type(error).__name__}: {error}"
            if left <= 0:
                log.error(
                    "%s: could not write %s (%s); gave up after %g s",
                    name,
                    url,
                    what,
                    give_up_seconds,
                )
                raise
            delay = min(backoff, left)
            # One line per failure, no traceback: an outage of minutes retries often.
            log.warning(
                "%s: could not write %s (%s); retrying in %.1f s, for up to %g s in all "
                "(LAGTRAIN_STORE_OUTAGE_SECONDS)",
                name,
                url,
                what,
                delay,
                give_up_seconds,
            )
            wait(delay)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
