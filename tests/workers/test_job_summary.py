"""The summary a finished job stores (workers.job_outcome.summary), from the records
of real reference runs: uploads saved and bytes saved beside each other (LAQ saves
bytes where it saves no upload), and a record from before `dense_equiv_bytes`
existed still summarises, with no bytes saved claimed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.torch_threads import one_thread
from tests.training.task_helpers import linreg_spec
from workers.job_outcome import Progress, summary
from workers.ray_job import RecordEvent
from workers.training.runner import run_reference

one_torch_thread = pytest.fixture(autouse=True)(one_thread)


def progress_of(strategy: str, **aggregation: object) -> Progress:
    progress = Progress()
    spec = linreg_spec(strategy, aggregation=aggregation)
    run_reference(
        spec,
        on_record=lambda k, values: progress.record(RecordEvent(k, values, uploaded=())),
    )
    return progress


def summarise(progress: Progress) -> dict[str, Any]:
    # An unbound session: the records are in `progress`, the store is not read.
    done = summary(Session(), job_id=1, rounds=30, progress=progress, attempt=1, wall_s=1.0)
    assert done is not None
    return done


def test_dense_saves_neither_uploads_nor_bytes() -> None:
    done = summarise(progress_of("dense"))
    # One shape for every end: a finished run completed the spec's rounds.
    assert done["rounds"] == done["rounds_completed"] == 30
    assert done["bytes_up_total"] == done["dense_equiv_bytes"] == 4 * 30 * 8 * 50  # float64
    assert done["uploads_saved_fraction"] == done["bytes_saved_fraction"] == 0.0


def test_lag_wk_saves_the_same_fraction_of_bytes_as_of_uploads() -> None:
    done = summarise(progress_of("lag_wk"))
    assert done["uploads_saved_fraction"] > 0.1
    assert done["bytes_saved_fraction"] == done["uploads_saved_fraction"]


def test_laq_uploading_every_round_saves_bytes_not_uploads() -> None:
    done = summarise(progress_of("laq", bits=4, max_staleness=1))
    assert done["uploads_saved_fraction"] == 0.0
    # 8 + 25 bytes an upload instead of 50 float64 numbers (400 bytes).
    assert done["bytes_saved_fraction"] == pytest.approx(1 - 33 / 400)
    assert done["final_metrics"]["dense_equiv_bytes"] == done["dense_equiv_bytes"]


def test_a_record_without_dense_equiv_bytes_claims_no_bytes_saved() -> None:
    """A job that resumes from its final checkpoint runs no round: its summary is
    built from the newest stored record, which may predate the metric."""
    progress = Progress()
    old = {"uploads_total": 30.0, "dense_equiv_uploads": 120.0, "bytes_up_total": 12_000.0}
    progress.record(RecordEvent(29, old, uploaded=()))
    done = summarise(progress)
    assert done["uploads_saved_fraction"] == 0.75
    assert done["dense_equiv_bytes"] == 0.0 and done["bytes_saved_fraction"] == 0.0


def test_a_job_ending_between_evaluations_keeps_its_latest_evaluation_whole() -> None:
    """Cancelled or failed after an evaluation round: the summary's final metrics are
    the last round's values with the latest evaluation's figures, the baseline too."""
    progress = Progress()
    evaluation = {"train_loss": 2.1, "val_loss": 2.3, "val_perplexity": 9.9}
    progress.record(RecordEvent(9, {**evaluation, "unigram_perplexity": 27.1}, uploaded=()))
    progress.record(RecordEvent(10, {"train_loss": 1.9, "uploads_total": 12.0}, uploaded=()))
    final = summarise(progress)["final_metrics"]
    assert final == {
        "train_loss": 1.9,
        "uploads_total": 12.0,
        "val_loss": 2.3,
        "val_perplexity": 9.9,
        "unigram_perplexity": 27.1,
    }
