"""Pages whose event stream the server refuses (429: the user's max_streams_per_user,
held by their other pages) wait for one with a notice rather than an error, and
still show their data from plain GETs; the jobs list and job page details that go
with them ("No jobs." across every column, "no data yet" over a queued job's
charts)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from service.client import Client
from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in
from tests.ui.test_audit_page import QUEUED_FOREVER, make_user
from tests.ui.test_submit_compare_lab import finish

pytestmark = pytest.mark.ray

# live.js: refused streams are retried after 2, 4, 8, 16 s (then every 30 s).
RETRIES_S = 2 + 4 + 8 + 16


@pytest.fixture(scope="module")
def capped(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second API server over the package's store (its worker runs the jobs) that
    lets each user hold one event stream (a server counts its own)."""
    server = Stack(
        {**stack.env, "LAGTRAIN_MAX_STREAMS_PER_USER": "1"}, tmp_path_factory.mktemp("capped")
    )
    server.start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def finished(stack: Stack) -> tuple[str, dict[str, Any], int]:
    """A user's token, their finished job and its number of metric records."""
    token, client = new_user(stack, "capped")
    with client:
        job_id = client.submit(
            {
                "task": {"kind": "lag_paper_linreg"},
                "distributed": {"workers": 2, "cpus_per_worker": 0.25},
                "schedule": {"rounds": 6},
            }
        )["id"]
        job = finish(client, job_id)
        return token, job, len(client.metrics(job_id))


def hold_the_stream(context: BrowserContext, capped: Stack, token: str, job_id: int) -> Page:
    """A tab whose jobs list holds the user's one stream (its rows come only from it)."""
    holder = context.new_page()
    sign_in(holder, capped.url, token, "#/jobs")
    expect(holder.locator(f"#jobs-table tr[data-job-id='{job_id}']")).to_have_count(1)
    expect(holder.locator(".stream-wait")).to_be_hidden()
    return holder


def test_a_refused_jobs_list_shows_the_jobs_and_waits_for_a_stream(
    capped: Stack, finished: tuple[str, dict[str, Any], int], context: BrowserContext, page: Page
) -> None:
    token, job, _ = finished
    holder = hold_the_stream(context, capped, token, job["id"])

    sign_in(page, capped.url, token, "#/jobs")
    note = page.locator(".view-jobs .stream-wait")
    expect(note).to_be_visible()
    expect(note).to_contain_text("Waiting for a free event stream (you have 1 open")
    expect(page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")).to_have_count(1)
    expect(page.locator(".view-jobs .error")).to_have_count(0)

    # The slot freed, the page's next try gets it: live, the notice gone.
    holder.close()
    expect(note).to_be_hidden(timeout=(RETRIES_S + 10) * 1000)
    expect(page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")).to_have_count(1)


def test_a_refused_finished_job_page_draws_its_charts_from_its_metrics(
    capped: Stack, finished: tuple[str, dict[str, Any], int], context: BrowserContext, page: Page
) -> None:
    token, job, records = finished
    holder = hold_the_stream(context, capped, token, job["id"])

    sign_in(page, capped.url, token, f"#/jobs/{job['id']}")
    view = page.locator(".view-job")
    expect(view).to_have_attribute("data-drawn-status", "succeeded")
    for chart in ("#chart-loss", "#chart-eval", "#chart-uploads"):
        expect(page.locator(chart)).to_have_attribute("data-rounds", str(records))
    expect(page.locator("#no-data")).to_be_hidden()
    # Complete without a stream: it stops asking for one, and says nothing is wrong.
    expect(page.locator(".view-job .stream-wait")).to_be_hidden()
    expect(page.locator(".view-job .error")).to_have_count(0)
    holder.close()


def test_no_jobs_spans_every_column(stack: Stack, page: Page) -> None:
    token, _client = new_user(stack, "no-jobs")
    sign_in(page, stack.url, token, "#/jobs")
    empty = page.locator("#jobs-table tbody td", has_text="No jobs.")
    expect(empty).to_have_count(1)
    columns = page.locator("#jobs-table thead th").count()
    assert columns == 8  # no owner column for a user
    expect(empty).to_have_attribute("colspan", str(columns))


def test_a_queued_jobs_charts_say_no_data_yet(stack: Stack, page: Page) -> None:
    # max_running_jobs 0: no dispatcher claims the job; it stays queued.
    user = make_user(stack, f"queued-{secrets.token_hex(2)}", quota={"max_running_jobs": 0})
    with Client(stack.url, user["token"]) as client:
        job_id = client.submit(QUEUED_FOREVER)["id"]
        try:
            sign_in(page, stack.url, user["token"], f"#/jobs/{job_id}")
            expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "queued")
            expect(page.locator("#no-data")).to_be_visible()
            expect(page.locator("#no-data")).to_have_text(
                "No data yet: the charts fill in as the job reports its rounds."
            )
            # No tick labels: plotly's default axes (-1..4) read as data.
            expect(page.locator("#chart-loss .xtick")).to_have_count(0)
            # Cancelled while queued, it never will have data: the note says so.
            client.cancel(job_id)
            expect(page.locator("#job-status .badge")).to_have_attribute("data-status", "cancelled")
            expect(page.locator("#no-data")).to_have_text(
                "No rounds were run: the job ended before its first round."
            )
            # ... and no empty chart frames (titles, axes) under it.
            expect(page.locator("#chart-loss")).to_be_hidden()
            expect(page.locator("#raster")).to_be_hidden()
        finally:
            client.cancel(job_id)


def test_a_refused_lab_is_drawn_from_the_jobs_list(
    capped: Stack, finished: tuple[str, dict[str, Any], int], context: BrowserContext, page: Page
) -> None:
    token, job, _ = finished
    holder = hold_the_stream(context, capped, token, job["id"])
    sign_in(page, capped.url, token, "#/lab")
    expect(page.locator(".view-lab .stream-wait")).to_be_visible()
    expect(page.locator("#resources")).to_contain_text("CPU")
    expect(page.locator(".view-lab .error")).to_have_count(0)
    holder.close()
