"""Routes naming no job: `#/jobs/abc` says so without asking the server; a comparison
of jobs none of which can be shown draws only their messages; a part of `ids` that is
no id is named — in real Chromium against a real service."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray

MISSING = 999_999_999


def test_ids_that_name_no_job_say_so(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "bad-ids")
    with client:
        own = client.submit({"name": "bad-ids", "task": {"kind": "lag_paper_linreg"}})["id"]
        client.cancel(own)
    sign_in(page, stack.url, token)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "abc" in request.url else None)

    page.goto(f"{stack.url}/#/jobs/abc")
    expect(page.locator("#view .error")).to_have_text("No job 'abc': a job id is a number.")
    page.goto(f"{stack.url}/#/sweeps/x1")
    expect(page.locator("#view .error")).to_have_text("No sweep 'x1': a sweep id is a number.")
    assert [url for url in asked if "/v1/" in url] == []

    # Neither job can be shown: their messages, and no empty charts, chooser or table.
    page.goto(f"{stack.url}/#/compare?ids={MISSING},{MISSING + 1}")
    errors = page.locator("#view .error")
    expect(errors).to_have_count(2)
    expect(errors.first).to_contain_text("not found")
    expect(page.locator("#view .chart, #view table, #view select")).to_have_count(0)

    # One job shown, and the part that is no id named.
    page.goto(f"{stack.url}/#/compare?ids={own},{MISSING},abc")
    expect(page.locator("#view .error")).to_have_count(2)
    expect(page.locator("#view")).to_contain_text("No job 'abc': a job id is a number.")
    expect(page.locator("#view .chart").first).to_be_attached()
