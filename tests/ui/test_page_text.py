"""What the pages print, from a new user's walkthrough, in real Chromium against a real
service: a diverging metric's 2e187 as a number (not 188 digits that stretch every
table), no "null" where a sweep has no error, one draw per page load, a disabled
account marked in the Lab, no invented axes over a queued job's empty charts, an
empty table that says so — and
the Submit page takes a sweep spec too (it answered 8 "Extra inputs" errors)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Request, expect

from service.client import TERMINAL_STATUSES
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, sign_in
from tests.ui.test_sweep_page_live import sweep_spec

pytestmark = pytest.mark.ray


def test_numbers_too_large_for_an_integer_print_in_exponent_form(stack: Stack, page: Page) -> None:
    token, _client = new_user(stack, "large-numbers")
    sign_in(page, stack.url, token)
    printed = page.evaluate(
        """async () => {
             const { fmt } = await import("/ui/static/dom.js");
             return [fmt(2.0747e187), fmt(2 ** 53 + 2), fmt(-1e16), fmt(1234567),
                     fmt(0.000123456), fmt(-3), fmt(1.5e-12)];
           }"""
    )
    assert printed == [
        "2.075e+187",
        "9.007e+15",
        "-1e+16",
        "1,234,567",
        "0.0001235",
        "-3",
        "1.5e-12",
    ]


def test_the_cli_writes_a_percentage_as_the_dashboard_does(stack: Stack, page: Page) -> None:
    """`lagtrain jobs` reads the summaries' saved fractions as the jobs list does: the
    CLI's percent() against dom.js's own, ties (81.25) and ends (0, 1, 0.99995)
    included."""
    from service.cli_figures import percent

    token, _client = new_user(stack, "percent")
    sign_in(page, stack.url, token)
    fractions = [0.0, 1.0, 0.8125, 0.918, 0.99995, 0.5, 0.333333, 0.0012345, 0.25, -0.5]
    shown = page.evaluate(
        """async (fractions) => {
             const { percent } = await import("/ui/static/dom.js");
             return fractions.map(percent);
           }""",
        fractions,
    )
    assert [percent(f) for f in fractions] == shown


def hold_queue(stack: Stack, user_id: int, running: int | None) -> None:
    with stack.admin() as admin:
        admin.update_user(user_id, {"quota": {"max_running_jobs": running}})


def test_a_sweep_without_an_error_prints_no_null(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "plain-sweep")  # no "null" in the names shown
    with client:
        hold_queue(stack, client.me()["id"], 0)  # its trial jobs wait: nothing runs
        sweep = client.submit_sweep(sweep_spec("plain", trials=2, parallel=1, rounds=5))
        sign_in(page, stack.url, token, f"#/sweeps/{sweep['id']}")
        head = page.locator(".view-sweep h1").locator("xpath=..")
        expect(head.locator(".facts")).to_contain_text("finished of 2 trials")
        expect(head).not_to_contain_text("null")
        expect(page.locator("#sweep-error")).to_have_count(0)
        client.cancel_sweep(sweep["id"])
        wait_until(
            lambda: client.sweep(sweep["id"])["status"] in TERMINAL_STATUSES,
            timeout=60,
            what="the sweep's cancel",
        )


def test_a_page_load_draws_the_page_once(stack: Stack, page: Page) -> None:
    token, _client = new_user(stack, "one-draw")
    sign_in(page, stack.url, token)
    expect(page.locator(".view-jobs")).to_be_visible()
    feeds: list[Request] = []

    def is_feed(request: Request) -> bool:
        return urlparse(request.url).path == "/v1/feeds/jobs"

    page.on("request", lambda r: feeds.append(r) if is_feed(r) else None)
    # Returns at the load event, after DOMContentLoaded: a second route would be done.
    page.reload()  # the tab keeps its token: the jobs list draws at once
    expect(page.locator(".view-jobs")).to_be_visible()
    expect(page.locator("#view")).to_have_attribute("data-routes", "1")
    assert len(feeds) == 1, [r.url for r in feeds]
    # The same on a first load's sign-in form, where the second draw replaced the form
    # (and dropped a token typed into it).
    fresh = page.context.new_page()
    fresh.goto(f"{stack.url}/#/jobs")
    expect(fresh.locator("form.signin")).to_be_visible()
    expect(fresh.locator("#view")).to_have_attribute("data-routes", "1")
    fresh.close()


def test_the_lab_marks_a_disabled_account(stack: Stack, page: Page) -> None:
    _token, client = new_user(stack, "disabled")
    with client:
        me: dict[str, Any] = client.me()
    with stack.admin() as admin:
        admin.update_user(me["id"], {"disabled": True})
    sign_in(page, stack.url, stack.admin_token, "#/lab")
    row = page.locator(f"#users tr[data-user='{me['name']}']")
    expect(row.locator("td.role")).to_have_text("user · disabled")
    expect(row).to_have_class("disabled")
    admin_row = page.locator("#users tr[data-user='admin']")
    expect(admin_row.locator("td.role")).to_have_text("admin")


def test_a_queued_jobs_charts_show_no_invented_axes(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "queued-axes")
    with client:
        hold_queue(stack, client.me()["id"], 0)
        job_id = client.submit(
            {
                "task": {"kind": "lag_paper_linreg"},
                "distributed": {"workers": 3},
                "schedule": {"rounds": 5},
            }
        )["id"]
        sign_in(page, stack.url, token, f"#/jobs/{job_id}")
        expect(page.locator("#no-data")).to_be_visible()
        for chart in ("loss", "eval", "uploads", "raster"):
            drawn = page.locator(f"#chart-{chart}")
            expect(drawn.locator(".main-svg").first).to_be_attached()
            # Plotly's defaults (-1..4 for the raster's replicas, 0..M on the uploads'
            # right axis) would read as data: no tick label at all.
            expect(drawn.locator(".ytick text, .y2tick text")).to_have_count(0)
        # An empty table says so, as the jobs list does.
        expect(page.locator("#checkpoints tbody tr")).to_have_text(["No checkpoints."])
        client.cancel(job_id)


def test_the_submit_page_submits_a_sweep_spec_as_a_sweep(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "sweep-form")
    with client:
        hold_queue(stack, client.me()["id"], 0)  # 16 trials of 150 rounds: none runs
        sign_in(page, stack.url, token, "#/submit")
        page.select_option("select[name=example]", "sweep-cada2-xi")
        expect(page.locator("#spec-text")).to_have_value(re.compile(r"^base:", re.M))
        edited = page.locator("#spec-edited")
        expect(edited).to_be_hidden()
        # A sweep's 422 is shown beside its own line, as a job's is.
        text = page.locator("#spec-text").input_value()
        page.fill("#spec-text", text.replace("trials: 16", "trials: 0"))
        # The select still names the example the text no longer is: marked so.
        expect(edited).to_be_visible()
        expect(edited).to_have_text("(edited from sweep-cada2-xi)")
        page.click("#submit")
        error = page.locator(".field-error[data-field='trials']")
        expect(error).to_contain_text("greater than or equal to 1")
        expect(page.locator(".error-list li")).to_have_count(1)

        page.fill("#spec-text", text)
        expect(edited).to_be_hidden()  # the example's text again
        page.click("#submit")
        page.wait_for_url("**/#/sweeps/*")
        expect(page.locator(".view-sweep h1")).to_contain_text("cada2-xi-lr")
        sweep_id = int(page.url.rsplit("/", 1)[1])
        assert client.sweep(sweep_id)["spec"]["trials"] == 16
        client.cancel_sweep(sweep_id)
        wait_until(
            lambda: client.sweep(sweep_id)["status"] in TERMINAL_STATUSES,
            timeout=60,
            what="the sweep's cancel",
        )


def test_two_errors_on_one_line_share_its_note(stack: Stack, page: Page) -> None:
    """Two notes at one line's height were drawn over each other: one was unreadable."""
    token, _client = new_user(stack, "two-errors")
    sign_in(page, stack.url, token, "#/submit")
    page.fill("#spec-text", "task: {kind: adding}\noptimizer: {lr: -1, momentum: -1}\n")
    page.click("#submit")
    expect(page.locator(".error-list li")).to_have_count(2)
    note = page.locator("#spec-errors .field-error")
    expect(note).to_have_count(1)
    expect(note).to_contain_text("optimizer.lr")
    expect(note).to_contain_text("optimizer.momentum")


