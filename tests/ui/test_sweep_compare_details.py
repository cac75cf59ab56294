"""Details of the sweep and compare pages, in real Chromium against a real service:
long y tick labels stay whole on the sweep chart, compared jobs without a shared
metric are drawn or named, and a job given twice is compared once."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from service.client import TERMINAL_STATUSES, Client
from service.schemas.jobs import JobOut
from service.schemas.sweeps import SweepOut, SweepSpec
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, screenshot, sign_in
from tests.ui.test_submit_compare_lab import finish, short_linreg

pytestmark = pytest.mark.ray

# No such sweep or jobs on the server: the page's requests for them are answered by
# the test (Playwright's route), with objective values that no real sweep can be
# steered to. Everything else (sign-in, the page, plotly, the live feed) is real.
FAKE_SWEEP = 900_001
FAKE_JOBS = (900_101, 900_102, 900_103)
BYTES = (1e5, 2e5, 4e5)
# A pruned trial: its job was cancelled after 5 rounds and keeps their summary, which
# is no result of the sweep (not a point of its chart).
PRUNED_JOB = 900_104


def base_spec(metric: str) -> dict[str, Any]:
    """A spec whose task reports `metric` (the server refuses a sweep on one that does
    not; the fakes stay within what it accepts)."""
    if metric == "val_perplexity":
        return {
            "task": {"kind": "char_lm", "dataset": "builtin:shakespeare"},
            "model": {"cell": "lstm", "hidden_size": 16},
            "aggregation": {"strategy": "lag_wk"},
            "schedule": {"rounds": 20, "eval_every": 10},
        }
    if metric == "val_accuracy":
        return {
            "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
            "model": {"cell": "gru", "hidden_size": 16},
            "aggregation": {"strategy": "lag_wk"},
            "schedule": {"rounds": 20, "eval_every": 10},
        }
    return short_linreg("lag_wk")


def fake_sweep(owner: str, metric: str, values: tuple[float, ...]) -> dict[str, Any]:
    spec = SweepSpec.model_validate(
        {
            "name": "long-ticks",
            "base": base_spec(metric),
            "parameters": {"aggregation.xi": {"type": "float", "low": 0.01, "high": 1.0}},
            "objectives": [
                {"metric": metric, "direction": "minimize"},
                {"metric": "bytes_up_total", "direction": "minimize"},
            ],
            "trials": len(values) + 1,
            "sampler": "random",
        }
    )
    trials = [
        {
            "number": n,
            "job_id": FAKE_JOBS[n],
            "status": "succeeded",
            "params": {"aggregation.xi": 0.1 * (n + 1)},
            "values": [value, BYTES[n]],
            "error": None,
        }
        for n, value in enumerate(values)
    ]
    trials.append(
        {
            "number": len(values),
            "job_id": PRUNED_JOB,
            "status": "pruned",
            "params": {"aggregation.xi": 0.9},
            "values": None,
            "error": None,
        }
    )
    now = datetime.now(UTC)
    sweep = SweepOut.model_validate(
        {
            "id": FAKE_SWEEP,
            "owner": owner,
            "name": spec.name,
            "status": "succeeded",
            "spec": spec.model_dump(mode="json"),
            "created_at": now,
            "finished_at": now,
            "error": None,
            "trials": trials,
            "best": [t["number"] for t in trials],  # less loss for more bytes: all on the front
        }
    )
    return sweep.model_dump(mode="json")


def fake_job(
    owner: str, job_id: int, metric: str, value: float, sent: float, status: str = "succeeded"
) -> dict[str, Any]:
    now = datetime.now(UTC)
    job = JobOut.model_validate(
        {
            "id": job_id,
            "owner": owner,
            "name": None,
            "status": status,
            "priority": 0,
            "sweep_id": FAKE_SWEEP,
            "spec": base_spec(metric),
            "attempt": 1,
            "max_attempts": 1,
            "created_at": now,
            "started_at": now,
            "finished_at": now,
            "progress": {"round": 20, "rounds": 20},
            "summary": {"bytes_up_total": sent, "final_metrics": {metric: value}},
            "error": None,
        }
    )
    return job.model_dump(mode="json")


def fake_sweep_and_jobs(
    client: Client, metric: str, values: tuple[float, ...]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A fake sweep of `client`'s user on `metric`, one succeeded trial job per value
    (by id, as the page's listing names them), with BYTES uploaded."""
    with client:
        owner = client._request("GET", "/v1/users/me")["name"]
    jobs = {
        str(job_id): fake_job(owner, job_id, metric, value, sent)
        for job_id, value, sent in zip(FAKE_JOBS, values, BYTES, strict=True)
    }
    return fake_sweep(owner, metric, values), jobs


