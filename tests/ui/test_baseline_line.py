"""A language model's page draws its unigram baseline (docs/tasks.md): the perplexity
of the training text's character frequencies, dashed on the validation chart beside
the model's own, in real Chromium against a real service."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in
from tests.ui.test_submit_compare_lab import finish

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
