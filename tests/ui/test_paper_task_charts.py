"""The LAG paper's regression task (lag_paper_linreg): its job page and Compare plot
the optimality gap, the metric the paper's figures show, on a log axis; Compare's
bytes axis reads in binary units — in real Chromium against a real service."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, screenshot, sign_in
from tests.ui.test_submit_compare_lab import finish, short_linreg

pytestmark = pytest.mark.ray

# A plotly chart's drawn layout and first trace, as the page holds them (none yet
# before its first draw).
DRAWN = """(node) => ({
  yType: node._fullLayout?.yaxis?.type,
  points: node._fullData?.[0]?.x?.length ?? 0,
})"""
# dom.js's bytes(): "512 B", "1 KiB", "2.5 MiB".
BINARY_BYTES = re.compile(r"^\d+(\.\d+)? (B|KiB|MiB|GiB|TiB)$")


def drawn(page: Page, chart: str) -> dict[str, Any]:
    result: dict[str, Any] = page.locator(chart).evaluate(DRAWN)
    return result


def test_paper_task_plots_the_optimality_gap_on_a_log_axis(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "paper")
    with client:
        dense = client.submit(short_linreg("dense"))["id"]
        lazy = client.submit(short_linreg("lag_wk"))["id"]
        finish(client, dense)
        rounds = finish(client, lazy)["progress"]["rounds"]

    # The job page: the gap, every round of it (val_loss only has the eval rounds).
    sign_in(page, stack.url, token, f"#/jobs/{lazy}")
    expect(page.locator("#chart-eval .gtitle")).to_have_text("optimality_gap")
    wait_until(
        lambda: drawn(page, "#chart-eval") == {"yType": "log", "points": rounds},
        timeout=20,
        what="every round's gap on a log axis",
    )
    screenshot(page, "job-paper-task")

    # Compare picks the same metric for jobs of this task.
    page.goto(f"{stack.url}/#/compare?ids={dense},{lazy}")
    expect(page.locator("select[name=metric]")).to_have_value("optimality_gap")
    wait_until(
        lambda: all(
            drawn(page, chart)["yType"] == "log"
            for chart in ("#chart-compare-rounds", "#chart-compare-bytes")
        ),
        timeout=10,
        what="both compare charts' value axes on a log scale",
    )
    # The bytes axis: its ticks in the units the summary table below it uses.
    ticks = page.locator("#chart-compare-bytes .xtick text")
    expect(ticks.first).to_be_attached()
    labels = ticks.all_text_contents()
    assert labels and all(BINARY_BYTES.match(label) for label in labels), labels
    screenshot(page, "compare-paper-task")
