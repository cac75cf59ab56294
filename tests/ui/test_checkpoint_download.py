"""A checkpoint's Download that the server refuses (deleted meanwhile, from another
tab or the CLI) says why beside the button instead of saving the API's error answer as
the checkpoint file — in real Chromium against a real service."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Download, Page, Route, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in
from tests.ui.test_submit_compare_lab import finish, short_linreg

pytestmark = pytest.mark.ray


def test_a_failed_download_says_why_and_saves_nothing(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "downloader")
    with client:
        job_id = client.submit(short_linreg("dense"))["id"]
        finish(client, job_id)
        sign_in(page, stack.url, token, f"#/jobs/{job_id}")
        # Its stream's final status redraws the checkpoints once more: after that.
        expect(page.locator(".view-job")).to_have_attribute("data-drawn-status", "succeeded")
        row = page.locator("#checkpoints tbody tr").last
        expect(row).to_be_visible()
        # Each row's Download is named for its checkpoint (not one "Download" per row).
        round_ = row.locator("td").first.inner_text()
        expect(row.locator("button.download")).to_have_accessible_name(
            f"Download checkpoint round {round_}"
        )

        # Deleted (from another tab, say) between the click and the server's answer:
        # the page's row is still there, the file no longer is. The page's own later
        # reads of the list are answered as before the delete (a page drawn before it):
        # a refresh its replayed checkpoint rounds had scheduled emptied the table
        # between the two clicks (a fresh-clone CI's failure), which is right for the
        # page but leaves no button to press again.
        listing = {"data": client.checkpoints(job_id)}
        page.route(
            re.compile(rf"/v1/jobs/{job_id}/checkpoints$"), lambda r: r.fulfill(json=listing)
        )

        def delete_first(route: Route) -> None:
            client.delete_checkpoints(job_id)
            route.continue_()

        page.route(re.compile(rf"/v1/jobs/{job_id}/checkpoints/\d+$"), delete_first)
        saved: list[Download] = []
        page.on("download", lambda download: saved.append(download))
        row.locator("button.download").click()
        error = page.locator("#checkpoints .error")
        expect(error).to_contain_text(re.compile("not found|missing"))
        assert saved == []
        # A second try replaces the message rather than stacking another.
        row.locator("button.download").click()
        expect(error).to_have_count(1)
        expect(error).to_contain_text(re.compile("not found|missing"))
