"""Submitting from the form (422 beside its field), comparing two finished jobs, the
lab and a sweep's page — in real Chromium against a real service."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from service.client import TERMINAL_STATUSES, Client
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ray_cluster import RAY_TEST_CPUS
from tests.ui.conftest import new_user, screenshot, sign_in

pytestmark = pytest.mark.ray

BAD_SPEC = """\
name: from-the-form
task: {kind: lag_paper_linreg}
aggregation:
  strategy: lag_wk
distributed: {workers: 3, cpus_per_worker: 0.25}
schedule:
  rounds: 0
"""


# The words of a table's headers and cells (names and other free text excepted: links,
# .free) that the browser broke across lines.
SPLIT_WORDS = """(table) => {
  const split = [];
  for (const cell of table.querySelectorAll("th, td")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest("a, .free")) continue;
      for (const word of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
        if (lines.size > 1) split.push(word[0]);
      }
    }
  }
  return split;
}"""


def split_words(page: Page, table: str) -> list[str]:
    words: list[str] = page.locator(table).evaluate(SPLIT_WORDS)
    return words


def short_linreg(strategy: str) -> dict[str, Any]:
    return {
        "name": f"linreg-{strategy}",
        "task": {"kind": "lag_paper_linreg"},
        "aggregation": {"strategy": strategy},
        "distributed": {"workers": 3, "cpus_per_worker": 0.25},
        "schedule": {"rounds": 20, "eval_every": 5},
    }


def finish(client: Client, job_id: int) -> dict[str, Any]:
    wait_until(
        lambda: client.job(job_id)["status"] in TERMINAL_STATUSES, timeout=120, what="the job"
    )
    job = client.job(job_id)
    assert job["status"] == "succeeded", job
    return job


def test_submit_shows_422_beside_the_field_then_submits(stack: Stack, page: Page) -> None:
    token, _client = new_user(stack, "submitter")
    sign_in(page, stack.url, token, "#/submit")
    expect(page.locator("#spec-text")).to_have_value(re.compile(r"task:"))  # an example
    page.fill("#spec-text", BAD_SPEC)
    page.click("#submit")
    error = page.locator(".field-error[data-field='schedule.rounds']")
    expect(error).to_be_visible()
    expect(error).to_contain_text("rounds")
    # Beside its line: the error sits at the height of line 7 of the editor.
    text_box = page.locator("#spec-text").bounding_box()
    error_box = error.bounding_box()
    assert text_box and error_box
    line_height = 13 * 1.5
    assert abs(error_box["y"] - (text_box["y"] + 8 + 6 * line_height)) < line_height

    page.fill("#spec-text", BAD_SPEC.replace("rounds: 0", "rounds: 3"))
    page.click("#submit")
    page.wait_for_url("**/#/jobs/*")
    expect(page.locator("h1")).to_contain_text("from-the-form")


def test_compare_two_finished_jobs(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "comparer")
    with client:
        dense = client.submit(short_linreg("dense"))["id"]
        lazy = client.submit(short_linreg("lag_wk"))["id"]
        dense_job = finish(client, dense)
        lazy_job = finish(client, lazy)
    sign_in(page, stack.url, token)
    for job_id in (dense, lazy):
        page.check(f"#jobs-table tr[data-job-id='{job_id}'] input[type=checkbox]")
    page.click("#compare-selected")
    expect(page.locator("#compare-table tbody tr")).to_have_count(2)
    expect(page.locator("#chart-compare-rounds .scatterlayer .trace")).to_have_count(2)
    expect(page.locator("#chart-compare-bytes .scatterlayer .trace")).to_have_count(2)
    baseline = page.locator(f"#compare-table tr[data-job-id='{dense}'] .ratio")
    expect(baseline).to_have_text("1\u00d7")
    ratio = page.locator(f"#compare-table tr[data-job-id='{lazy}'] .ratio").inner_text()
    # LAG uploads fewer bytes than dense: the ratio the table shows is below 1.
    assert float(ratio.rstrip("\u00d7")) < 1.0, (ratio, lazy_job["summary"])
    # The final metric and the uploads over the baseline's, beside the bytes'.
    for cell in ("metric-ratio", "uploads-ratio"):
        expect(page.locator(f"#compare-table tr[data-job-id='{dense}'] .{cell}")).to_have_text(
            "1\u00d7"
        )
    row = page.locator(f"#compare-table tr[data-job-id='{lazy}']")
    uploads = row.locator(".uploads-ratio").inner_text()
    expected = lazy_job["summary"]["uploads_total"] / dense_job["summary"]["uploads_total"]
    assert float(uploads.rstrip("\u00d7")) == pytest.approx(expected, rel=5e-3), uploads  # 3 digits
    metric = page.locator("select[name=metric]").input_value()
    final = [job["summary"]["final_metrics"][metric] for job in (lazy_job, dense_job)]
    shown = float(row.locator(".metric-ratio").inner_text().rstrip("\u00d7"))
    assert shown == pytest.approx(final[0] / final[1], rel=5e-3), (metric, final, shown)
    screenshot(page, "compare")

    # A finished job's checkpoint downloads from its page (fetched with the token in
    # a header, saved from a blob): the bytes are the checkpoint's.
    page.click(f"#compare-table tr[data-job-id='{lazy}'] a")
    row = page.locator("#checkpoints tbody tr").last
    expect(row).to_be_visible()
    with page.expect_download() as download:
        row.locator("button.download").click()
    saved = Path(download.value.path())
    with Client(stack.url, token) as owner:
        listed = owner.checkpoints(lazy)[-1]
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == listed["sha256"]
    assert download.value.suggested_filename.startswith(f"job-{lazy}-round-")

    # The finished job's checkpoints are deleted from its page, after a confirmation:
    # declined, they stay; accepted, the table empties and the owner's storage drops.
    with Client(stack.url, token) as owner:
        stored = owner.me()["usage"]["storage_bytes"]
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#delete-checkpoints")
    expect(page.locator("#delete-checkpoints")).to_be_enabled()
    expect(row).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-checkpoints")
    expect(page.locator("#checkpoints tbody tr")).to_have_text(["No checkpoints."])
    expect(page.locator("#delete-checkpoints")).to_be_hidden()
    with Client(stack.url, token) as owner:
        assert owner.checkpoints(lazy) == []
        assert owner.me()["usage"]["storage_bytes"] < stored

    # Then the job itself, after a confirmation: declined, it stays; accepted, the
    # page goes to the jobs list, which no longer shows it.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#delete-job")
    expect(page.locator("#delete-job")).to_be_enabled()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-job")
    expect(page.locator(f"#jobs-table tr[data-job-id='{dense}']")).to_be_visible()
    expect(page.locator(f"#jobs-table tr[data-job-id='{lazy}']")).to_have_count(0)
    with Client(stack.url, token) as owner:
        assert [j["id"] for j in owner.jobs()] == [dense]

    # From the list, selected jobs go too — only finished ones: a job held in the
    # queue (the user may run none) keeps "Delete selected" disabled while selected.
    with stack.admin() as admin, Client(stack.url, token) as owner:
        me = owner.me()["id"]
        admin._request("PATCH", f"/v1/users/{me}", json={"quota": {"max_running_jobs": 0}})
        held = owner.submit(short_linreg("dense"))["id"]
    remove = page.locator("#delete-selected")
    page.check(f"#jobs-table tr[data-job-id='{held}'] input[type=checkbox]")
    page.check(f"#jobs-table tr[data-job-id='{dense}'] input[type=checkbox]")
    expect(remove).to_be_disabled()
    page.uncheck(f"#jobs-table tr[data-job-id='{held}'] input[type=checkbox]")
    expect(remove).to_be_enabled()
    page.once("dialog", lambda dialog: dialog.dismiss())
    remove.click()
    expect(remove).to_be_enabled()
    page.once("dialog", lambda dialog: dialog.accept())
    remove.click()
    expect(page.locator(f"#jobs-table tr[data-job-id='{dense}']")).to_have_count(0)
    expect(remove).to_be_disabled()  # nothing selected any more
    with Client(stack.url, token) as owner:
        assert [j["id"] for j in owner.jobs()] == [held]
        owner.cancel(held)


def test_lab_shows_cluster_queue_and_users_live(stack: Stack, page: Page) -> None:
    _token, client = new_user(stack, "queuer")
    # Each job's gang (2 replicas + its coordinator's CPU) takes every CPU of the test
    # cluster: the second waits for the first.
    whole_cluster = {
        **short_linreg("lag_wk"),
        "distributed": {"workers": 2, "cpus_per_worker": (RAY_TEST_CPUS - 1) / 2},
        "schedule": {"rounds": 200_000},
    }
    with client:
        first = client.submit(whole_cluster)["id"]
        wait_until(
            lambda: client.job(first)["status"] != "queued", timeout=60, what="the first to start"
        )
        assert client.job(first)["status"] == "running", client.job(first)["error"]
        second = client.submit(whole_cluster)["id"]
        # More queued jobs behind it than the table's 50 rows: the table shows the
        # queue's front (the oldest queued), not the newest queued jobs.
        behind = [client.submit(whole_cluster)["id"] for _ in range(55)]
        # The queue's rows come explained in /v1/cluster: no request per job.
        per_job: list[str] = []
        page.on(
            "request",
            lambda r: per_job.append(r.url) if re.search(r"/v1/jobs/\d+", r.url) else None,
        )
        # A job the claim skips (its owner may run none) is listed after the ranked
        # ones, "skipped", with why: it was left out ("No job is queued." over
        # "queued 1", an operator's walkthrough).
        _held_token, held_owner = new_user(stack, "held")
        with held_owner:
            with stack.admin() as admin:
                admin.update_user(held_owner.me()["id"], {"quota": {"max_running_jobs": 0}})
            held = held_owner.submit(short_linreg("dense"))["id"]
        sign_in(page, stack.url, stack.admin_token, "#/lab")
        skipped = page.locator(f"#queue tr.skipped[data-job-id='{held}']")
        expect(skipped.locator("td").first).to_have_text("skipped")
        expect(skipped).to_contain_text("cannot start under this quota")
        with stack.admin() as admin:
            admin.cancel(held)
        expect(page.locator("#dispatchers tbody tr").first).to_contain_text("alive")
        expect(page.locator("#resources")).to_contain_text("CPU")
        expect(page.locator("#users tr[data-user='admin']")).to_be_visible()
        # The quota as words (the server's defaults here), not a JSON object.
        quota = page.locator("#users tr[data-user='admin'] td.quota")
        expect(quota).to_contain_text(" running · ")
        expect(quota).to_contain_text(" stored · ")
        expect(quota).not_to_contain_text("{")
        expect(quota).to_contain_text(" GiB stored")  # binary units, as quotas are set
        # Usage against the quota: the queuer has one job running and 56 queued.
        name = client._request("GET", "/v1/users/me")["name"]
        usage = page.locator(f"#users tr[data-user='{name}'] td.quota")
        expect(usage).to_contain_text(re.compile(r"(^|· )1 of \d+ running"))
        expect(usage).to_contain_text(re.compile(r"56 of \d+ queued"))
        waiting = page.locator(f"#queue tr[data-job-id='{second}']")
        expect(waiting).to_be_visible()
        expect(waiting.locator("td").first).to_have_text("1")
        rows = page.locator("#queue tbody tr:not(.skipped)")  # other tests' held jobs
        expect(rows).to_have_count(50)
        expect(rows.first).to_have_attribute("data-job-id", str(second))
        expect(rows.nth(1).locator("td").first).to_have_text("2")
        expect(rows.last.locator("td").first).to_have_text("50")
        expect(waiting).to_contain_text("CPU")  # what it waits for, from explain
        assert per_job == []  # (a draw asked each queued job and its explain: 100 requests)
        # The users table's usage column is long: it must squeeze only where words end.
        assert split_words(page, "#users") == []
        screenshot(page, "lab")
        waiting.locator("a").click()  # its page explains the wait
        expect(page.locator("#explain")).to_contain_text("Queue position 1")
        page.go_back()
        for job_id in behind:
            client.cancel(job_id)
        expect(rows).to_have_count(1, timeout=30_000)
        # Live: once the first is cancelled the second starts and leaves the queue.
        client.cancel(first)
        expect(waiting).to_have_count(0, timeout=60_000)
        client.cancel(second)


def test_a_redraw_slower_than_the_feed_skips_to_the_newest_page(stack: Stack, page: Page) -> None:
    """The Lab and sweep pages redraw on every feed event through latestOnly: events
    that arrive while a draw runs leave only the newest behind, instead of a queue of
    draws that grows as long as draws are slower than the feed (0.5 s)."""
    token, _client = new_user(stack, "redraws")
    sign_in(page, stack.url, token)
    seen = page.evaluate(
        """async () => {
             const { latestOnly } = await import("/ui/static/live.js");
             const seen = [];
             let release;
             const gate = new Promise((resolve) => { release = resolve; });
             const redraw = latestOnly(async (n) => {
               seen.push(n);
               if (n === 1) await gate;   // the first draw is slow
               if (n === 4) throw new Error("a failed draw stops nothing");
             });
             const first = redraw(1);
             redraw(2); redraw(3); redraw(4);  // while it runs
             release();
             await first;
             await redraw(5);
             return seen;
           }"""
    )
    assert seen == [1, 4, 5]


def test_sweep_page_plots_trials_and_highlights_the_front(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "sweeper")
    spec = {
        "name": "linreg-xi",
        "base": {**short_linreg("lag_wk"), "schedule": {"rounds": 20, "eval_every": 5}},
        "parameters": {"aggregation.xi": {"type": "float", "low": 0.01, "high": 1.0, "log": True}},
        "objectives": [
            {"metric": "val_loss", "direction": "minimize"},
            {"metric": "bytes_up_total", "direction": "minimize"},
        ],
        "trials": 2,
        "parallel": 2,
        "sampler": "random",
        "seed": 0,
    }
    with client:
        sweep = client.submit_sweep(spec)
        wait_until(
            lambda: client.sweep(sweep["id"])["status"] in TERMINAL_STATUSES,
            timeout=240,
            what="the sweep",
        )
        done = client.sweep(sweep["id"])
        newer = client.submit_sweep({**spec, "name": "cancelled-at-once"})["id"]
        client.cancel_sweep(newer)
    assert done["status"] == "succeeded", done
    # One sweep a page: the newer sweep, then the older one behind the pager's link.
    sign_in(page, stack.url, token, "#/sweeps?limit=1")
    expect(page.locator("#sweeps tbody tr")).to_have_count(1)
    expect(page.locator("#sweeps tbody tr").first).to_have_attribute("data-sweep-id", str(newer))
    page.click("#older-sweeps")
    expect(page.locator("#sweeps tbody tr").first).to_have_attribute(
        "data-sweep-id", str(sweep["id"])
    )
    expect(page.locator(".pager")).to_contain_text("newest")
    page.locator("#sweeps tbody tr").first.locator("a").first.click()
    expect(page).to_have_url(re.compile(rf"#/sweeps/{sweep['id']}$"))
    expect(page.locator("#trials tbody tr")).to_have_count(2)
    expect(page.locator("#trials tr.best")).to_have_count(len(done["best"]))
    # The bytes_up_total objective is the bytes-up column (in binary units), not repeated
    # among the values beside it (not "0.5738, 287 KiB" beside "287 KiB").
    for row in page.locator("#trials tbody tr").all():
        up = row.locator(".bytes-up").inner_text()
        assert up.endswith("iB") or up.endswith(" B"), up
        values = row.locator(".values").inner_text()
        assert values != "—" and up not in values.split(", "), (values, up)
    # The highlighted trials (drawn in order of bytes) are the sweep's best ones.
    wait_until(
        lambda: page.get_attribute("#chart-sweep", "data-front"), timeout=10, what="the front"
    )
    front = (page.get_attribute("#chart-sweep", "data-front") or "").split(",")
    assert sorted(int(n) for n in front) == sorted(done["best"])
    screenshot(page, "sweep")


def test_demo_submits_the_pair_and_prints_their_comparison_page(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "demo")
    env = {**stack.env, "LAGTRAIN_URL": stack.url, "LAGTRAIN_TOKEN": token}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lagtrain"), "demo", "--rounds", "8"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith(f"{stack.url}/#/compare?ids=") and token not in done.stdout
    assert "8 rounds may show no saving yet" in " ".join(done.stdout.split())
    with client:
        jobs = client.jobs()
        assert sorted(j["name"] for j in jobs) == ["digits-cada2", "digits-dense-adam"]
        assert {j["spec"]["distributed"]["split"] for j in jobs} == {"non_iid"}
        # The printed page opens after sign-in (the token is never part of the URL).
        page.goto(url)
        page.fill("#token", token)
        page.click("form.signin button[type=submit]")
        expect(page.locator("#compare-table tbody tr")).to_have_count(2)
        table = page.locator("#compare-table")
        expect(table).to_contain_text("lasg_wk2 + AMSGrad without bias correction")
        expect(table).to_contain_text("dense + AMSGrad without bias correction")
        # The demo pair are twins: they differ in the aggregation alone.
        expect(page.locator("#compare-settings")).to_have_count(0)
        for job in jobs:
            client.cancel(job["id"])


def test_the_editor_keeps_a_line_per_row_and_asks_before_replacing_edits(
    stack: Stack, page: Page
) -> None:
    """Error notes sit at their line's height, which holds only while a long line does
    not wrap onto more rows; choosing another example asks before it drops edits."""
    token, client = new_user(stack, "editor")
    sign_in(page, stack.url, token, "#/submit")
    editor = page.locator("#spec-text")
    long_name = "n" * 400
    lines = [f"name: {long_name}", *BAD_SPEC.splitlines()[1:]]
    lines += [f"# comment {i}" for i in range(30 - len(lines))]
    page.fill("#spec-text", "\n".join(lines))
    height = editor.evaluate("e => e.scrollHeight - 2 * parseFloat(getComputedStyle(e).paddingTop)")
    line_height = 13 * 1.5
    assert height < (len(lines) + 1) * line_height, height  # one row per line: no wrapping
    page.click("#submit")
    expect(page.locator(".field-error[data-field='schedule.rounds']")).to_be_visible()

    # Another example: declined keeps the text and the select; accepted replaces both.
    chooser = page.locator("select[name=example]")
    first, other = chooser.locator("option").nth(0).inner_text(), None
    other = chooser.locator("option").nth(1).inner_text()
    page.once("dialog", lambda dialog: dialog.dismiss())
    chooser.select_option(other)
    expect(editor).to_have_value(re.compile(long_name))
    expect(chooser).to_have_value(first)
    page.once("dialog", lambda dialog: dialog.accept())
    chooser.select_option(other)
    expect(editor).not_to_have_value(re.compile(long_name))
    expect(chooser).to_have_value(other)
    # Unedited, the next example needs no confirmation (a dialog would hang here).
    chooser.select_option(first)
    expect(chooser).to_have_value(first)

    # A name without a space wraps inside the jobs table rather than widening the page.
    with client:
        client.submit({**short_linreg("dense"), "name": "A" * 200, "schedule": {"rounds": 1}})
    page.goto(f"{stack.url}/#/jobs")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, overflow
    # Only the name gives way: no header or other cell is broken inside a word.
    assert split_words(page, "#jobs-table") == []
