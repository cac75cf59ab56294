"""Whether another transaction waits on a lock: how a race test knows its second
transaction reached the lock the first holds (PostgreSQL), without sleeping; and
`while_open`, two transactions run so that the second meets the first's locks."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from service.store.db import transaction
from tests.polling import wait_until

_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def a_transaction_waits_on_a_lock(engine: Engine) -> bool:
    """True while a backend of `engine`'s database waits on a lock (PostgreSQL)."""
    with engine.connect() as conn:
        return bool(conn.execute(_WAITING).scalar_one())


def while_open(
    sessions: sessionmaker[Session],
    first: Callable[[Session], object],
    second: Callable[[Session], object],
) -> BaseException | None:
    """`first` in a transaction left open until `second`, in another, has waited on a
    lock or ended; then both commit. Returns what `second` raised, if anything."""
    raised: list[BaseException] = []
    ended = threading.Event()

    def run_second() -> None:
        try:
            with transaction(sessions) as session:
                second(session)
        except BaseException as exc:
            raised.append(exc)
        ended.set()

    engine = sessions.kw["bind"]

    def waits_or_ended() -> bool:
        return a_transaction_waits_on_a_lock(engine) or ended.is_set()

    thread = threading.Thread(target=run_second)
    with transaction(sessions) as session:
        first(session)
        thread.start()
        wait_until(waits_or_ended, timeout=30, what="the second transaction to wait or end")
    thread.join(timeout=30)
    assert ended.is_set(), "the second transaction ended"
    return raised[0] if raised else None
