"""The sweep page while its sweep runs, in real Chromium against a real service: it
reaches the sweep's final state without a reload (and so does the sweeps list), it
cancels the sweep and, once finished, deletes it with its trials' jobs."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Dialog, Page, Request, Route, expect

from service.api.deps import MAX_PAGE
from service.client import TERMINAL_STATUSES, ApiError
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, press, sign_in
from tests.ui.test_submit_compare_lab import short_linreg

pytestmark = pytest.mark.ray

POLL_S = 2.0  # views/sweep.js's POLL_MS
LIST_POLL_S = 3.0  # views/sweeps.js's POLL_MS


def sweep_spec(name: str, *, trials: int, parallel: int, rounds: int) -> dict[str, Any]:
    return {
        "name": name,
        "base": {**short_linreg("lag_wk"), "schedule": {"rounds": rounds, "eval_every": 5}},
        "parameters": {"aggregation.xi": {"type": "float", "low": 0.01, "high": 1.0, "log": True}},
        "objectives": [
            {"metric": "val_loss", "direction": "minimize"},
            {"metric": "bytes_up_total", "direction": "minimize"},
        ],
        "trials": trials,
        "parallel": parallel,
        "sampler": "random",
        "seed": 0,
    }


def count_gets(page: Page, sweep_id: int) -> list[str]:
    """The page's GETs of the sweep itself (not /cancel), as they are sent."""
    seen: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "GET" and urlparse(request.url).path == f"/v1/sweeps/{sweep_id}":
            seen.append(request.url)

    page.on("request", on_request)
    return seen


def count_job_reads(page: Page) -> tuple[list[str], list[str]]:
    """The page's GETs of single jobs (/v1/jobs/{id}) and of the sweep's jobs listing
    (/v1/jobs?sweep_id=), as they are sent."""
    single: list[str] = []
    listed: list[str] = []

    def on_request(request: Request) -> None:
        url = urlparse(request.url)
        if request.method == "GET" and re.fullmatch(r"/v1/jobs/\d+", url.path):
            single.append(request.url)
        elif request.method == "GET" and url.path == "/v1/jobs" and "sweep_id=" in url.query:
            listed.append(request.url)

    page.on("request", on_request)
    return single, listed


def drawn_front(page: Page) -> list[int]:
    """The trials the chart draws as its front (or best)."""
    front = page.get_attribute("#chart-sweep", "data-front") or ""
    return sorted(int(n) for n in front.split(",") if n)


def silence_feed(page: Page) -> list[str]:
    """The jobs feed connects and ends at once, with no event (the page reconnects a
    second later): no feed event follows the controller's last write, every time —
    with the real feed that is a race the page only sometimes loses. Returns the
    feed's requests, as they are sent."""
    seen: list[str] = []

    def empty(route: Route) -> None:
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/event-stream", body="")

    page.route("**/v1/feeds/jobs*", empty)
    return seen


