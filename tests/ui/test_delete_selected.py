""" "Delete selected" reports what it deleted beside what it could not, and says why it
is disabled while an unfinished job is selected — in real Chromium against a real
service. One delete is lost to the network (its request aborted: the seam for a
request that never reached the server)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from service.client import TERMINAL_STATUSES, Client
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import Console, new_user, sign_in

pytestmark = pytest.mark.ray

SPEC: dict[str, Any] = {"name": "delete-me", "task": {"kind": "lag_paper_linreg"}}


def test_delete_selected_reports_deleted_and_refused_jobs(
    stack: Stack, page: Page, console: Console
) -> None:
    console.allow("net::ERR_FAILED")
    token, client = new_user(stack, "delete-selected")
    with client:
        me = client.me()["id"]
        ids = []
        for _ in range(3):
            ids.append(client.submit(SPEC)["id"])
            client.cancel(ids[-1])
        # A job a dispatcher had claimed is "cancelling" for a moment: finished first.
        wait_until(
            lambda: all(client.job(i)["status"] in TERMINAL_STATUSES for i in ids),
            timeout=60,
            what="the cancels",
        )
    with stack.admin() as admin:
        admin._request("PATCH", f"/v1/users/{me}", json={"quota": {"max_running_jobs": 0}})
    with Client(stack.url, token) as owner:
        held = owner.submit(SPEC)["id"]  # queued: the user may run none
    sign_in(page, stack.url, token)
    for job_id in [*ids, held]:
        page.check(f"#jobs-table tr[data-job-id='{job_id}'] input[type=checkbox]")
    remove = page.locator("#delete-selected")
    expect(remove).to_be_disabled()
    why = f"Only finished jobs can be deleted: job {held} is not finished."
    expect(page.locator("#delete-why")).to_have_text(why)
    expect(remove).to_have_attribute("title", why)
    page.uncheck(f"#jobs-table tr[data-job-id='{held}'] input[type=checkbox]")
    expect(remove).to_be_enabled()
    expect(page.locator("#delete-why")).to_be_hidden()

    lost = ids[1]
    page.route(f"**/v1/jobs/{lost}", lambda route: route.abort())
    page.once("dialog", lambda dialog: dialog.accept())
    remove.click()
    result = page.locator("#delete-errors")
    kept = [ids[0], ids[2]]
    expect(result.locator("#deleted")).to_have_text(f"Deleted jobs {kept[0]}, {kept[1]}.")
    expect(result.locator(".error")).to_have_text(f"job {lost}: could not reach the server")
    expect(page.locator(f"#jobs-table tr[data-job-id='{lost}']")).to_be_visible()
    for job_id in kept:
        expect(page.locator(f"#jobs-table tr[data-job-id='{job_id}']")).to_have_count(0)
    with Client(stack.url, token) as owner:
        owner.cancel(held)
