"""Presentation details from a user's walkthrough, in real Chromium against a real
service: a 420 px screen reaches every nav link and keeps ids whole."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, screenshot, sign_in
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
    # Every link still reachable: Audit opens from the wrapped nav.
    page.locator("#nav-audit").click()
    expect(page).to_have_url(re.compile(r"#/audit"))
    screenshot(page, "narrow-nav")
