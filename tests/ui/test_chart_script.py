"""plotly.js (4.8 MB of script) is loaded by the pages that draw charts, not by every
page: the jobs list, Submit, Data, Lab and Audit open without parsing it, a job's page
loads it and draws, and a chart whose script did not load says so in its card while
the rest of the page works (a reload draws it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import Console, hold, new_user, sign_in
from tests.ui.test_submit_compare_lab import finish, short_linreg

pytestmark = pytest.mark.ray

PLOTLY = "/ui/vendor/plotly.min.js"


@pytest.fixture(scope="module")
def finished_job(stack: Stack) -> Iterator[tuple[str, dict[str, Any]]]:
    """A user's token and one finished job of theirs with records to draw."""
    token, client = new_user(stack, "charts")
    with client:
        yield token, finish(client, client.submit(short_linreg("lag_wk"))["id"])


def unavailable(route: Route) -> None:
    route.fulfill(status=503, body="unavailable")


def plotly_requests(page: Page) -> list[str]:
    seen: list[str] = []

    def on_request(request: Request) -> None:
        if request.url.endswith(PLOTLY):
            seen.append(request.url)

    page.on("request", on_request)
    return seen


def test_only_the_pages_with_charts_load_plotly(
    stack: Stack, page: Page, finished_job: tuple[str, dict[str, Any]]
) -> None:
    token, job = finished_job
    seen = plotly_requests(page)
    sign_in(page, stack.url, token)
    row = page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")
    expect(row).to_have_count(1)
    for route, ready in [
        ("#/submit", "#spec-text"),
        ("#/data", "#upload-form"),
        ("#/lab", "#users"),
        ("#/sweeps", "#sweeps"),
        ("#/jobs", "#jobs-table"),
    ]:
        page.goto(f"{stack.url}/{route}")
        expect(page.locator(ready)).to_be_visible()
    assert seen == [], seen
    assert page.evaluate("typeof window.Plotly") == "undefined"

    row.locator("a").first.click()
    loss = page.locator("#chart-loss")
    expect(loss.locator(".main-svg").first).to_be_visible()
    assert page.evaluate("node => node.data[0].y.length", loss.element_handle()) == 20
    assert len(seen) == 1, seen


def test_the_page_keeps_its_place_while_the_charts_script_loads(
    stack: Stack, page: Page, finished_job: tuple[str, dict[str, Any]]
) -> None:
    """A finished job's charts are shown from the page's first draw, each holding its
    drawn height while plotly may still be loading and before the job's records come
    over its stream: what is below does not move as they arrive (a link pressed then
    was no longer under the pointer)."""
    token, job = finished_job
    release_plotly = hold(page, f"**{PLOTLY}")
    release_events = hold(page, f"**/v1/jobs/{job['id']}/events*")
    sign_in(page, stack.url, token, f"#/jobs/{job['id']}")
    below = page.locator("#timeline tbody tr").first
    expect(below).to_be_visible()  # then the first draw (views/job.js), before any record
    expect(page.locator("#chart-loss")).to_be_visible()
    assert page.evaluate("typeof window.Plotly") == "undefined"
    before = below.bounding_box()
    release_events()
    release_plotly()
    expect(page.locator(".view-job")).to_have_attribute("data-drawn-status", "succeeded")
    expect(page.locator("#chart-raster .main-svg").first).to_be_visible()
    expect(page.locator("#chart-loss")).to_have_attribute("data-rounds", "20")
    assert below.bounding_box() == before


def test_a_chart_whose_script_did_not_load_says_so_and_a_reload_draws_it(
    stack: Stack, page: Page, console: Console, finished_job: tuple[str, dict[str, Any]]
) -> None:
    token, job = finished_job
    console.allow("the server responded with a status of 503")
    page.route(f"**{PLOTLY}", unavailable)
    sign_in(page, stack.url, token, f"#/jobs/{job['id']}")
    failed = page.locator(".chart-failed")
    # One message in each chart's card (loss, evaluation, uploads, the raster), and
    # the page's own facts shown as usual.
    expect(failed).to_have_count(4)
    expect(failed.first).to_have_text(
        "The charts could not be drawn: their script did not load (reload the page to try again)."
    )
    expect(page.locator("p.facts")).to_contain_text("uploads")

    page.unroute(f"**{PLOTLY}")
    page.reload()
    expect(page.locator("#chart-loss .main-svg").first).to_be_visible()
    expect(page.locator(".chart-failed")).to_have_count(0)


def test_a_live_page_draws_its_charts_once_the_script_loads_again(
    stack: Stack, page: Page, console: Console
) -> None:
    """A live job's page asks for the script again, at most every 5 s, as records come."""
    token, client = new_user(stack, "charts-retry")
    console.allow("the server responded with a status of 503")
    page.route(f"**{PLOTLY}", unavailable)
    with client:
        spec = short_linreg("lag_wk")
        spec["schedule"] = {"rounds": 1_000_000, "eval_every": 1000}
        job_id = client.submit(spec)["id"]
        try:
            sign_in(page, stack.url, token, f"#/jobs/{job_id}")
            expect(page.locator(".chart-failed")).to_have_count(4)
            page.unroute(f"**{PLOTLY}")
            # Asked again with a draw ≥ 5 s after the failure (charts.js).
            expect(page.locator("#chart-loss .main-svg").first).to_be_visible(timeout=30_000)
            expect(page.locator(".chart-failed")).to_have_count(0)
            expect(page.locator("#chart-loss")).to_have_attribute(
                "data-rounds", re.compile(r"^[1-9][0-9]*$")
            )
        finally:
            client.cancel(job_id)
