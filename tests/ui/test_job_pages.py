"""Sign in, the live jobs list, a running job's live curves and raster, cancel, and
another user's job staying invisible — in real Chromium against a real service."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from service.client import Client
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import Console, new_user, press, screenshot, sign_in
from tests.ui.test_audit_page import make_user

pytestmark = pytest.mark.ray

# Long enough to still run while the test watches it; the test cancels it.
LONG_LINREG: dict[str, Any] = {
    "name": "linreg-lag-live",
    "task": {"kind": "lag_paper_linreg"},
    "aggregation": {"strategy": "lag_wk"},
    "distributed": {"workers": 3, "cpus_per_worker": 0.25},
    "schedule": {"rounds": 200_000, "eval_every": 20},
}
# The same job on one replica, for tests about the page rather than the gang (the
# raster's rows are test_live_job_page_curves_raster_and_cancel's): a cancelled job's
# actors are killed, not handed to the warm pool, so each of its 4 actors (3 replicas
# and the driver) was a fresh process that imports torch; this one starts 2.
LONG_LINREG_ONE_REPLICA: dict[str, Any] = {
    **LONG_LINREG,
    "distributed": {"workers": 1, "cpus_per_worker": 0.25},
}


def drawn_rounds(page: Page, chart: str) -> int:
    return int(page.get_attribute(chart, "data-rounds") or 0)


def test_sign_in_rejects_a_bad_token_and_keeps_tokens_out_of_urls(stack: Stack, page: Page) -> None:
    page.goto(f"{stack.url}/")
    page.fill("#token", "not-a-token")
    page.click("form.signin button[type=submit]")
    expect(page.locator("form.signin .error")).to_contain_text("not valid")
    sign_in(page, stack.url, stack.admin_token)
    expect(page.locator("#who")).to_contain_text("admin")
    assert stack.admin_token not in page.url
    assert stack.admin_token not in stack.logs()


def test_api_docs_render_from_this_server_alone(stack: Stack, page: Page, console: Console) -> None:
    """/docs and /redoc draw the API with every script and style sheet from the server
    itself: a lab's cluster network may have no internet (FastAPI's default pages
    load them from a CDN)."""
    code = {"document", "script", "stylesheet", "fetch", "xhr"}  # blob: = the page's own
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda r: (
            elsewhere.append(r.url)
            if r.resource_type in code and not r.url.removeprefix("blob:").startswith(stack.url)
            else None
        ),
    )
    # ReDoc's "powered by" footer links a logo image on its own CDN: cosmetic, and
    # unreachable here as on an offline cluster.
    console.allow("ERR_NAME_NOT_RESOLVED")
    # Both pages lay out the whole OpenAPI document in the browser: on a loaded machine
    # (load 15) /docs took over expect's 5 s default to draw.
    drawn = 30_000
    page.goto(f"{stack.url}/docs")
    expect(page.locator(".opblock-summary-path", has_text="/v1/jobs").first).to_be_visible(
        timeout=drawn
    )
    page.goto(f"{stack.url}/redoc")
    expect(page.get_by_text("/v1/sweeps/{sweep_id}/cancel").first).to_be_attached(timeout=drawn)
    assert elsewhere == [], elsewhere


def test_live_job_page_curves_raster_and_cancel(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "watcher")
    with client:
        job = client.submit(LONG_LINREG)
    sign_in(page, stack.url, token)
    row = page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")
    expect(row).to_be_visible()
    # The list is live: the row turns running without a reload.
    expect(row).to_have_attribute("data-status", "running", timeout=60_000)

    row.locator("a").first.click()
    expect(page.locator("#job-status")).to_contain_text("running")
    wait_until(lambda: drawn_rounds(page, "#chart-loss") > 0, timeout=60, what="first points")
    first = drawn_rounds(page, "#chart-loss")
    wait_until(
        lambda: drawn_rounds(page, "#chart-loss") > first + 5,
        timeout=60,
        what="the loss curve to gain points while the job runs",
    )
    # Plotly drew real traces: a loss line and the raster's heatmap.
    expect(page.locator("#chart-loss .scatterlayer .trace")).to_have_count(1)
    # The paper task's own metric, live, on a log axis (its first draw had no metric).
    expect(page.locator("#chart-eval .gtitle")).to_have_text("optimality_gap")
    assert page.locator("#chart-eval").evaluate("(node) => node._fullLayout.yaxis.type") == "log"
    expect(page.locator("#chart-raster .hm, #chart-raster image").first).to_be_attached()
    # Closed, the raster stops redrawing; opened again, it catches up with the curves.
    page.click("#raster summary", no_wait_after=True)
    expect(page.locator("#chart-raster")).to_be_hidden()
    closed_at = drawn_rounds(page, "#chart-raster")
    wait_until(
        lambda: drawn_rounds(page, "#chart-loss") > closed_at + 2, timeout=60, what="new rounds"
    )
    assert drawn_rounds(page, "#chart-raster") <= closed_at + 1
    page.click("#raster summary", no_wait_after=True)
    wait_until(
        lambda: drawn_rounds(page, "#chart-raster") > closed_at + 2, timeout=10, what="the raster"
    )
    expect(page.locator("#timeline tbody tr").first).to_be_visible()
    expect(page.locator("#delete-checkpoints")).to_be_hidden()  # it may still resume
    expect(page.locator("#delete-job")).to_be_hidden()  # a running job is cancelled first
    screenshot(page, "job")

    # The page asks first: declined, the job runs on; accepted, it stops.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#cancel")
    expect(page.locator("#job-status")).to_contain_text("running")
    expect(page.locator("#cancel")).to_be_enabled()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel")
    expect(page.locator("#job-status")).to_contain_text("cancelled", timeout=60_000)
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#delete-job")).to_be_visible()  # finished, it may go
    expect(page.locator("#timeline")).to_contain_text("cancelled")
    # Stopped early, it keeps the summary of the rounds it ran and says how far it got;
    # the list shows its uploads saved, not "—".
    stopped = re.compile(r" · stopped at round [1-9]\d* of 200000")
    expect(page.locator("#stopped-at")).to_have_text(stopped)
    expect(page.locator("p.facts")).to_contain_text(" dense (")
    page.goto(f"{stack.url}/#/jobs")
    expect(row.locator("td.uploads-saved")).to_have_text(re.compile(r"\d+(\.\d+)? %"))

    # Deleted meanwhile (from another tab, or the CLI): Delete job on its open page
    # still ends on the jobs list, as if it had deleted it, not on an error.
    page.goto(f"{stack.url}/#/jobs/{job['id']}")
    expect(page.locator("#delete-job")).to_be_visible()
    with Client(stack.url, token) as owner:
        owner.delete_job(job["id"])
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-job")
    expect(page).to_have_url(f"{stack.url}/#/jobs")
    expect(page.locator("#jobs-table")).to_have_attribute("data-updates", re.compile("^[1-9]"))
    expect(row).to_have_count(0)
    expect(page.locator("#view .error")).to_have_count(0)


def test_a_row_pressed_while_its_status_changes_still_opens_its_job(
    stack: Stack, page: Page
) -> None:
    # max_running_jobs 0: no dispatcher claims the job; it stays queued until cancelled.
    user = make_user(stack, "presser", quota={"max_running_jobs": 0})
    with Client(stack.url, user["token"]) as client:
        job = client.submit(LONG_LINREG)
        sign_in(page, stack.url, user["token"])
        row = page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")
        expect(row).to_have_attribute("data-status", "queued")
        # Its name pressed, its row redrawn (the feed's cancelled), then released: the
        # row was kept and rewritten, so the click opens the job (a replaced row lost it).
        press(page, row.locator("td.name a"))
        client.cancel(job["id"])
        expect(row).to_have_attribute("data-status", "cancelled", timeout=30_000)
        page.mouse.up()
        expect(page).to_have_url(f"{stack.url}/#/jobs/{job['id']}")

        # A new job arriving at the top of the list is inserted above the shown rows:
        # each link stays its own job's (matched by place, each row was rewritten, and
        # a link pressed then opened the job that had moved into its row).
        page.go_back()
        link = row.locator("td.name a")
        expect(link).to_be_visible()
        link.evaluate("(a) => { a.drawnBefore = true; }")  # a property, not markup
        newer = client.submit(LONG_LINREG)["id"]
        expect(page.locator(f"#jobs-table tr[data-job-id='{newer}']")).to_be_visible()
        kept = "[...document.querySelectorAll('#jobs-table a')].filter((a) => a.drawnBefore)"
        assert page.evaluate(f"{kept}.map((a) => a.getAttribute('href'))") == [
            f"#/jobs/{job['id']}"
        ]
        client.cancel(newer)


def test_a_user_cannot_see_another_users_job(stack: Stack, page: Page) -> None:
    _alice_token, alice = new_user(stack, "alice")
    bob_token, _bob = new_user(stack, "bob")
    with alice:
        job = alice.submit({**LONG_LINREG, "schedule": {"rounds": 5}})
    sign_in(page, stack.url, bob_token)
    expect(page.locator("#jobs-table")).to_be_visible()
    wait_until(
        lambda: page.get_attribute("#jobs-table", "data-updates"), timeout=20, what="the list"
    )
    expect(page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")).to_have_count(0)
    page.goto(f"{stack.url}/#/jobs/{job['id']}")
    expect(page.locator("#view .error")).to_contain_text("not found")


def test_csp_refuses_injected_scripts_and_cross_site_pages_cannot_cancel(
    stack: Stack, context: BrowserContext, page: Page, console: Console
) -> None:
    token, client = new_user(stack, "target")
    with client:
        job = client.submit(LONG_LINREG_ONE_REPLICA)
        sign_in(page, stack.url, token, f"#/jobs/{job['id']}")
        expect(page.locator("#job-status")).to_be_visible()

        # An injected inline script (say, through a stored XSS) does not run.
        console.allow("Executing inline script violates the following Content Security Policy")
        ran = page.evaluate(
            """() => { const s = document.createElement('script');
                       s.textContent = 'window.injected = true';
                       document.head.append(s); return window.injected === true; }"""
        )
        assert ran is False

        # A page on another site, in the same browser where the user is signed in,
        # posts a form and a credentialed fetch at the cancel route.
        evil = context.new_page()
        evil.route(
            "http://evil.test/",
            lambda route: route.fulfill(
                content_type="text/html",
                body=f"""<form id=f method=post action="{stack.url}/v1/jobs/{job["id"]}/cancel">
                </form><script>
                fetch("{stack.url}/v1/jobs/{job["id"]}/cancel",
                      {{method: "POST", credentials: "include", mode: "no-cors"}})
                  .finally(() => document.getElementById("f").submit());
                </script>""",
            ),
        )
        with evil.expect_navigation(url=f"{stack.url}/**"):
            evil.goto("http://evil.test/")
        assert "missing bearer token" in (evil.content())
        status = client.job(job["id"])["status"]
        assert status in ("queued", "running"), status
        client.cancel(job["id"])


def test_admin_filters_by_owner_and_status_newest_first_paginated(stack: Stack, page: Page) -> None:
    _token, client = new_user(stack, "many")
    with client:
        owner = client._request("GET", "/v1/users/me")["name"]
        ids = [client.submit({**LONG_LINREG, "schedule": {"rounds": 3}})["id"] for _ in range(3)]
    sign_in(page, stack.url, stack.admin_token, f"#/jobs?owner={owner}&limit=2")
    rows = page.locator("#jobs-table tbody tr")
    expect(rows).to_have_count(2)
    assert [int(r.get_attribute("data-job-id") or 0) for r in rows.all()] == ids[:0:-1]
    expect(page.locator("#jobs-table td.owner").first).to_have_text(owner)
    page.click("#older")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", str(ids[0]))
    # The status filter narrows the live list as soon as it is chosen (no Filter click).
    page.select_option("select[name=status]", "running")
    expect(page).to_have_url(re.compile(r"status=running"))
    for row in rows.all():
        assert row.get_attribute("data-status") in (None, "running")
