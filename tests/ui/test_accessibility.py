"""Page titles, the nav's current page, and the Tab order of the jobs list and the
Submit page — in real Chromium against a real service."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray


def test_titles_current_page_and_tab_order(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "a11y")
    with client:
        job_id = client.submit({"name": "a11y", "task": {"kind": "lag_paper_linreg"}})["id"]
        client.cancel(job_id)
    sign_in(page, stack.url, token)
    nav = page.locator("#nav")
    expect(page).to_have_title("Jobs · lagtrain")
    expect(nav.locator("a[aria-current]")).to_have_count(1)
    expect(nav.locator("a[aria-current='page']")).to_have_text("Jobs")

    # One tab stop a row: the id's link (the same page as the name's) is skipped.
    row = page.locator(f"#jobs-table tr[data-job-id='{job_id}']")
    row.locator("input[type=checkbox]").focus()
    page.keyboard.press("Tab")
    expect(row.locator("td").nth(2).locator("a")).to_be_focused()

    page.goto(f"{stack.url}/#/lab")
    expect(page).to_have_title("Lab · lagtrain")
    expect(nav.locator("a[aria-current='page']")).to_have_text("Lab")
    expect(nav.locator("a[aria-current]")).to_have_count(1)
    # A job's page is in the jobs list: marked so, not as the page itself.
    page.goto(f"{stack.url}/#/jobs/{job_id}")
    expect(page).to_have_title(f"job {job_id} · lagtrain")
    expect(nav.locator("a[aria-current='page']")).to_have_count(0)
    expect(nav.locator("a[aria-current='true']")).to_have_text("Jobs")

    # Submit: the example, then the spec, then the Submit button.
    page.goto(f"{stack.url}/#/submit")
    expect(page).to_have_title("Submit · lagtrain")
    page.locator("select[name=example]").focus()
    page.keyboard.press("Tab")
    expect(page.locator("#spec-text")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#submit")).to_be_focused()