def test_sweep_page_reaches_the_final_state_without_a_reload(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "live-sweep")
    with client:
        # Held (max_running_jobs 0: its trial jobs wait in the queue) until both tabs
        # have drawn it unfinished; under load a free-running sweep of three short
        # trials could end before the second tab opened.
        me = client._request("GET", "/v1/users/me")
        quota = f"/v1/users/{me['id']}"
        with stack.admin() as admin:
            admin._request("PATCH", quota, json={"quota": {"max_running_jobs": 0}})
        sweep = client.submit_sweep(sweep_spec("live", trials=3, parallel=2, rounds=40))
        gets = count_gets(page, sweep["id"])
        single, sweep_reads = count_job_reads(page)
        feeds = silence_feed(page)
        sign_in(page, stack.url, token, f"#/sweeps/{sweep['id']}")
        badge = page.locator("h1 .badge")
        expect(badge).to_be_visible()
        assert badge.get_attribute("data-status") not in TERMINAL_STATUSES
        # The sweeps list in a second tab of the same session (the token is per tab).
        listing = page.context.new_page()
        sign_in(listing, stack.url, token, "#/sweeps")
        listed = listing.locator(f"#sweeps tr[data-sweep-id='{sweep['id']}']")
        expect(listed.locator(".badge")).to_be_visible()
        assert listed.locator(".badge").get_attribute("data-status") not in TERMINAL_STATUSES
        # While held, nothing changes: once the page shows both queued trial jobs, its
        # polls redraw without reading the jobs listing again (it re-read all of it at
        # every draw while a trial job had no summary).
        expect(page.locator("#trials tbody td a")).to_have_count(2, timeout=30_000)
        # (Playwright's sync API delivers request events only inside its own calls: so
        # the polls are awaited as requests, not counted in a wait_until.)
        sweep_path = f"/v1/sweeps/{sweep['id']}"

        def is_poll(request: Request) -> bool:
            return request.method == "GET" and urlparse(request.url).path == sweep_path

        reads = len(sweep_reads)
        for _ in range(4):  # each poll starts after the previous draw has ended
            with page.expect_request(is_poll, timeout=5_000 * POLL_S):
                pass
        assert len(sweep_reads) == reads, sweep_reads[reads:]
        with stack.admin() as admin:
            admin._request("PATCH", quota, json={"quota": {"max_running_jobs": 2}})

        wait_until(
            lambda: client.sweep(sweep["id"])["status"] in TERMINAL_STATUSES,
            timeout=240,
            what="the sweep",
        )
        done = client.sweep(sweep["id"])
        assert done["status"] == "succeeded", done
        assert all(t["values"] for t in done["trials"]), done

        # The page, never reloaded, converges to the API's answer.
        expect(badge).to_have_attribute("data-status", "succeeded", timeout=4_000 * POLL_S)
        rows = page.locator("#trials tbody tr")
        expect(rows).to_have_count(len(done["trials"]))
        for trial in done["trials"]:
            row = page.locator(f"#trials tbody tr[data-trial='{trial['number']}']")
            expect(row.locator("td").nth(2)).to_have_text("succeeded")
            expect(row.locator("td").nth(4)).not_to_have_text("—")
        expect(page.locator("#trials tr.best")).to_have_count(len(done["best"]))
        # The list, never reloaded either, shows the sweep finished with every trial.
        expect(listed.locator(".badge")).to_have_attribute(
            "data-status", "succeeded", timeout=4_000 * LIST_POLL_S
        )
        expect(listed.locator(".trial-count")).to_have_text(
            f"{len(done['trials'])} finished of {len(done['trials'])}"
        )
        wait_until(
            lambda: drawn_front(page) == sorted(done["best"]), timeout=10, what="the front drawn"
        )
        # Every trial's bytes up came from the sweep's jobs listing, never from a GET
        # per trial job (a thousand requests on the first draw of a 1000-trial sweep).
        expect(page.locator("#trials td.bytes-up").first).not_to_have_text("—")
        assert single == [], single
        assert sweep_reads and all(f"limit={MAX_PAGE}" in url for url in sweep_reads)
        # Read again only for a trial job not seen yet or one just finished — a bound in
        # trials, not in draws (every draw re-read the whole listing once).
        assert len(sweep_reads) <= 1 + 2 * len(done["trials"]), (sweep_reads, len(gets))
        # The page's feed is of this sweep's jobs only (another job's progress does not
        # redraw it).
        assert feeds and all(f"sweep_id={sweep['id']}" in url for url in feeds), feeds

        # A finished sweep is not polled, and its page gives its jobs feed back (each
        # stream counts against max_streams_per_user): no GET of it and no feed
        # request for a while after (a window, not a synchronisation: nothing is
        # awaited that could arrive). The feed reconnected every second before.
        settled = len(gets)
        feeds_settled = len(feeds)
        page.wait_for_timeout(2.5 * POLL_S * 1000)
        assert len(gets) == settled, gets[settled:]
        assert len(feeds) == feeds_settled, feeds[feeds_settled:]


