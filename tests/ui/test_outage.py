"""The server unreachable while the user moves between pages (simulated by aborting
every request the page makes): each page says it cannot reach the server, retries,
and draws itself once the server answers — in real Chromium against a real service."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Route, expect

from service.client import Client
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import Console, new_user, sign_in

pytestmark = pytest.mark.ray

UNREACHABLE = "Cannot reach the server; retrying…"
# Chromium logs each aborted request; the pages must not log anything else.
ABORTED = "net::ERR_FAILED"


class Outage:
    """Every request from `page` (matching `pattern`) fails as if the server were down,
    until `end()`; `asked(part)` counts the requests whose URL holds `part`."""

    def __init__(self, page: Page, pattern: str = "**/*") -> None:
        self.page = page
        self.pattern = pattern
        self.urls: list[str] = []

    def _abort(self, route: Route) -> None:
        self.urls.append(route.request.url)
        route.abort()

    def start(self) -> None:
        self.page.route(self.pattern, self._abort)

    def end(self) -> None:
        self.page.unroute(self.pattern, self._abort)

    def asked(self, part: str) -> int:
        return sum(part in url for url in self.urls)


def expect_unreachable(page: Page) -> None:
    view = page.locator("#view")
    expect(page.get_by_text(UNREACHABLE)).to_be_visible()
    expect(view).not_to_contain_text("TypeError")
    expect(view).not_to_contain_text("Failed to fetch")


def test_pages_opened_during_an_outage_say_so_and_draw_once_it_ends(
    stack: Stack, page: Page, console: Console
) -> None:
    console.allow(ABORTED)
    token, client = new_user(stack, "outage")
    with client:
        job = client.submit(
            {"name": "outage", "task": {"kind": "lag_paper_linreg"}, "schedule": {"rounds": 9}}
        )
        client.cancel(job["id"])
    sign_in(page, stack.url, token)
    expect(page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")).to_be_visible()
    outage = Outage(page)

    # A page whose module was never loaded (lab.js): no import error, and drawn once back.
    outage.start()
    page.goto(f"{stack.url}/#/lab")
    expect_unreachable(page)
    outage.end()
    expect(page.locator("#queue")).to_be_visible(timeout=15_000)
    expect(page.get_by_text(UNREACHABLE)).to_be_hidden()

    # A page whose module is loaded but whose first request fails (the job's own). The
    # job was claimed before its cancel: its dispatcher acknowledges the cancel once its
    # gang has started (7.5 s in a fresh-clone CI, longer than the Lab's part above).
    with Client(stack.url, token) as again:
        wait_until(
            lambda: again.job(job["id"])["status"] == "cancelled",
            timeout=60,
            what="the cancel's acknowledgement",
        )
    page.goto(f"{stack.url}/#/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_contain_text("cancelled")
    outage.start()
    page.goto(f"{stack.url}/#/sweeps")
    expect_unreachable(page)
    page.goto(f"{stack.url}/#/jobs/{job['id']}")
    expect_unreachable(page)
    outage.end()
    expect(page.locator("#job-status")).to_contain_text("cancelled", timeout=15_000)


def test_a_page_left_during_an_outage_stops_retrying(
    stack: Stack, page: Page, console: Console
) -> None:
    console.allow(ABORTED)
    token, _ = new_user(stack, "outage-left")
    sign_in(page, stack.url, token)
    expect(page.locator("#jobs-table")).to_be_visible()
    outage = Outage(page)
    outage.start()
    page.goto(f"{stack.url}/#/submit")
    expect_unreachable(page)
    with page.expect_request(lambda r: "views/submit.js" in r.url, timeout=5_000):
        pass  # retried while shown
    page.goto(f"{stack.url}/#/jobs")
    expect_unreachable(page)
    asked = outage.asked("views/submit.js")
    # The jobs feed retries after 1, 2 and 4 s (live.js stream: backing off to 8 s):
    # 7 s, past Submit's next retry.
    for _ in range(3):
        with page.expect_request(lambda r: "/v1/feeds/jobs" in r.url, timeout=10_000):
            pass
    assert outage.asked("views/submit.js") == asked, outage.urls
    # The jobs list said it cannot reach the server, not "no jobs": its table stays
    # hidden until the feed's first page, which comes once the server is back.
    expect(page.locator("#jobs-table")).to_be_hidden()
    outage.end()
    expect(page.locator("#jobs-table")).to_contain_text("No jobs.", timeout=15_000)
    expect(page.get_by_text(UNREACHABLE)).to_be_hidden()


def test_the_audit_log_opened_during_an_outage_retries(
    stack: Stack, page: Page, console: Console
) -> None:
    console.allow(ABORTED)
    sign_in(page, stack.url, stack.admin_token, "#/audit")
    table = page.locator("#view table").first
    expect(table).to_be_visible()
    page.goto(f"{stack.url}/#/jobs")
    expect(page.locator("#jobs-table")).to_be_visible()
    # The log's own request lost (the page's other one, its users, answered).
    outage = Outage(page, "**/v1/audit?*")
    outage.start()
    page.goto(f"{stack.url}/#/audit")
    expect_unreachable(page)
    outage.end()
    expect(table).to_be_visible(timeout=15_000)
    expect(page.get_by_text(UNREACHABLE)).to_be_hidden()
