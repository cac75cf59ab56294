"""The Lab's dispatchers table tells the three states of /v1/cluster apart: the
service's own worker is alive, one that exited cleanly is stopped (with when), one
not seen within the lease that never said it stopped is lost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete

from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.dispatchers import mark_dispatcher_stopped, upsert_dispatcher
from service.store.models import Dispatcher, utcnow
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import sign_in

pytestmark = pytest.mark.ray

GONE = ("ui-stopped", "ui-lost")


@pytest.fixture
def gone_dispatchers(stack: Stack) -> Iterator[None]:
    """Two rows beside the worker's in the service's store; removed afterwards (the
    other Lab tests read the worker's row first)."""
    engine = make_engine(stack.env["LAGTRAIN_DATABASE_URL"])
    sessions = make_sessionmaker(engine)
    try:
        with transaction(sessions) as session:
            for dispatcher_id in GONE:
                upsert_dispatcher(
                    session=session,
                    dispatcher_id=dispatcher_id,
                    hostname="old-node",
                    resources={"total": {"CPU": 1}},
                    now=utcnow() - timedelta(minutes=10),
                )
            mark_dispatcher_stopped(session=session, dispatcher_id="ui-stopped")
        yield
    finally:
        with transaction(sessions) as session:
            session.execute(delete(Dispatcher).where(Dispatcher.id.in_(GONE)))
        engine.dispose()


def test_lab_shows_alive_stopped_and_lost_dispatchers(
    stack: Stack, page: Page, gone_dispatchers: None
) -> None:
    # The package's worker registers once Ray is connected (seconds after its start):
    # the page is drawn from one read of /v1/cluster.
    with stack.admin() as admin:
        wait_until(
            lambda: any(d["alive"] for d in admin._request("GET", "/v1/cluster")["dispatchers"]),
            timeout=60,
            what="the worker registered",
        )
    sign_in(page, stack.url, stack.admin_token, "#/lab")
    alive = page.locator("#dispatchers tr[data-state='alive']")
    expect(alive).to_have_count(1)  # the service's worker
    expect(alive.locator("td.state")).to_have_text("alive")
    stopped = page.locator("#dispatchers tr[data-dispatcher='ui-stopped'] td.state")
    expect(stopped).to_contain_text("stopped")
    expect(stopped).to_contain_text(" UTC")  # when it stopped
    lost = page.locator("#dispatchers tr[data-dispatcher='ui-lost'] td.state")
    expect(lost).to_have_text("lost")


@pytest.fixture
def late_dispatcher(stack: Stack) -> Iterator[Callable[[], None]]:
    """A second dispatcher, alive until the fixture's call marks it stopped: seen "in a
    minute", since the test stack's lease (seconds) would make a row written once
    lost before the page is read."""
    engine = make_engine(stack.env["LAGTRAIN_DATABASE_URL"])
    sessions = make_sessionmaker(engine)
    try:
        with transaction(sessions) as session:
            upsert_dispatcher(
                session=session,
                dispatcher_id="ui-late",
                hostname="node-2",
                resources={"total": {"CPU": 1}},
                now=utcnow() + timedelta(minutes=1),
            )

        def stop() -> None:
            with transaction(sessions) as session:
                mark_dispatcher_stopped(session=session, dispatcher_id="ui-late")

        yield stop
    finally:
        with transaction(sessions) as session:
            session.execute(delete(Dispatcher).where(Dispatcher.id == "ui-late"))
        engine.dispose()


def test_lab_shows_a_dispatcher_stopping_while_it_is_open(
    stack: Stack, page: Page, late_dispatcher: Callable[[], None]
) -> None:
    """A dispatcher stopping is no job event: the page reads the cluster again on its
    own (it was drawn only when the jobs feed changed)."""
    sign_in(page, stack.url, stack.admin_token, "#/lab")
    state = page.locator("#dispatchers tr[data-dispatcher='ui-late'] td.state")
    expect(state).to_have_text("alive")
    late_dispatcher()
    expect(state).to_contain_text("stopped", timeout=30_000)
