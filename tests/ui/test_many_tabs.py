"""A browser opens at most six HTTP/1.1 connections to one server, and every open
jobs list, lab, sweep or job page holds one stream: a seventh tab could not even sign
in (its requests queued behind the six streams, with no message). A hidden tab now
gives its stream back and resumes it, from Last-Event-ID, when it is shown again."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray

# Headless Chromium reports every tab as visible: a tab is hidden the way a browser
# hides it, as document.hidden and a visibilitychange event.
SET_HIDDEN = """hidden => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_hidden_tabs_give_their_streams_back_and_resume_when_shown(
    stack: Stack, context: BrowserContext, page: Page
) -> None:
    token, client = new_user(stack, "tabs")
    tabs = [page] + [context.new_page() for _ in range(5)]
    for tab in tabs:
        sign_in(tab, stack.url, token, "#/jobs")
        expect(tab.locator("#jobs-table")).to_be_visible()
    for tab in tabs[1:]:
        tab.evaluate(SET_HIDDEN, True)

    seventh = context.new_page()
    sign_in(seventh, stack.url, token, "#/jobs")  # hung here before: six streams open
    expect(seventh.locator("#jobs-table")).to_be_visible()

    # A hidden list is not live; shown again, it catches up with what it missed.
    with client:
        job_id = client.submit(
            {
                "task": {"kind": "lag_paper_linreg"},
                "distributed": {"workers": 2, "cpus_per_worker": 0.25},
                "schedule": {"rounds": 3},
            }
        )["id"]
    row = f"#jobs-table tr[data-job-id='{job_id}']"
    expect(seventh.locator(row)).to_have_count(1)
    expect(page.locator(row)).to_have_count(1)  # shown all along
    shown_again = tabs[1]
    expect(shown_again.locator(row)).to_have_count(0)
    shown_again.evaluate(SET_HIDDEN, False)
    expect(shown_again.locator(row)).to_have_count(1)
    for tab in [*tabs[1:], seventh]:
        tab.close()