def test_cancel_then_delete_sweep_declined_then_accepted(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "cancel-sweep")
    asked: list[str] = []

    def answer(accept: bool) -> None:
        def on_dialog(dialog: Dialog) -> None:
            asked.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        page.once("dialog", on_dialog)

    with client:
        # One trial at a time, each far longer than the test: the sweep stays running.
        spec = sweep_spec("to-cancel", trials=3, parallel=1, rounds=200_000)
        sweep = client.submit_sweep(spec)
        sweep_id = sweep["id"]
        try:

            def first_trial_running() -> bool:
                trials = client.sweep(sweep_id)["trials"]
                return bool(trials and trials[0]["job_id"]) and (
                    client.job(trials[0]["job_id"])["status"] == "running"
                )

            wait_until(first_trial_running, timeout=60, what="the first trial to run")
            gets = count_gets(page, sweep_id)
            sign_in(page, stack.url, token, f"#/sweeps/{sweep_id}")
            badge = page.locator("h1 .badge")
            button = page.locator("#cancel-sweep")
            expect(badge).to_have_attribute("data-status", "running")
            expect(button).to_be_visible()
            remove = page.locator("#delete-sweep")
            expect(remove).to_be_hidden()  # an unfinished sweep is cancelled first

            # The trials table is redrawn every 2 s while the sweep runs: a trial's link
            # pressed before a redraw and released after it still opens its job.
            # (Pressed once the chart is drawn: this is about the table's redraws; the
            # page keeping its place while plotly arrives is test_chart_script.py's.)
            chart = page.locator("#chart-sweep")
            # The chart waits for plotly's script and the trials' first read: more than
            # expect's 5 s on a loaded CI machine once (its value still null).
            expect(chart).to_have_attribute("data-front", re.compile(r"^[0-9,]*$"), timeout=20_000)
            first = client.sweep(sweep_id)["trials"][0]["job_id"]
            view = page.locator(".view-sweep")
            press(page, page.locator(f"#trials tbody td a[href='#/jobs/{first}']"))
            drawn = view.get_attribute("data-updates")
            expect(view).not_to_have_attribute("data-updates", str(drawn))
            page.mouse.up()
            expect(page).to_have_url(f"{stack.url}/#/jobs/{first}")
            page.go_back()
            expect(button).to_be_visible()

            # Leaving the page stops its polling (a window after the last in-flight GET).
            page.goto(f"{stack.url}/#/sweeps")
            expect(page.locator(f"#sweeps tr[data-sweep-id='{sweep_id}']")).to_be_visible()
            page.wait_for_timeout(POLL_S * 1000)
            left = len(gets)
            page.wait_for_timeout(2 * POLL_S * 1000)
            assert len(gets) == left, gets[left:]
            page.go_back()
            expect(button).to_be_visible()

            # Declined: nothing changes.
            answer(accept=False)
            button.click()
            wait_until(lambda: asked, timeout=10, what="the confirmation")
            assert f"Cancel sweep {sweep_id}?" in asked[0]
            assert client.sweep(sweep_id)["status"] == "running"
            expect(button).to_be_enabled()
            expect(page.locator(".view-sweep .error")).to_have_count(0)

            # Refused by the server: its message, in one box however often it is tried.
            def refuse(route: Route) -> None:
                route.fulfill(status=409, json={"detail": "try again later"})

            page.route(f"**/v1/sweeps/{sweep_id}/cancel", refuse)
            for _ in range(2):
                answer(accept=True)
                button.click()
                expect(page.locator(".view-sweep .error")).to_have_text("try again later")
                expect(button).to_be_enabled()
            page.unroute(f"**/v1/sweeps/{sweep_id}/cancel")
            assert client.sweep(sweep_id)["status"] == "running"
            started = [t["job_id"] for t in client.sweep(sweep_id)["trials"] if t["job_id"]]

            # Accepted: cancelling, then cancelled, on the page without a reload.
            answer(accept=True)
            button.click()
            expect(page.locator(".view-sweep .error")).to_have_count(0)
            expect(badge).to_have_attribute("data-status", re.compile("^cancell(ing|ed)$"))
            expect(button).to_be_hidden()
            expect(badge).to_have_attribute("data-status", "cancelled", timeout=60_000)
            expect(remove).to_be_visible()  # finished, it may go
            assert len(asked) == 4

            done = client.sweep(sweep_id)
            assert done["status"] == "cancelled", done
            # No trial started after the cancel: the same trial jobs, each stopped.
            assert [t["job_id"] for t in done["trials"] if t["job_id"]] == started
            assert [j["id"] for j in client.jobs()] == sorted(started, reverse=True)
            for job_id in started:
                assert client.job(job_id)["status"] == "cancelled"
            for trial in done["trials"]:
                row = page.locator(f"#trials tbody tr[data-trial='{trial['number']}']")
                expect(row.locator("td").nth(2)).to_have_text(trial["status"])

            # A finished trial's job is not deleted from its own page: it goes with its
            # sweep (whose page draws each trial from its job).
            page.locator(f"#trials tbody td a[href='#/jobs/{started[0]}']").click()
            expect(page.locator("#job-status")).to_contain_text("cancelled")
            expect(page.locator("#delete-with-sweep")).to_have_text(
                f"a trial: delete it with sweep {sweep_id}"
            )
            expect(page.locator("#delete-job")).to_be_hidden()
            page.click("#job-sweep")
            expect(remove).to_be_visible()

            # The finished sweep is deleted from its page, after a confirmation: declined,
            # it stays; refused by the server, its reason beside the button; accepted,
            # the page goes to the sweeps list, which no longer lists it, and the sweep
            # and its trials' jobs are gone (404).
            answer(accept=False)
            remove.click()
            wait_until(lambda: len(asked) == 5, timeout=10, what="the confirmation")
            assert asked[4] == (
                f"Delete sweep {sweep_id} with its {len(done['trials'])} trials' jobs, their "
                "metrics and checkpoints? This cannot be undone."
            )
            expect(remove).to_be_enabled()
            assert client.sweep(sweep_id)["status"] == "cancelled"

            def refuse_delete(route: Route) -> None:
                if route.request.method != "DELETE":
                    route.fallback()
                    return
                route.fulfill(status=409, json={"detail": "job 7 has not finished"})

            page.route(f"**/v1/sweeps/{sweep_id}", refuse_delete)
            answer(accept=True)
            remove.click()
            expect(page.locator("#delete-sweep + .error")).to_have_text("job 7 has not finished")
            expect(remove).to_be_enabled()
            page.unroute(f"**/v1/sweeps/{sweep_id}")
            assert client.sweep(sweep_id)["status"] == "cancelled"

            answer(accept=True)
            remove.click()
            expect(page).to_have_url(f"{stack.url}/#/sweeps")
            expect(page.get_by_text("No sweeps yet.")).to_be_visible()  # the user's only one
            expect(page.locator(f"#sweeps tr[data-sweep-id='{sweep_id}']")).to_have_count(0)
            assert len(asked) == 7
            with pytest.raises(ApiError, match=r"^HTTP 404"):
                client.sweep(sweep_id)
            for job_id in started:
                with pytest.raises(ApiError, match=r"^HTTP 404"):
                    client.job(job_id)
        finally:
            # A no-op once cancelled (or deleted); a failed test's sweep would hold the
            # cluster.
            try:
                client.cancel_sweep(sweep_id)
            except ApiError as error:
                if error.status != 404:
                    raise