def test_compare_names_the_optimizer_as_trained_and_other_differences(
    stack: Stack, page: Page
) -> None:
    """CADA2 resolves Adam to AMSGrad without bias correction, dense to plain Adam: a
    user comparing the two with the defaults read the optimizer's accuracy gap as the
    lazy rule's, both labelled "+ adam"."""
    token, client = new_user(stack, "twins")
    with client:
        hold_queue(stack, client.me()["id"], 0)  # compared as submitted: nothing runs

        def submit(strategy: str, **optimizer: Any) -> int:
            spec = {
                "name": strategy,
                "task": {"kind": "adding"},
                "optimizer": {"name": "adam", **optimizer},
                "aggregation": {"strategy": strategy},
                "distributed": {"workers": 2},
                "schedule": {"rounds": 5},
            }
            job_id: int = client.submit(spec)["id"]
            return job_id

        dense = submit("dense")
        cada2 = submit("lasg_wk2")
        twin = submit("dense", amsgrad=True, bias_correction=False)
        sign_in(page, stack.url, token, f"#/compare?ids={dense},{cada2}")
        rows = page.locator("#compare-table tbody tr")
        expect(rows.nth(0)).to_contain_text("(dense + adam)")
        expect(rows.nth(1)).to_contain_text("(lasg_wk2 + AMSGrad without bias correction)")
        expect(page.locator("#compare-settings")).to_contain_text(
            "differ in optimizer.amsgrad, optimizer.bias_correction:"
        )
        page.goto(f"{stack.url}/#/compare?ids={twin},{cada2}")
        expect(page.locator("#compare-table tbody tr")).to_have_count(2)
        expect(page.locator("#compare-table tbody tr").nth(0)).to_contain_text(
            "(dense + AMSGrad without bias correction)"
        )
        expect(page.locator("#compare-settings")).to_have_count(0)  # twins: the rule alone
        for job_id in (dense, cada2, twin):
            client.cancel(job_id)


