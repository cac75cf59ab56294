"""On a 400 px wide screen every main page fits the screen (tables scroll inside their
cards, the editor takes the whole width) and plotly's charts fit their cards — in real
Chromium against a real service."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from service.client import TERMINAL_STATUSES
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, screenshot, sign_in

pytestmark = pytest.mark.ray

WIDTH = 400
SHORT: dict[str, Any] = {
    "name": "narrow-screen-job",
    "task": {"kind": "lag_paper_linreg"},
    "distributed": {"workers": 1, "cpus_per_worker": 0.25},
    "schedule": {"rounds": 4, "eval_every": 2},
}
# Each chart's drawn width against its card's inner width.
CHART_WIDTHS = """() => [...document.querySelectorAll('.chart .main-svg:first-of-type')].map(
  (svg) => [svg.getBoundingClientRect().right,
            svg.closest('.card').getBoundingClientRect().right])"""


def fits(page: Page, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, (what, width)
    for chart, card in page.evaluate(CHART_WIDTHS):
        assert chart <= card, (what, chart, card)


def test_every_main_page_fits_a_400_px_screen(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "narrow-pages")
    with client:
        ids = [client.submit(SHORT)["id"] for _ in range(2)]
        wait_until(
            lambda: all(client.job(i)["status"] in TERMINAL_STATUSES for i in ids),
            timeout=120,
            what="the jobs",
        )
    page.set_viewport_size({"width": WIDTH, "height": 800})
    sign_in(page, stack.url, token)
    expect(page.locator(f"#jobs-table tr[data-job-id='{ids[0]}']")).to_be_visible()
    fits(page, "jobs")
    pages = {
        "submit": "#spec-text",
        f"jobs/{ids[0]}": "#chart-loss .main-svg",
        f"compare?ids={ids[0]},{ids[1]}": "#chart-compare-rounds .main-svg",
        "lab": "#queue",
        "sweeps": "h1",
        "data": "h1",
    }
    for route, drawn in pages.items():
        page.goto(f"{stack.url}/#/{route}")
        expect(page.locator(drawn).first).to_be_visible()
        fits(page, route)
    # The editor, its resize handle in its bottom right corner, lies on the screen.
    page.goto(f"{stack.url}/#/submit")
    box = page.locator("#spec-text").bounding_box()
    assert box is not None and box["x"] + box["width"] <= WIDTH, box
    screenshot(page, "narrow-submit")
