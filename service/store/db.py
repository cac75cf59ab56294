"""Engine and session factory for SQLite (WAL, busy timeout, BEGIN IMMEDIATE) and
PostgreSQL (psycopg 3)."""

from __future__ import annotations

import functools
import select
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY_OPTION = "lagtrain_read_only"
# A write that is skipped rather than waited for when SQLite's write lock is taken
# (`write_if_free`).
NO_WAIT_OPTION = "lagtrain_no_wait"
# libpq's connection options for a PostgreSQL that stops answering without closing
# the connection (a partition, a host lost, a firewall dropping packets): without
# them a connect, or a statement waiting for its answer, blocks for the kernel's
# retransmissions (15 min or more), and with it a dispatcher's heartbeat, drain and
# stop checks, and an API request. A dead peer is found within ≈ 30 s (keepalives:
# 10 s idle, then probes 5 s apart; on Linux the TCP user timeout, 30 s, bounds them
# too) and so are unacknowledged writes; a slow but live server answers the probes,
# so long statements are not cut. Options the database URL sets itself
# (`?connect_timeout=…`) win.
POSTGRES_CONNECT_ARGS: dict[str, int] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms
}


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    pool_size: int | None = None,
    **kwargs: Any,
) -> Engine:
    """`sqlite_busy_timeout_ms`: how long a SQLite write waits for the lock before
    "database is locked" (tests shorten it to make that outage quickly).
    `pool_size`: connections kept open (the server's: settings.db_pool_size). A pool
    smaller than the requests in flight opens and closes a connection per request
    beyond it, which costs PostgreSQL a backend process each time."""
    database = make_url(url).database
    if pool_size is not None and database not in (None, "", ":memory:"):
        kwargs.update(pool_size=pool_size, max_overflow=pool_size)
    if not is_sqlite(url):
        connect_args = postgres_connect_args(url)
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
        _ping_without_round_trip(engine)
        return engine
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": sqlite_busy_timeout_ms / 1000}, **kwargs)

    # pysqlite's implicit transactions let two writers read-then-write the same row,
    # and a deferred BEGIN fails the lock upgrade without waiting (STACK-NOTES). We
    # take the driver out of transaction management and begin IMMEDIATE ourselves.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={sqlite_busy_timeout_ms}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read-only unit of work (read_transaction) begins DEFERRED: under WAL it
        # takes no lock, so readers (SSE polls, probes, GETs) never queue behind or
        # block a writer. Everything else takes the write lock up front.
        options = conn.get_execution_options()
        if options.get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        elif options.get(NO_WAIT_OPTION):
            # BEGIN IMMEDIATE takes the lock or fails at once; the transaction
            # then holds it, so the usual timeout is back for the rest.
            conn.exec_driver_sql("PRAGMA busy_timeout=0")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            finally:
                conn.exec_driver_sql(f"PRAGMA busy_timeout={sqlite_busy_timeout_ms}")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def postgres_connect_args(url: str) -> dict[str, int]:
    """POSTGRES_CONNECT_ARGS but those the URL sets itself: for the engine's pool and
    for the LISTEN connections opened beside it (workers.waker, the API's feed)."""
    query = make_url(url).query
    return {k: v for k, v in POSTGRES_CONNECT_ARGS.items() if k not in query}


def _ping_without_round_trip(engine: Engine) -> None:
    """pool_pre_ping, made cheap: its round trip on every checkout cost as much as a
    statement (two per request). A pooled PostgreSQL connection that is idle has
    nothing to read unless the server closed it (a restart or a terminated backend
    sends an error, then closes the socket) or sent a notice; only then is the real
    ping made, which fails for a dead connection so the pool opens a new one. A peer
    that vanished without closing is not detected by either (the real ping would
    hang as long as a statement)."""
    dialect = engine.dialect
    real_ping = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            fd = dbapi_connection.pgconn.socket
        except Exception:  # closed or broken: let the real ping report it
            return real_ping(dbapi_connection)
        poller = select.poll()  # not select(): descriptors above 1024 (many streams)
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return real_ping(dbapi_connection) if poller.poll(0) else True

    dialect.do_ping = do_ping  # type: ignore[method-assign]


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def write_if_free(factory: sessionmaker[Session]) -> Iterator[Session | None]:
    """A unit of work that may be skipped: on SQLite, None (nothing to do) when
    another transaction holds the write lock, instead of waiting for it up to the
    busy timeout; on PostgreSQL, `transaction`. For bookkeeping a later request
    redoes, such as a token's last use (a GET waited 30 s behind a long prune and
    answered 503 for it: a review)."""
    engine = factory.kw["bind"]
    if engine.dialect.name != "sqlite":
        with transaction(factory) as session:
            yield session
        return
    with factory(bind=_no_wait_bind(engine)) as session:
        try:
            session.connection()  # BEGIN IMMEDIATE, without waiting
            locked = False
        except OperationalError as exc:
            if "locked" not in str(exc.orig):
                raise
            locked = True
        if locked:
            yield None
            return
        yield session  # an error in the caller's block: rolled back as the session closes
        session.commit()


@functools.lru_cache(maxsize=32)
def _no_wait_bind(engine: Engine) -> Engine:
    return engine.execution_options(**{NO_WAIT_OPTION: True})


@functools.lru_cache(maxsize=32)  # a few engines per process; tests make more
def _read_only_bind(engine: Engine) -> Engine:
    """`engine` for read_transaction (built once per engine: an option engine is not
    free to make). On PostgreSQL it runs in autocommit: no BEGIN and COMMIT round
    trips around the reads. That changes nothing a reader sees: under PostgreSQL's
    READ COMMITTED (the default, and ours) every statement takes its own snapshot,
    inside a transaction or not."""
    options: dict[str, Any] = {READ_ONLY_OPTION: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    return engine.execution_options(**options)


@contextmanager
def read_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work that only reads: on SQLite it takes no write lock (a write in it
    may fail with "database is locked"); on PostgreSQL each statement commits on its
    own (a write in it is not rolled back with the others)."""
    with factory(bind=_read_only_bind(factory.kw["bind"])) as session, session.begin():
        yield session


def db_now(session: Session) -> datetime:
    """The database's clock (PostgreSQL), so that leases and their expiry are judged
    by one clock whichever host writes them; SQLite runs in this process, whose clock
    is the database's.

    On SQLite the clock is read only once the session's transaction has begun, i.e.
    holds the write lock (BEGIN IMMEDIATE runs on its first statement): a time read
    before that could precede a commit this transaction then sees. A dispatcher's
    claim stamped before it waited for the lock put a job's `running` event 60 ms
    before the sweep controller's `queued` event of the same job."""
    if session.get_bind().dialect.name == "postgresql":
        value = session.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    session.connection()  # begins the transaction (and takes the lock) if not yet begun
    return datetime.now(UTC)


def ping(*, session: Session) -> None:
    """Round-trip to the database (readiness); raises SQLAlchemyError if unreachable."""
    session.execute(text("SELECT 1"))
