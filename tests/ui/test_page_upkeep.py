"""What a dashboard page costs and keeps over time, in real Chromium against a real
service: a finished job's page asks for its details a bounded number of times, a
status read that fails is read again, charts of a page left hold no listeners, the
keyboard keeps its place in a live list, a bad filter names its field, and a submit
pressed again after a lost answer makes one job (a review of the dashboard)."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import CDPSession, Page, Route, expect

from service.client import Client
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import Console, new_user, sign_in
from tests.ui.test_job_page_live import count_requests
from tests.ui.test_job_pages import LONG_LINREG_ONE_REPLICA, drawn_rounds
from tests.ui.test_many_tabs import SET_HIDDEN

pytestmark = pytest.mark.ray

ROUNDS = 300
# A checkpoint round every 3: the page's stream replays 100 of them at once.
MANY_CHECKPOINTS: dict[str, Any] = {
    "name": "many-checkpoints",
    "task": {"kind": "lag_paper_linreg"},
    "distributed": {"workers": 1, "cpus_per_worker": 0.25},
    "schedule": {"rounds": ROUNDS, "eval_every": 50, "checkpoint_every": 3},
}
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def finished_job(stack: Stack) -> Iterator[tuple[str, int]]:
    """A user's token and their succeeded job of many checkpoint rounds."""
    token, client = new_user(stack, "upkeep")
    with client:
        job_id = client.submit(MANY_CHECKPOINTS)["id"]
        wait_until(
            lambda: client.job(job_id)["status"] in FINISHED, timeout=120, what="the job's end"
        )
        assert client.job(job_id)["status"] == "succeeded"
    yield token, job_id


def test_a_finished_jobs_page_asks_for_its_details_a_few_times(
    stack: Stack, page: Page, finished_job: tuple[str, int]
) -> None:
    token, job_id = finished_job
    sign_in(page, stack.url, token)
    history = count_requests(page, f"/v1/jobs/{job_id}/history")
    page.goto(f"{stack.url}/#/jobs/{job_id}")
    expect(page.locator("#chart-loss")).to_have_attribute("data-rounds", str(ROUNDS))
    expect(page.locator("#checkpoints tbody tr").first).to_be_visible()
    # Drawn after the replay, whose checkpoint rounds each sent their GETs at once (100
    # of them); now the first draw, one for each status the stream replays, and one the
    # replay's checkpoint rounds scheduled.
    assert len(history) <= 8, history


def window_resize_listeners(cdp: CDPSession) -> int:
    window = cdp.send("Runtime.evaluate", {"expression": "window"})["result"]["objectId"]
    listeners = cdp.send("DOMDebugger.getEventListeners", {"objectId": window})["listeners"]
    return sum(1 for listener in listeners if listener["type"] == "resize")


def test_charts_of_a_page_left_hold_no_window_listeners(
    stack: Stack, page: Page, finished_job: tuple[str, int]
) -> None:
    token, job_id = finished_job
    sign_in(page, stack.url, token)
    cdp = page.context.new_cdp_session(page)
    counts = []
    for _ in range(3):
        page.goto(f"{stack.url}/#/jobs/{job_id}")
        expect(page.locator("#chart-raster")).to_have_attribute("data-rounds", str(ROUNDS))
        page.goto(f"{stack.url}/#/jobs")
        expect(page.locator("#jobs-table")).to_be_visible()
        counts.append(window_resize_listeners(cdp))
    # Plotly's responsive charts each added one (4 a visit) until purged.
    assert counts[0] == counts[-1], counts


def test_a_bad_filter_names_its_field(stack: Stack, page: Page) -> None:
    sign_in(page, stack.url, stack.admin_token)
    page.goto(f"{stack.url}/#/jobs?owner=bob%20smith")
    expect(page.locator(".view .error")).to_contain_text("owner:")


def test_a_live_list_keeps_the_keyboard_and_a_terminal_status_read_is_retried(
    stack: Stack, page: Page, console: Console
) -> None:
    token, client = new_user(stack, "keeps")
    with client:
        job_id = client.submit(LONG_LINREG_ONE_REPLICA)["id"]
        sign_in(page, stack.url, token)
        box = page.get_by_label(f"select job {job_id}")
        wait_until(
            lambda: client.job(job_id)["status"] == "running", timeout=60, what="the job's start"
        )
        box.focus()
        page.keyboard.press("Space")
        expect(box).to_be_checked()
        table = page.locator("#jobs-table")
        updates = int(table.get_attribute("data-updates") or 0)
        # The feed sends a page as the job's progress moves: redrawn twice since.
        wait_until(
            lambda: int(table.get_attribute("data-updates") or 0) >= updates + 2,
            timeout=30,
            what="two feed pages",
        )
        focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
        assert focused == f"select job {job_id}"
        expect(box).to_be_checked()

        # The job's page: every read of the job fails until it has ended and once more
        # (a server restarting just then); the page reads it again and shows the end.
        page.goto(f"{stack.url}/#/jobs/{job_id}")
        wait_until(lambda: drawn_rounds(page, "#chart-loss") > 0, timeout=60, what="points")
        failed_after_end: list[str] = []

        def flaky(route: Route) -> None:
            if client.job(job_id)["status"] not in FINISHED or not failed_after_end:
                if client.job(job_id)["status"] in FINISHED:
                    failed_after_end.append(route.request.url)
                route.fulfill(status=503, json={"detail": "restarting"})
            else:
                route.continue_()

        console.allow("status of 503")
        page.route(f"**/v1/jobs/{job_id}", flaky)
        client.cancel(job_id)
        expect(page.locator("#job-status")).to_contain_text("cancelled", timeout=30_000)
        assert failed_after_end
        expect(page.locator(".view > .error")).to_have_count(0)


