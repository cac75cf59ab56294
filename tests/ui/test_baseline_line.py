"""Baselines where a user reads results, in real Chromium against a real service: a
language model's page draws its unigram baseline (docs/tasks.md: the perplexity of
the validation characters' own frequencies) dashed beside the model's own, and the
sweep page flags a trial whose model did no better than its task's baseline."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in
from tests.ui.test_submit_compare_lab import finish
from tests.ui.test_sweep_compare_details import (
    FAKE_JOBS,
    FAKE_SWEEP,
    PRUNED_JOB,
    fake_job,
    fake_sweep_and_jobs,
    sweep_listing,
)

pytestmark = pytest.mark.ray

CHAR_LM = {
    "name": "tiny-char-lm",
    "task": {"kind": "char_lm", "dataset": "builtin:shakespeare", "max_chars": 4000},
    "model": {"cell": "gru", "hidden_size": 16},
    "distributed": {"workers": 2, "cpus_per_worker": 0.25},
    "schedule": {"rounds": 6, "eval_every": 3},
}


def test_a_language_models_page_draws_its_unigram_baseline(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "baseline")
    with client:
        job = finish(client, client.submit(CHAR_LM)["id"])
        records = [m for m in client.metrics(job["id"]) if "unigram_perplexity" in m["values"]]
    baseline = job["summary"]["final_metrics"]["unigram_perplexity"]
    # Reported at every evaluation (rounds 3 and 6), the same figure each time.
    assert [m["round"] for m in records] == [2, 5]
    assert {m["values"]["unigram_perplexity"] for m in records} == {baseline}
    assert 1 < baseline < 4000

    sign_in(page, stack.url, token, f"#/jobs/{job['id']}")
    chart = page.locator("#chart-eval")
    expect(chart).to_have_attribute("data-rounds", "6")
    traces = chart.evaluate(
        "node => node.data.map(t => ({name: t.name, dash: t.line && t.line.dash, y: t.y}))"
    )
    assert [t["name"] for t in traces] == ["val_perplexity", "unigram_perplexity (baseline)"]
    assert traces[1]["dash"] == "dash" and traces[0]["dash"] is None
    assert traces[1]["y"] == [baseline] * 2
    assert traces[0]["y"][-1] == job["summary"]["final_metrics"]["val_perplexity"]


@pytest.mark.parametrize(
    ("metric", "baseline", "reference", "values", "pruned_value"),
    [
        # Perplexity: lower is better; the trial above the baseline is flagged.
        ("val_perplexity", "unigram_perplexity", 24.75, (31.5, 12.25, 40.0), 99.0),
        # Accuracy: higher is better; the trial below chance is flagged.
        ("val_accuracy", "chance_accuracy", 0.1034, (0.0876, 0.9321, 0.05), 0.02),
    ],
)
def test_a_trial_no_better_than_its_baseline_says_so(
    stack: Stack,
    page: Page,
    metric: str,
    baseline: str,
    reference: float,
    values: tuple[float, ...],
    pruned_value: float,
) -> None:
    """A trial whose model did no better than its task's baseline (a char_lm trial's
    val_perplexity not below its unigram_perplexity, a classifier's val_accuracy not
    above its chance_accuracy) learned nothing a model needs: its row says so; a trial
    that beat it, or one whose summary has no baseline, says nothing."""
    token, client = new_user(stack, f"baseline-trials-{metric}")
    sweep, jobs = fake_sweep_and_jobs(client, metric, values)
    owner = sweep["owner"]
    for job_id in FAKE_JOBS[:2]:  # the third job's summary predates the baseline
        jobs[str(job_id)]["summary"]["final_metrics"][baseline] = reference
    jobs[str(PRUNED_JOB)] = fake_job(owner, PRUNED_JOB, metric, pruned_value, 3e5, "cancelled")
    jobs[str(PRUNED_JOB)]["summary"]["final_metrics"][baseline] = reference
    listing = {"data": list(jobs.values())[::-1], "next_cursor": None}
    page.route(f"{stack.url}/v1/sweeps/{FAKE_SWEEP}", lambda route: route.fulfill(json=sweep))
    page.route(sweep_listing(FAKE_SWEEP), lambda route: route.fulfill(json=listing))
    sign_in(page, stack.url, token, f"#/sweeps/{FAKE_SWEEP}")
    notes = page.locator("#trials td.trial-error")
    expect(notes.first).to_have_text(f"{metric} no better than its {baseline} ({reference})")
    # Trial 1 beat it, trial 2 has no baseline, trial 3 was pruned (not succeeded).
    assert notes.all_text_contents()[1:] == ["", "", ""]
