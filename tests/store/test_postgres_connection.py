"""PostgreSQL connections are opened with bounds for a server that stops answering
without closing them (a partition, a lost host): libpq's connect timeout, TCP
keepalives and a TCP user timeout (service.store.db.POSTGRES_CONNECT_ARGS). Without
them a dispatcher's heartbeat, drain and stop checks, and an API request, waited on
the kernel's retransmissions (a review). What the database URL sets itself wins."""

from __future__ import annotations

from service.store.db import POSTGRES_CONNECT_ARGS, make_engine
from tests.conftest import on_one_database
from workers.waker import Waker

pytestmark = on_one_database("postgresql")


def _options(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            # What libpq used for this connection.
            used: dict[str, str] = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
            return used
    finally:
        engine.dispose()


def test_connections_give_up_on_a_server_that_stopped_answering(db_url: str) -> None:
    used = _options(db_url)
    assert {k: used.get(k) for k in POSTGRES_CONNECT_ARGS} == {
        k: str(v) for k, v in POSTGRES_CONNECT_ARGS.items()
    }
    probes = int(used["keepalives_count"]) * int(used["keepalives_interval"])
    assert int(used["keepalives_idle"]) + probes <= 30, "a dead peer is found within 30 s"
    assert int(used["tcp_user_timeout"]) <= 30_000


def test_the_database_urls_own_options_win(db_url: str) -> None:
    used = _options(f"{db_url}?connect_timeout=3&keepalives_idle=20")
    assert (used["connect_timeout"], used["keepalives_idle"]) == ("3", "20")
    assert used["keepalives_count"] == "3"


def test_the_listen_connections_are_bounded_too(db_url: str) -> None:
    """A dispatcher's LISTEN connection (workers.waker) sits idle on its socket: without
    keepalives a partition left it 'listening' to nothing until the process restarted."""
    waker = Waker(db_url)
    try:
        assert waker.reset()
        assert waker._conn is not None
        used = waker._conn.info.get_parameters()
        assert used["keepalives_idle"] == str(POSTGRES_CONNECT_ARGS["keepalives_idle"])
        assert used["tcp_user_timeout"] == str(POSTGRES_CONNECT_ARGS["tcp_user_timeout"])
    finally:
        waker.close()
