"""Small layout and text details: the jobs toolbar's buttons on one line with Filter,
and the Data page's format hint — in real Chromium against a real service."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray


def test_jobs_toolbar_buttons_line_up_and_data_says_the_csv_format(
    stack: Stack, page: Page
) -> None:
    token, _ = new_user(stack, "layout")
    sign_in(page, stack.url, token)
    expect(page.locator("#jobs-table")).to_be_visible()
    tops = [
        box["y"]
        for box in (
            page.locator(selector).bounding_box()
            for selector in (
                ".filters button[type=submit]",
                "#compare-selected",
                "#delete-selected",
            )
        )
        if box is not None
    ]
    assert len(tops) == 3 and max(tops) - min(tops) <= 1, tops

    # A CSV's label is its first column (docs/tasks.md): said beside the upload form.
    page.goto(f"{stack.url}/#/data")
    hint = page.locator("#upload-form ~ #format-hint")
    expect(hint).to_contain_text("the label (an integer class 0")
    expect(hint).to_contain_text("first, then the sequence's values")
    expect(hint).to_contain_text("UTF-8 plain text")
