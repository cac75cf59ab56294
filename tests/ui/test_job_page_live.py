"""The job page stays live, in real Chromium against a real service: it resumes its
event stream after the API server restarts (and stops once the job has finished),
a queued job's place in the queue follows the queue, and a sweep's trial links to
its sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from tests.e2e.conftest import Stack, free_port
from tests.polling import wait_until
from tests.ui.conftest import Console, new_user, press, sign_in
from tests.ui.test_job_pages import LONG_LINREG_ONE_REPLICA, drawn_rounds
from tests.ui.test_sweep_page_live import sweep_spec

pytestmark = pytest.mark.ray

EXPLAIN_S = 3.0  # views/job.js's EXPLAIN_MS


def count_requests(page: Page, path: str, answered: list[str] | None = None) -> list[str]:
    """The page's GETs of `path`, as they are sent (and, in `answered`, as their
    answers have been read)."""
    seen: list[str] = []

    def ours(request: Request) -> bool:
        return request.method == "GET" and urlparse(request.url).path == path

    page.on("request", lambda r: seen.append(r.url) if ours(r) else None)
    if answered is not None:
        page.on("requestfinished", lambda r: answered.append(r.url) if ours(r) else None)
        page.on("requestfailed", lambda r: answered.append(r.url) if ours(r) else None)
    return seen


class ApiServer:
    """This test's own `lagtrain server` over the stack's store, on one port it keeps
    across restarts (the page's origin). Only the API restarts: the stack's
    dispatcher keeps running the job, as it does behind a restarted API replica."""

    def __init__(self, stack: Stack) -> None:
        self.env = stack.env
        self.log_dir = stack.log_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"live-api-{self.port}-{self.starts}.log").open("wb")
        lagtrain = str(Path(sys.executable).parent / "lagtrain")
        self.proc = subprocess.Popen(
            [lagtrain, "server", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            cwd=self.log_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=60, what="the restarted API server")

    def stop(self) -> None:
        """SIGTERM, as a deploy stops it: uvicorn ends its open event streams cleanly."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def api_server(stack: Stack) -> Iterator[ApiServer]:
    server = ApiServer(stack)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_job_page_resumes_its_stream_after_a_server_restart(
    stack: Stack, api_server: ApiServer, page: Page, console: Console
) -> None:
    # While the server is down the page's requests are refused (logged as errors).
    console.allow("ERR_CONNECTION_REFUSED")
    token, client = new_user(stack, "restart")
    with client:
        job = client.submit(LONG_LINREG_ONE_REPLICA)
        job_id = job["id"]
        try:
            streams = count_requests(page, f"/v1/jobs/{job_id}/events")
            sign_in(page, api_server.url, token, f"#/jobs/{job_id}")
            note = page.locator("#stream-note")
            expect(page.locator("#job-status")).to_contain_text("running", timeout=60_000)
            wait_until(lambda: drawn_rounds(page, "#chart-loss") > 5, timeout=60, what="points")
            expect(note).to_be_hidden()
            expect(page.locator("#job-sweep")).to_have_count(0)  # not a sweep's trial

            # The API server stops (its streams end cleanly) while the job runs on.
            api_server.stop()
            expect(note).to_be_visible()
            expect(note).to_have_text("reconnecting…")
            before = drawn_rounds(page, "#chart-loss")
            api_server.start()

            # The page resumes by itself: the note goes, and the curves grow again.
            expect(note).to_be_hidden(timeout=30_000)
            wait_until(
                lambda: drawn_rounds(page, "#chart-loss") > before + 5,
                timeout=60,
                what="the loss curve to grow after the restart",
            )
            assert client.job(job_id)["status"] == "running"
            assert client.job(job_id)["attempt"] == 1  # only the API restarted

            # Finished, the stream ends with the terminal status and the page keeps
            # every point exactly once (resumed from Last-Event-ID) ...
            client.cancel(job_id)
            expect(page.locator("#job-status")).to_contain_text("cancelled", timeout=60_000)
            stored = len(client.metrics(job_id))
            wait_until(
                lambda: drawn_rounds(page, "#chart-loss") == stored,
                timeout=10,
                what=f"the page to draw the job's {stored} records, none twice",
            )
            expect(note).to_be_hidden()
            # ... and does not reconnect to the finished job's stream (a window
            # three times the page's 1 s back-off; nothing is awaited in it).
            settled = len(streams)
            page.wait_for_timeout(3_000)
            assert len(streams) == settled, streams[settled:]
            assert settled >= 2, streams
        finally:
            client.cancel(job_id)  # a no-op once cancelled


def test_queued_job_page_follows_its_place_in_the_queue(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "queued")
    with client:
        me = client._request("GET", "/v1/users/me")
        with stack.admin() as admin:
            admin._request(
                "PATCH", f"/v1/users/{me['id']}", json={"quota": {"max_running_jobs": 1}}
            )
        ids = [
            client.submit({**LONG_LINREG_ONE_REPLICA, "name": f"queued-{i}"})["id"]
            for i in range(3)
        ]
        first, second, third = ids
        try:
            wait_until(
                lambda: client.job(first)["status"] == "running", timeout=60, what="job 1 to run"
            )
            answered: list[str] = []
            explains = count_requests(page, f"/v1/jobs/{third}/explain", answered)
            sign_in(page, stack.url, token, f"#/jobs/{third}")
            place = page.locator("#queue-place")

            def api_place() -> str:
                why = client._request("GET", f"/v1/jobs/{third}/explain")
                return f"Queue position {why['queue_position']} ({why['queued_ahead']} ahead)"

            expect(page.locator("#job-status")).to_contain_text("queued")
            expect(place).to_have_text(api_place())
            ahead = client._request("GET", f"/v1/jobs/{third}/explain")["queued_ahead"]
            assert ahead >= 1

            # The page has asked what it asks on its own (at its first draw and at its
            # stream's first status event) and has every answer: none still on its way
            # could carry the change below.
            def settled() -> bool:
                page.wait_for_timeout(50)  # Playwright hands its events over in its calls
                return len(answered) >= 2 and len(answered) == len(explains)

            wait_until(
                settled,
                timeout=10,
                what="the page's first explain answers",
            )

            # Another job leaves the queue: this job's place moves up, with no event
            # on its own stream, and the page follows without a reload.
            client.cancel(second)
            wait_until(
                lambda: client._request("GET", f"/v1/jobs/{third}/explain")["queued_ahead"] < ahead,
                timeout=10,
                what="the API to move job 3 up",
            )
            wait_until(
                lambda: place.text_content() == api_place(),
                timeout=4 * EXPLAIN_S,
                what="the page to show the API's place",
            )
            expect(page.locator("#job-status")).to_contain_text("queued")

            # Leaving the page stops asking (a window after any in-flight request).
            page.goto(f"{stack.url}/#/jobs")
            expect(page.locator(f"#jobs-table tr[data-job-id='{third}']")).to_be_visible()
            page.wait_for_timeout(1_000)
            left = len(explains)
            page.wait_for_timeout(2.5 * EXPLAIN_S * 1000)
            assert len(explains) == left, explains[left:]
            page.go_back()
            expect(place).to_be_visible()

            # Started, the Waiting section goes and the page stops asking.
            client.cancel(first)
            expect(page.locator("#job-status")).to_contain_text("running", timeout=60_000)
            expect(page.locator("#explain")).to_be_empty()
            page.wait_for_timeout(1_000)
            started = len(explains)
            page.wait_for_timeout(2.5 * EXPLAIN_S * 1000)
            assert len(explains) == started, explains[started:]
        finally:
            for job_id in ids:
                client.cancel(job_id)


def test_trial_job_page_links_to_its_sweep(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "trial")
    with client:
        sweep = client.submit_sweep(sweep_spec("linked", trials=1, parallel=1, rounds=200_000))
        try:

            def trial_job() -> int | None:
                trials = client.sweep(sweep["id"])["trials"]
                return trials[0]["job_id"] if trials and trials[0]["job_id"] else None

            job_id = wait_until(trial_job, timeout=60, what="the trial's job")
            assert client.job(cast(int, job_id))["sweep_id"] == sweep["id"]
            sign_in(page, stack.url, token, f"#/jobs/{job_id}")
            view = page.locator(".view-job")
            expect(view).to_have_attribute("data-drawn-status", "running", timeout=60_000)
            link = page.locator("#job-sweep")
            expect(link).to_have_attribute("href", f"#/sweeps/{sweep['id']}")
            expect(link).to_have_text(f"sweep {sweep['id']}")
            # Pressed, then the job cancelled (its facts redrawn at each status; its
            # toolbar trades Cancel for the trial's note), then released: the link was
            # neither swapped out nor moved, so the click opens the sweep (the page
            # stayed on the job when either happened).
            press(page, link)
            client.cancel(cast(int, job_id))
            expect(view).to_have_attribute("data-drawn-status", "cancelled", timeout=30_000)
            page.mouse.up()
            expect(page).to_have_url(f"{stack.url}/#/sweeps/{sweep['id']}")
            expect(page.locator("h1")).to_contain_text(f"Sweep {sweep['id']}")
        finally:
            client.cancel_sweep(sweep["id"])


def test_the_event_parser_reads_the_same_events_wherever_the_network_cuts_the_body(
    stack: Stack, page: Page
) -> None:
    """The server ends lines with "\\r\\n"; a network read that ends between the two
    made the dashboard's parser see an empty line there, flush the event half-read
    and send it untyped (the job page dropped it, and its id moved on: a gap in the
    chart for good) or without its id (a review). Every cut in two places, compared
    with the body read whole."""
    page.goto(stack.url)
    results = page.evaluate(
        """async () => {
             const { readEvents } = await import("/ui/static/live.js");
             const wire = 'event: metrics\\r\\nid: 7\\r\\ndata: {"seq":7}\\r\\n\\r\\n'
               + ': ping\\r\\n\\r\\n'
               + 'event: status\\r\\nid: 8\\r\\ndata: {"status":"succeeded"}\\r\\n\\r\\n';
             const bytes = new TextEncoder().encode(wire);
             const read = async (cuts) => {
               const body = new ReadableStream({
                 start(controller) {
                   let at = 0;
                   for (const cut of [...cuts, bytes.length]) {
                     controller.enqueue(bytes.slice(at, cut));
                     at = cut;
                   }
                   controller.close();
                 },
               });
               const events = [];
               await readEvents(body, (event) => events.push(event));
               return JSON.stringify(events);
             };
             const whole = await read([]);
             const differ = [];
             for (let i = 1; i < bytes.length; i++)
               for (let j = i; j < bytes.length; j++)
                 if (await read([i, j]) !== whole) differ.push([i, j]);
             return { whole: JSON.parse(whole), differ: differ.slice(0, 5) };
           }"""
    )
    assert results["whole"] == [
        {"event": "metrics", "data": '{"seq":7}', "id": "7"},
        {"event": "status", "data": '{"status":"succeeded"}', "id": "8"},
    ]
    assert results["differ"] == [], "cuts that changed the events read"
