"""Presentation details from a user's walkthrough, in real Chromium against a real
service: a 420 px screen reaches every nav link and keeps ids whole, the jobs and
sweeps pagers go back one page, chart titles stay clear of plotly's mode bar, a long
run's uploads a round are a rolling mean, and Compare marks a partial run."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import FloatRect, Page, expect

from service.client import TERMINAL_STATUSES
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, screenshot, sign_in
from tests.ui.test_submit_compare_lab import finish, short_linreg
from tests.ui.test_sweep_compare_details import submit_and_cancel

pytestmark = pytest.mark.ray

NARROW = 420

# The number of lines a node's text lies on.
TEXT_LINES = """(node) => {
  const range = document.createRange();
  range.selectNodeContents(node);
  return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
}"""


def test_a_narrow_screen_reaches_every_nav_link_and_keeps_ids_whole(
    stack: Stack, page: Page
) -> None:
    _token, client = new_user(stack, "narrow")
    with client:
        job_id = submit_and_cancel(client, "a-name-long-enough-to-squeeze-the-table-" * 2)
    page.set_viewport_size({"width": NARROW, "height": 800})
    sign_in(page, stack.url, stack.admin_token)  # an admin's nav has Audit too
    links = [*page.locator("#nav a").all(), page.locator("#signout")]
    assert len(links) == 8
    for link in links:
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= NARROW, (link.inner_text(), box)
    cell = page.locator(f"#jobs-table tr[data-job-id='{job_id}'] td").nth(1)
    expect(cell).to_have_text(str(job_id))
    assert cell.evaluate("(td) => getComputedStyle(td).whiteSpace") == "nowrap"
    assert cell.locator("a").evaluate(TEXT_LINES) == 1
    # The jobs table is wider than the screen: it scrolls inside its card, the page
    # does not (it did, its header ending at the screen's edge).
    holder = page.locator("#jobs-table").locator("xpath=..")
    assert holder.evaluate("(node) => node.scrollWidth > node.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW
    # Every link still reachable: Audit opens from the wrapped nav.
    page.locator("#nav-audit").click()
    expect(page).to_have_url(re.compile(r"#/audit"))
    screenshot(page, "narrow-nav")


def test_the_jobs_pager_goes_back_one_page_and_keeps_the_browser_back(
    stack: Stack, page: Page
) -> None:
    token, client = new_user(stack, "pager")
    with client:
        ids = [submit_and_cancel(client, f"page-{n}") for n in range(3)]
    sign_in(page, stack.url, token, "#/jobs?limit=1")
    first = page.locator("#jobs-table tbody tr").first

    def on(job_id: int) -> None:
        expect(first).to_have_attribute("data-job-id", str(job_id))

    on(ids[2])
    expect(page.locator("#newest")).to_have_count(0)
    page.click("#older")
    on(ids[1])
    # On the second page the newer page is the newest: one link, not two.
    expect(page.locator("#newest")).to_be_visible()
    expect(page.locator("#newer")).to_have_count(0)
    page.click("#older")
    on(ids[0])
    expect(page.locator("#older")).to_have_count(0)
    page.click("#newer")
    on(ids[1])
    expect(page.locator("#newer")).to_have_count(0)
    page.click("#older")  # the same page three again, from the stack in the URL
    on(ids[0])
    page.reload()  # the stack lives in the URL: a reload keeps it
    on(ids[0])
    page.click("#newer")
    on(ids[1])
    page.click("#newest")
    on(ids[2])
    page.go_back()
    on(ids[1])
    page.go_back()
    on(ids[0])
    expect(page.locator("#newer")).to_be_visible()


def test_the_sweeps_pager_goes_back_one_page(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "sweep-pager")
    spec: dict[str, Any] = {
        "base": short_linreg("lag_wk"),
        "parameters": {"aggregation.xi": {"type": "float", "low": 0.01, "high": 1.0}},
        "objectives": [{"metric": "val_loss", "direction": "minimize"}],
        "trials": 1,
        "parallel": 1,
        "sampler": "random",
        "seed": 0,
    }
    with client:
        ids = []
        for n in range(3):
            sweep_id = client.submit_sweep({**spec, "name": f"sweep-{n}"})["id"]
            client.cancel_sweep(sweep_id)
            ids.append(sweep_id)
        wait_until(
            lambda: all(client.sweep(i)["status"] in TERMINAL_STATUSES for i in ids),
            timeout=60,
            what="the cancelled sweeps",
        )
    sign_in(page, stack.url, token, "#/sweeps?limit=1")
    first = page.locator("#sweeps tbody tr").first
    expect(first).to_have_attribute("data-sweep-id", str(ids[2]))
    page.click("#older-sweeps")
    expect(first).to_have_attribute("data-sweep-id", str(ids[1]))
    expect(page.locator("#newer-sweeps")).to_have_count(0)
    page.click("#older-sweeps")
    expect(first).to_have_attribute("data-sweep-id", str(ids[0]))
    page.click("#newer-sweeps")
    expect(first).to_have_attribute("data-sweep-id", str(ids[1]))
    page.click("#newest-sweeps")
    expect(first).to_have_attribute("data-sweep-id", str(ids[2]))


def overlap(a: FloatRect, b: FloatRect) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def test_chart_titles_clear_the_mode_bar_and_long_runs_average_uploads(
    stack: Stack, page: Page
) -> None:
    token, client = new_user(stack, "charts")
    with client:
        spec = {**short_linreg("lag_wk"), "schedule": {"rounds": 200_000, "eval_every": 50}}
        job = client.submit(spec)
        try:
            sign_in(page, stack.url, token, f"#/jobs/{job['id']}")
            uploads = page.locator("#chart-uploads")
            # Past 200 rounds the per-round line is a band: a rolling mean, named so.
            wait_until(
                lambda: int(uploads.get_attribute("data-rounds") or 0) > 250,
                timeout=120,
                what="250 rounds drawn",
            )
            name = uploads.evaluate("(chart) => chart.data[0].name")
            assert re.fullmatch(r"uploads a round \(mean of the last \d+ rounds\)", name), name
            expect(uploads.locator(".legendtext").first).to_have_text(name)
            values = uploads.evaluate("(chart) => chart.data[0].y")
            assert any(v != int(v) for v in values), "per-round counts, not means"
            for chart in ("#chart-loss", "#chart-eval", "#chart-uploads", "#chart-raster"):
                page.locator(chart).hover()
                bar = page.locator(f"{chart} .modebar")
                expect(bar).to_be_visible()
                title = page.locator(f"{chart} .gtitle")
                bar_box, title_box = bar.bounding_box(), title.bounding_box()
                assert bar_box is not None and title_box is not None
                assert not overlap(bar_box, title_box), (chart, bar_box, title_box)
            screenshot(page, "job-charts-hover")
        finally:
            client.cancel(job["id"])


def test_compare_marks_a_run_that_did_not_succeed_as_partial(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "partial")
    with client:
        done = client.submit(short_linreg("dense"))["id"]
        finish(client, done)
        cancelled = submit_and_cancel(client, "cancelled")
    sign_in(page, stack.url, token, f"#/compare?ids={done},{cancelled}")
    ratio = page.locator(f"#compare-table tr[data-job-id='{cancelled}'] .ratio")
    expect(ratio.locator(".partial-mark")).to_contain_text("partial")
    expect(page.locator(f"#compare-table tr[data-job-id='{done}'] .partial-mark")).to_have_count(0)
    expect(page.locator("#compare-partial")).to_contain_text("only the rounds it ran")
