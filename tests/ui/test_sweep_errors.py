"""The sweep pages say why: a failed or waiting trial's `error` in its row, a failed
sweep's `error` under its title, and the trial count as the CLI counts it (finished,
not started). A finished sweep's page holds no event stream (each counts against
the user's max_streams_per_user)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Request, Route, expect

from service.client import TERMINAL_STATUSES, Client
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray


def misfit_sweep(client: Client, tmp_path: Path) -> dict[str, Any]:
    """A sweep whose every trial fails: seq_len must divide a row's 64 values (the
    corners 8 and 16 do, 9..15 do not), and a point that fits asks for a gang larger
    than the whole Ray cluster. The sweep then fails; no job runs."""
    rows = tmp_path / "rows.csv"
    rows.write_text("".join(f"{r % 2}," + ",".join(["0.5"] * 64) + "\n" for r in range(40)))
    ref = client.upload_dataset(rows)["ref"]
    sweep = client.submit_sweep(
        {
            "name": "misfits",
            "base": {
                "task": {"kind": "sequence_classification", "dataset": ref, "seq_len": 8},
                "model": {"cell": "rnn", "hidden_size": 4},
                "distributed": {"workers": 2, "cpus_per_worker": 16},
                "schedule": {"rounds": 2},
            },
            "parameters": {"task.seq_len": {"type": "int", "low": 8, "high": 16}},
            "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
            "trials": 4,
            "parallel": 4,
            "sampler": "random",
            "seed": 0,
        }
    )
    wait_until(
        lambda: client.sweep(sweep["id"])["status"] in TERMINAL_STATUSES,
        timeout=60,
        what="the sweep to fail",
    )
    done: dict[str, Any] = client.sweep(sweep["id"])
    assert done["status"] == "failed" and done["error"], done
    assert all(t["status"] == "failed" and t["error"] for t in done["trials"]), done
    assert any(t["error"].startswith("invalid point: task.seq_len") for t in done["trials"]), done
    return done


def test_failed_sweep_says_why_and_holds_no_stream(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    token, client = new_user(stack, "sweep-why")
    with client:
        done = misfit_sweep(client, tmp_path)
    feeds: list[str] = []

    def on_request(request: Request) -> None:
        if urlparse(request.url).path == "/v1/feeds/jobs":
            feeds.append(request.url)

    page.on("request", on_request)
    sign_in(page, stack.url, token, f"#/sweeps/{done['id']}")

    expect(page.locator("#sweep-error")).to_have_text(done["error"])
    expect(page.locator("#sweep-error")).to_contain_text("no trial completed")
    expect(page.locator("#trial-count")).to_have_text(
        f"{len(done['trials'])} finished of {done['spec']['trials']} trials "
        f"({len(done['trials'])} started)"
    )
    for trial in done["trials"]:
        row = page.locator(f"#trials tbody tr[data-trial='{trial['number']}']")
        why = row.locator("td.trial-error")
        expect(why).to_have_text(trial["error"])
        expect(why).to_have_class("trial-error free error")

    # The finished sweep's page opened no jobs feed (a window after the page was
    # drawn, not a synchronisation: nothing is awaited that could arrive).
    page.wait_for_timeout(2000)
    assert feeds == [], feeds

    # The sweeps list counts finished trials too.
    page.goto(f"{stack.url}/#/sweeps")
    cell = page.locator(f"#sweeps tr[data-sweep-id='{done['id']}'] td.trial-count")
    expect(cell).to_have_text(f"{len(done['trials'])} finished of {done['spec']['trials']}")


def test_a_pending_trials_wait_is_a_note_not_an_error(
    stack: Stack, page: Page, tmp_path: Path
) -> None:
    """A pending trial's reason (the owner's quota) as the server gives it: its text is
    shown as text (a `<b>` in it stays a `<b>`), muted rather than red."""
    token, client = new_user(stack, "sweep-wait")
    with client:
        done = misfit_sweep(client, tmp_path)
    sweep_id = done["id"]
    reason = "waiting for room in the owner's quota: max_queued_jobs <b>3</b>"

    first = done["trials"][0]["number"]

    def pending(route: Route) -> None:
        body = route.fetch().json()
        body["status"] = "running"
        body["error"] = None
        body["name"] = None  # an unnamed sweep's title says so, as a job's does
        body["trials"][0].update(status="pending", job_id=None, error=reason)
        route.fulfill(json=body)

    page.route(f"**/v1/sweeps/{sweep_id}", pending)
    sign_in(page, stack.url, token, f"#/sweeps/{sweep_id}")
    why = page.locator(f"#trials tbody tr[data-trial='{first}'] td.trial-error")
    expect(why).to_have_text(reason)
    expect(why).to_have_class("trial-error free muted")
    expect(why.locator("b")).to_have_count(0)
    expect(page.locator("#sweep-error")).to_have_count(0)
    expect(page.locator("h1")).to_contain_text(f"Sweep {sweep_id}: (unnamed)")
