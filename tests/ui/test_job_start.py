"""A running job with no round yet (its gang being placed and its processes started,
10-20 s cold) said "No data yet" under empty charts, as a queued one does, and read
as stuck (a walkthrough): its page says it is starting, until its first round.

The test is the job's dispatcher, at the store (a deliberate seam): it submits and
claims the job in one transaction, so the service's own worker never sees it queued,
records its rounds and ends it, while the server, the store and the page are real."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.store.attempts import ClaimedJob, claim_next, finish
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.jobs import enqueue
from service.store.metrics import MetricIn, append_metrics
from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray

SPEC = {
    "task": {"kind": "lag_paper_linreg"},
    "distributed": {"workers": 3},
    "schedule": {"rounds": 3},
}
STARTING = (
    "Starting: Ray places the gang and starts its processes (often 10-20 s); "
    "the charts fill in from its first round."
)


@pytest.fixture
def store(stack: Stack) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(stack.env["LAGTRAIN_DATABASE_URL"])
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def _claimed_at_once(store: sessionmaker[Session], owner_id: int) -> ClaimedJob:
    with transaction(store) as session:
        job, _ = enqueue(session=session, owner_id=owner_id, spec=resolve(SPEC))
        claimed = claim_next(
            session=session, dispatcher_id="ui-test", lease_seconds=300, free_cpus=64, free_gpus=0
        )
        assert claimed is not None and claimed.job_id == job.id, (claimed, job.id)
        return claimed


def test_a_running_job_with_no_round_yet_says_it_is_starting(
    stack: Stack, page: Page, store: sessionmaker[Session]
) -> None:
    token, client = new_user(stack, "starting")
    with client:
        claimed = _claimed_at_once(store, client.me()["id"])
    sign_in(page, stack.url, token, f"#/jobs/{claimed.job_id}")
    expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "running")
    expect(page.locator("#no-data")).to_have_text(STARTING)
    with transaction(store) as session:
        append_metrics(
            session=session,
            job_id=claimed.job_id,
            token=claimed.fencing_token,
            attempt=claimed.attempt,
            records=[MetricIn(seq=1, round=0, values={"train_loss": 1.0}, uploaded=[0, 1, 2])],
        )
    expect(page.locator("#no-data")).to_be_hidden()  # its first round: the charts
    with transaction(store) as session:
        finish(session=session, job_id=claimed.job_id, token=claimed.fencing_token, summary={})
    expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "succeeded")
