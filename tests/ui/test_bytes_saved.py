"""Bytes saved beside uploads saved, in real Chromium against a real service: a
finished LAQ job that uploaded every round saves no upload but most of the bytes, and
the jobs list, its page and the Lab say so; jobs whose summary predates the figure
show "—" and are left out of the Lab's bytes sum."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Page, Route, expect

from service.schemas.jobs import JobOut
from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in
from tests.ui.test_submit_compare_lab import finish, short_linreg

pytestmark = pytest.mark.ray


def test_a_finished_laq_job_shows_its_bytes_saved(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "laq-bytes")
    # max_staleness 1: every worker uploads every round, 4 bits a coordinate.
    spec = short_linreg("laq")
    spec["aggregation"] = {"strategy": "laq", "bits": 4, "max_staleness": 1}
    with client:
        job = finish(client, client.submit(spec)["id"])
        name = client.me()["name"]
    summary = job["summary"]
    # 50 float64 coordinates (400 bytes) a dense upload; LAQ's is 8 + 50·4/8 = 33.
    assert summary["uploads_saved_fraction"] == 0.0
    assert summary["bytes_saved_fraction"] == pytest.approx(1 - 33 / 400)

    sign_in(page, stack.url, token)
    row = page.locator(f"#jobs-table tr[data-job-id='{job['id']}']")
    expect(row.locator("td.uploads-saved")).to_have_text("0 %")
    expect(row.locator("td.bytes-saved")).to_have_text("91.8 %")
    headers = page.locator("#jobs-table thead th").all_text_contents()
    assert headers.index("bytes saved") == headers.index("uploads saved") + 1, headers

    row.locator("a").first.click()
    facts = page.locator("p.facts")
    expect(facts).to_contain_text("uploads 60 of 60 dense (0 % saved)")
    expect(facts).to_contain_text("up of 23.4 KiB dense (91.8 % saved)")

    page.goto(f"{stack.url}/#/lab")
    mine = page.locator(f"#users tr[data-user='{name}']")
    expect(mine.locator("td.saved")).to_have_text("0 % of 60 (1 job)")
    expect(mine.locator("td.bytes-saved")).to_have_text("91.8 % of 23.4 KiB (1 job)")


def fake_job(owner: str, job_id: int, summary: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC)
    job = JobOut.model_validate(
        {
            "id": job_id,
            "owner": owner,
            "name": f"fake-{job_id}",
            "status": "succeeded",
            "priority": 0,
            "sweep_id": None,
            "spec": short_linreg("lag_wk"),
            "attempt": 1,
            "max_attempts": 1,
            "created_at": now,
            "started_at": now,
            "finished_at": now,
            "progress": {"round": 30, "rounds": 30},
            "summary": summary,
            "error": None,
        }
    )
    return job.model_dump(mode="json")


# What summaries held before bytes_saved_fraction, and one written since.
OLD_SUMMARY = {
    "uploads_total": 30.0,
    "dense_equiv_uploads": 120.0,
    "uploads_saved_fraction": 0.75,
    "bytes_up_total": 12_000.0,
}
NEW_SUMMARY = {
    "uploads_total": 60.0,
    "dense_equiv_uploads": 80.0,
    "uploads_saved_fraction": 0.25,
    "bytes_up_total": 2048.0,
    "dense_equiv_bytes": 8192.0,
    "bytes_saved_fraction": 0.75,
}


def test_jobs_finished_before_bytes_saved_show_a_dash(stack: Stack, page: Page) -> None:
    """The jobs feed is the test's (Playwright's route): no real job can have a
    summary from before this change. The rest (sign-in, users, cluster) is real."""
    token, client = new_user(stack, "old-summaries")
    with client:
        name = client.me()["name"]
    page_of_jobs = {
        "data": [fake_job(name, 900_302, NEW_SUMMARY), fake_job(name, 900_301, OLD_SUMMARY)],
        "next_cursor": None,
    }
    body = f"event: jobs\ndata: {json.dumps(page_of_jobs)}\n\n"

    def jobs_feed(route: Route) -> None:
        route.fulfill(status=200, content_type="text/event-stream", body=body)

    page.route("**/v1/feeds/jobs*", jobs_feed)
    sign_in(page, stack.url, token)
    old_row = page.locator("#jobs-table tr[data-job-id='900301']")
    expect(old_row.locator("td.uploads-saved")).to_have_text("75 %")
    expect(old_row.locator("td.bytes-saved")).to_have_text("—")
    new_row = page.locator("#jobs-table tr[data-job-id='900302']")
    expect(new_row.locator("td.uploads-saved")).to_have_text("25 %")
    expect(new_row.locator("td.bytes-saved")).to_have_text("75 %")

    page.goto(f"{stack.url}/#/lab")
    mine = page.locator(f"#users tr[data-user='{name}']")
    # Uploads over both jobs: 1 - 90 / 200; bytes over the new one only.
    expect(mine.locator("td.saved")).to_have_text("55 % of 200 (2 jobs)")
    expect(mine.locator("td.bytes-saved")).to_have_text("75 % of 8 KiB (1 job)")
