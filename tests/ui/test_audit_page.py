"""The audit log page in real Chromium against a real service: an admin reads the
newest events first, filters them by user, by an action prefix and by target (the
filters in the link), pages on with Older to "no more", sees a bad action's 422,
follows a job's target to its page and a sweep's trial from its actor to the sweep;
a user who is no admin has no Audit link and is told the page is for admins.

No Ray job runs: the events are a user's creation, their tokens, and jobs of theirs
(one of them a sweep's trial) cancelled while queued (their quota lets none run)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from service.client import Client
from service.schemas.audit import AuditAction
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray

QUEUED_FOREVER: dict[str, Any] = {
    "name": "never-runs",
    "task": {"kind": "lag_paper_linreg"},
    "distributed": {"workers": 1, "cpus_per_worker": 0.25},
    "schedule": {"rounds": 5},
}


def make_user(stack: Stack, name: str, **fields: Any) -> dict[str, Any]:
    with stack.admin() as admin:
        made: dict[str, Any] = admin._request(
            "POST", "/v1/users", json={"name": f"{name}-{secrets.token_hex(3)}", **fields}
        )
    return made


def test_an_admin_reads_filters_and_pages_the_audit_log(stack: Stack, page: Page) -> None:
    # max_running_jobs 0: no dispatcher claims their job, so cancelling it starts nothing.
    user = make_user(stack, "audited", quota={"max_running_jobs": 0})
    with Client(stack.url, user["token"]) as client:
        for _ in range(3):
            client._request("POST", "/v1/tokens", json={"expires_in_days": 1})
        job_id = client.submit(QUEUED_FOREVER)["id"]
        client.cancel(job_id)
    admin = make_user(stack, "auditor", role="admin")
    with stack.admin() as bootstrap:
        [newest] = bootstrap._request("GET", "/v1/audit", params={"order": "newest", "limit": 1})[
            "data"
        ]
    assert newest["action"] == "user.created"  # the auditor's: the last thing done

    sign_in(page, stack.url, admin["token"], "#/audit")
    expect(page.locator("#nav-audit")).to_be_visible()
    rows = page.locator("#audit tbody tr")
    expect(rows.first).to_have_attribute("data-event-id", str(newest["id"]))
    expect(rows.first.locator("td.target")).to_have_text(f"user:{admin['id']}")
    # The dashboard's usual time (dom.js's when), not the API's ISO text.
    expect(rows.first.locator("td").first).to_have_text(
        re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    )
    expect(rows.first.locator("td.detail")).to_contain_text(f"name={admin['name']} role=admin")
    # The action box offers the server's actions (rules.js), their prefixes first.
    prefixes = sorted({action.partition(".")[0] + "." for action in AuditAction})
    expect(page.locator("#audit-actions option")).to_have_count(len(prefixes) + len(AuditAction))
    expect(page.locator("#audit-actions option").first).to_have_attribute("value", prefixes[0])

    # By user: their five events, newest first, the filter in the link.
    page.select_option("select[name=actor_id]", label=user["name"])
    expect(page).to_have_url(re.compile(rf"#/audit\?actor_id={user['id']}$"))
    expect(page.locator("#audit tbody tr td:nth-child(3)")).to_have_text(
        ["job.cancelled", "job.submitted", "token.created", "token.created", "token.created"]
    )
    expect(page.locator("#audit td.actor").first).to_have_text(f"user:{user['name']}")
    expect(page.locator("#audit-end")).to_have_text("no more")

    # By an action prefix, typed: the user filter stays.
    page.fill("input[name=action]", "token.")
    page.press("input[name=action]", "Enter")
    expect(page).to_have_url(re.compile(rf"actor_id={user['id']}&action=token\.$"))
    expect(page.locator("#audit tbody tr td:nth-child(3)")).to_have_text(["token.created"] * 3)

    # Two to a page: Older appends the third, then says there are no more.
    page.goto(f"{stack.url}/#/audit?actor_id={user['id']}&action=token.&limit=2")
    expect(rows).to_have_count(2)
    expect(page.locator("#audit-end")).to_have_text("")
    page.click("#audit-older")
    expect(rows).to_have_count(3)
    expect(page.locator("#audit-end")).to_have_text("no more")
    expect(page.locator("#audit-older")).to_be_hidden()

    # Not an action: the server's reason, and the table stays empty.
    page.fill("input[name=action]", "job*")
    page.press("input[name=action]", "Enter")
    expect(page.locator("#audit-errors .error")).to_have_text(
        re.compile(r"^action: lower-case letters, dots and underscores only")
    )
    expect(rows).to_have_count(0)

    # By target, from a shared link: the job's target opens the job's page.
    page.goto(f"{stack.url}/#/audit?target=job:{job_id}")
    expect(page.locator("#audit tbody tr td:nth-child(3)")).to_have_text(
        ["job.cancelled", "job.submitted"]
    )
    page.locator("#audit td.target a").first.click()
    expect(page).to_have_url(re.compile(rf"#/jobs/{job_id}$"))
    expect(page.locator("h1")).to_contain_text(f"Job {job_id}")


def test_a_user_who_is_no_admin_is_told_the_audit_log_is_for_admins(
    stack: Stack, page: Page
) -> None:
    token, _ = new_user(stack, "not-admin")
    sign_in(page, stack.url, token, "#/audit")
    expect(page.locator("#admins-only")).to_contain_text("for admins only")
    expect(page.locator("#view .error")).to_have_count(0)
    # The link is in the page, hidden for this user (an admin's tab shows it).
    expect(page.locator("#nav-audit")).to_have_count(1)
    expect(page.locator("#nav-audit")).to_be_hidden()
    expect(page.locator("#nav a[href='#/jobs']")).to_be_visible()


def test_a_sweeps_trials_link_the_sweep_from_the_actor(stack: Stack, page: Page) -> None:
    # The sweep controller submits a trial as "sweep:N for user:name"; their quota lets
    # none run, so the trials wait queued until the sweep is cancelled.
    user = make_user(stack, "sweeper", quota={"max_running_jobs": 0})
    sweep = {
        "name": "audited-sweep",
        "base": QUEUED_FOREVER,
        "parameters": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-1}},
        "objectives": [{"metric": "val_loss", "direction": "minimize"}],
        "trials": 2,
        "parallel": 1,
        "sampler": "random",
    }
    with Client(stack.url, user["token"]) as client:
        sweep_id = client.submit_sweep(sweep)["id"]
        try:
            trial_job = wait_until(
                lambda: next(
                    (t["job_id"] for t in client.sweep(sweep_id)["trials"] if t.get("job_id")),
                    None,
                ),
                timeout=30,
                what="the sweep controller to submit a trial",
            )
            admin = make_user(stack, "sweep-auditor", role="admin")
            sign_in(page, stack.url, admin["token"], f"#/audit?target=job:{trial_job}")
            actor = page.locator("#audit tbody tr td.actor").first
            expect(actor).to_have_text(f"sweep:{sweep_id} for user:{user['name']}")
            # Only the sweep is a link; the user's name stays text.
            expect(actor.locator("a")).to_have_count(1)
            actor.locator("a").click()
            expect(page).to_have_url(re.compile(rf"#/sweeps/{sweep_id}$"))
        finally:
            client.cancel_sweep(sweep_id)