# Each y tick label and the axis title, left and right, and the chart's left edge.
Y_LABELS = """(chart) => {
  const box = (node) => { const r = node.getBoundingClientRect(); return [r.left, r.right]; };
  const title = chart.querySelector(".g-ytitle text");
  return { chart: chart.getBoundingClientRect().left, title: title && box(title),
    ticks: [...chart.querySelectorAll(".yaxislayer-above .ytick text")]
      .map((t) => [t.textContent, ...box(t)]) };
}"""


def sweep_listing(sweep_id: int) -> Callable[[str], bool]:
    """Matches the page's read of a sweep's jobs listing, whatever its parameters' order."""

    def matches(url: str) -> bool:
        parts = urlparse(url)
        return parts.path == "/v1/jobs" and parse_qs(parts.query).get("sweep_id") == [str(sweep_id)]

    return matches


def whole(labels: dict[str, Any], long_label: re.Pattern[str]) -> bool:
    """Every tick label long (else the test proves nothing) and inside the chart, and
    the title inside it and clear of the ticks."""
    ticks, title = labels["ticks"], labels["title"]
    if not ticks or not title or not all(long_label.fullmatch(t[0]) for t in ticks):
        return False
    first = min(left for _text, left, _right in ticks)
    return bool(first >= labels["chart"] and labels["chart"] <= title[0] and title[1] <= first)


@pytest.mark.parametrize(
    ("metric", "values", "long_label"),
    [
        ("val_loss", (0.1234569, 0.1234563, 0.1234561), r"0\.12345\d\d"),  # 0.1234562 …
        ("val_perplexity", (12345.69, 12345.64, 12345.61), r"12\.3456\dk"),  # 12.34562k …
    ],
)
def test_sweep_chart_shows_long_y_tick_labels_whole(
    stack: Stack, page: Page, metric: str, values: tuple[float, ...], long_label: str
) -> None:
    token, client = new_user(stack, "ticks")
    sweep, jobs = fake_sweep_and_jobs(client, metric, values)
    owner = sweep["owner"]
    jobs[str(PRUNED_JOB)] = fake_job(owner, PRUNED_JOB, metric, values[0], 3e5, "cancelled")

    # The page reads its trial jobs as one listing of the sweep's jobs (one page here).
    listing = {"data": list(jobs.values())[::-1], "next_cursor": None}
    page.route(f"{stack.url}/v1/sweeps/{FAKE_SWEEP}", lambda route: route.fulfill(json=sweep))
    page.route(sweep_listing(FAKE_SWEEP), lambda route: route.fulfill(json=listing))
    sign_in(page, stack.url, token, f"#/sweeps/{FAKE_SWEEP}")
    chart = page.locator("#chart-sweep")
    expect(chart).to_have_attribute("data-front", "0,1,2")
    expect(chart.locator(".ytick text").first).to_be_attached()
    # The pruned trial's row is there, its point is not (the other trials' trace is empty).
    expect(page.locator("#trials tr[data-trial='3']")).to_be_attached()
    # Bold rows explained; bytes_up_total left to the bytes-up column, not repeated.
    expect(page.locator("#trials-legend")).to_have_text(
        "Bold rows: the Pareto front (no other trial does better on every objective)."
    )
    first = page.locator("#trials tr[data-trial='0']")
    expect(first.locator(".bytes-up")).not_to_have_text("—")
    expect(first.locator(".values")).not_to_contain_text(first.locator(".bytes-up").inner_text())
    assert chart.evaluate("(node) => node.data[0].x.length") == 0
    last: dict[str, Any] = {}

    def drawn_whole() -> bool:
        last.update(chart.evaluate(Y_LABELS))
        return whole(last, re.compile(long_label))

    try:
        wait_until(drawn_whole, timeout=10, what="the y tick labels inside the chart")
    except AssertionError as error:
        raise AssertionError(f"{error}: {last}") from None
    # Bytes in binary units, as the trials table and Compare write them (plotly's own
    # ticks read "4 5 … 9 1M 2 3").
    ticks = chart.locator(".xtick text").all_text_contents()
    assert len(ticks) >= 2 and all(re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)", t) for t in ticks), ticks


def submit_and_cancel(client: Client, name: str) -> int:
    """A job that never runs long: cancelled at once, queued or just started."""
    spec = {**short_linreg("dense"), "name": name}
    spec["schedule"] = {"rounds": 200_000, "eval_every": 200_000}  # evaluates at its end only
    job_id: int = client.submit(spec)["id"]
    client.cancel(job_id)
    wait_until(
        lambda: client.job(job_id)["status"] in TERMINAL_STATUSES, timeout=60, what="the cancel"
    )
    return job_id


def test_compare_shows_a_job_given_twice_once(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "twice")
    with client:
        first = submit_and_cancel(client, "first")
        second = submit_and_cancel(client, "second")
    sign_in(page, stack.url, token, f"#/compare?ids={second},{first},{second},{first}")
    rows = page.locator("#compare-table tbody tr")
    expect(rows).to_have_count(2)
    assert [r.get_attribute("data-job-id") for r in rows.all()] == [str(second), str(first)]
    expect(page.locator("input[name=ids]")).to_have_value(f"{second},{first}")
    expect(page.locator("select[name=baseline] option")).to_have_count(2)
    # Choosing a baseline keeps the de-duplicated ids (and the metric shown).
    page.select_option("select[name=baseline]", str(first))
    expect(page).to_have_url(re.compile(rf"ids={second},{first}&.*baseline={first}"))
    expect(rows).to_have_count(2)