def test_a_submit_pressed_again_after_a_lost_answer_makes_one_job(
    stack: Stack, page: Page, console: Console
) -> None:
    token, client = new_user(stack, "submit-once")
    keys: list[str | None] = []

    def lose_first_answer(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        keys.append(route.request.headers.get("idempotency-key"))
        if len(keys) == 1:
            route.fetch()  # the server makes the job; its answer is lost on the way
            route.fulfill(status=502, body="bad gateway")
        else:
            route.continue_()

    console.allow("status of 502")
    sign_in(page, stack.url, token, "#/submit")
    page.fill("#spec-text", "task: {kind: lag_paper_linreg}\nschedule: {rounds: 7}\n")
    page.route("**/v1/jobs", lose_first_answer)
    page.click("#submit")
    expect(page.locator(".error-list")).to_contain_text("Cannot reach the server")
    page.click("#submit")
    expect(page.locator("#job-status")).to_be_visible()
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys
    with client:
        assert len(client.jobs()) == 1, client.jobs()


def test_a_hidden_tab_polls_nothing_until_it_is_shown(stack: Stack, page: Page) -> None:
    # A job its owner's quota keeps queued: its page asks for its explanation every 3 s.
    with stack.admin() as admin:
        created = admin._request(
            "POST",
            "/v1/users",
            json={"name": f"hidden-{secrets.token_hex(3)}", "quota": {"max_running_jobs": 0}},
        )
    client = Client(stack.url, created["token"])
    with client:
        job_id = client.submit(LONG_LINREG_ONE_REPLICA)["id"]
        explains = count_requests(page, f"/v1/jobs/{job_id}/explain")
        sign_in(page, stack.url, created["token"], f"#/jobs/{job_id}")
        expect(page.locator("#queue-place")).to_be_visible()

        def asked_over(count: int) -> bool:
            page.evaluate("0")  # Playwright hands over the page's request events
            return len(explains) > count

        wait_until(lambda: asked_over(1), timeout=30, what="a poll of the explanation")
        page.evaluate(SET_HIDDEN, True)
        asked = len(explains)
        page.wait_for_timeout(7_000)  # an observation window: two of its polls' intervals
        assert len(explains) <= asked + 1, explains  # (one may have been on its way)
        page.evaluate(SET_HIDDEN, False)
        expect(page.locator("#queue-place")).to_be_visible()
        wait_until(lambda: asked_over(asked + 1), timeout=30, what="polls again once shown")
        client.cancel(job_id)


# The start times (ms) of the page's requests of `path`, as the browser timed them.
STARTS = """path => performance.getEntriesByType("resource")
  .filter((e) => new URL(e.name).pathname === path).map((e) => e.startTime)"""


def test_an_open_lab_asks_for_the_cluster_at_most_every_two_seconds(
    stack: Stack, page: Page
) -> None:
    token, client = new_user(stack, "lab-pace")
    with client:
        job_id = client.submit(LONG_LINREG_ONE_REPLICA)["id"]
        wait_until(
            lambda: client.job(job_id)["status"] == "running", timeout=60, what="the job's start"
        )
        sign_in(page, stack.url, token, "#/lab")
        lab = page.locator(".view-lab")
        # Each draw of the Lab asks for the cluster; the running job's progress sends a
        # feed page every 0.5 s.
        wait_until(
            lambda: int(lab.get_attribute("data-updates") or 0) >= 4, timeout=60, what="4 draws"
        )
        starts = page.evaluate(STARTS, "/v1/cluster")
        client.cancel(job_id)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(starts) >= 4 and min(gaps) >= 1_900, gaps


def test_a_status_read_the_server_refuses_is_not_read_again(
    stack: Stack, page: Page, console: Console
) -> None:
    """A 404 for the job (deleted from another tab between its status event and the
    read) is said once; only a server that is unreachable or failing is asked again."""
    token, client = new_user(stack, "gone")
    with client:
        job_id = client.submit(LONG_LINREG_ONE_REPLICA)["id"]
        sign_in(page, stack.url, token, f"#/jobs/{job_id}")
        wait_until(lambda: drawn_rounds(page, "#chart-loss") > 0, timeout=60, what="points")
        reads = count_requests(page, f"/v1/jobs/{job_id}")
        console.allow("status of 404")
        page.route(
            f"**/v1/jobs/{job_id}",
            lambda route: route.fulfill(status=404, json={"detail": f"job {job_id} not found"}),
        )
        client.cancel(job_id)
        expect(page.locator(".view > .error")).to_contain_text("not found", timeout=30_000)
        wait_until(
            lambda: client.job(job_id)["status"] in FINISHED, timeout=30, what="the job's end"
        )
        page.wait_for_timeout(4_000)  # an observation window: three retries' worth
    # One read per status event (cancelling, cancelled), none after.
    assert len(reads) <= 2, reads