def test_a_request_cut_off_by_leaving_the_view_rejects_instead_of_answering_null(
    stack: Stack, page: Page
) -> None:
    """A view left while a GET's body was arriving got null for the job it awaited
    and drew it: "Cannot read properties of null (reading 'progress')" — a flaky page
    error in the sweep page's test. The queued job's event stream is a body that does
    not end: its headers come, then the view is left."""
    token, client = new_user(stack, "cut-off")
    with client:
        hold_queue(stack, client.me()["id"], 0)
        job_id = client.submit({"task": {"kind": "lag_paper_linreg"}, "schedule": {"rounds": 5}})[
            "id"
        ]
        sign_in(page, stack.url, token)
        answer = page.evaluate(
            """async (path) => {
                 const { api } = await import("/ui/static/api.js");
                 const fetchNow = window.fetch;
                 let headersCame;
                 const headers = new Promise((resolve) => { headersCame = resolve; });
                 window.fetch = async (...args) => {
                   const response = await fetchNow(...args);
                   headersCame();
                   return response;
                 };
                 try {
                   const left = new AbortController();
                   const read = api(path, { signal: left.signal });
                   await headers;
                   left.abort();
                   return await read.then((value) => ({ value }),
                                          (error) => ({ error: error.name }));
                 } finally {
                   window.fetch = fetchNow;
                 }
               }""",
            f"/v1/jobs/{job_id}/events",
        )
        assert answer == {"error": "AbortError"}
        client.cancel(job_id)