def wait_for_curves(page: Page, chart: str, expected: int) -> None:
    """Wait until the chart draws `expected` curves with points (plotly draws no group
    for a job without points)."""
    drawn: list[int] = []

    def as_expected() -> bool:
        drawn[:] = page.locator(f"{chart} .scatterlayer .trace").evaluate_all(
            "(traces) => traces.map((t) => t.querySelectorAll('.points path').length)"
        )
        return len([n for n in drawn if n > 0]) == expected

    try:
        wait_until(as_expected, timeout=10, what=f"{expected} curves on {chart}")
    except AssertionError as error:
        raise AssertionError(f"{error}; points per trace: {drawn}") from None


def test_compare_draws_or_names_jobs_without_a_shared_metric(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "metrics")
    digits = {
        "name": "digits <i>short</i>",  # plotly's HTML subset: must be shown as written
        "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
        "model": {"cell": "gru", "hidden_size": 16},
        "distributed": {"workers": 2, "cpus_per_worker": 0.25},
        "schedule": {"rounds": 4, "eval_every": 2, "batch_size": 32},
    }
    with client:
        classifier = client.submit(digits)["id"]  # val_accuracy and val_loss
        regression = client.submit(short_linreg("dense"))["id"]  # val_loss, optimality_gap
        chance = finish(client, classifier)["summary"]["final_metrics"]["chance_accuracy"]
        finish(client, regression)
        unevaluated = submit_and_cancel(client, "never-evaluated")
    ids = [classifier, regression, unevaluated]
    sign_in(page, stack.url, token, f"#/compare?ids={','.join(map(str, ids))}")
    expect(page.locator("#compare-table tbody tr")).to_have_count(3)
    # By default the metric most of them have: both evaluated jobs draw a curve, the
    # third is named with what it lacks.
    for chart in ("#chart-compare-rounds", "#chart-compare-bytes"):
        wait_for_curves(page, chart, 2)
    expect(page.locator("select[name=metric]")).to_have_value("val_loss")
    legend = page.locator("#chart-compare-rounds .legendtext").all_text_contents()
    assert not any("chance" in name for name in legend), legend  # val_loss has no baseline
    assert any(f"{classifier} digits <i>short</i>" in name for name in legend), legend
    missing = page.locator("#compare-missing")
    expect(missing).to_have_attribute("data-jobs", str(unevaluated))
    expect(missing).to_contain_text(f"{unevaluated} never-evaluated")
    # What it has depends on whether the cancel came before its first round: linreg
    # reports optimality_gap every round, val_loss only at evaluations.
    expect(missing).to_contain_text(
        re.compile(r"\((no metrics|never evaluated|has optimality_gap)\)")
    )

    # The classifier's own metric: the others are named, with what they do have.
    page.select_option("select[name=metric]", "val_accuracy")
    expect(page).to_have_url(re.compile(r"metric=val_accuracy"))
    expect(missing).to_have_attribute("data-jobs", f"{regression},{unevaluated}")
    expect(missing).to_contain_text("has optimality_gap, val_loss")
    expect(page.locator("#compare-table thead")).to_contain_text("final val_accuracy")
    for chart in ("#chart-compare-rounds", "#chart-compare-bytes"):
        wait_for_curves(page, chart, 1)
        # The classifier's chance accuracy, dashed across the drawn points (val_loss,
        # drawn first, has no baseline: nothing else was drawn then).
        dashed = page.locator(chart).evaluate(
            "node => node.data.filter(t => t.line && t.line.dash === 'dash')"
            ".map(t => ({name: t.name, y: t.y}))"
        )
        assert len(dashed) == 1 and dashed[0]["y"] == [chance, chance], dashed
        assert re.fullmatch(rf"chance_accuracy 0\.\d+ \(job {classifier}\)", dashed[0]["name"])
    screenshot(page, "compare-metrics")

    # A baseline change keeps the metric chosen.
    page.select_option("select[name=baseline]", str(regression))
    expect(page).to_have_url(re.compile(rf"metric=val_accuracy.*baseline={regression}"))
    expect(page.locator("select[name=metric]")).to_have_value("val_accuracy")
    expect(page.locator("select[name=baseline]")).to_have_value(str(regression))

    # A metric no job has: the default is shown, and the note says so.
    page.evaluate(f"location.hash = '#/compare?ids={classifier},{regression}&metric=val_mse'")
    expect(page.locator("select[name=metric]")).to_have_value("val_loss")
    expect(page.locator("#compare-missing")).to_contain_text("No job has val_mse; showing val_loss")
