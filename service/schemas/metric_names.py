"""The metric names a job reports (DESIGN §5), as far as the contract promises them:
the values of every round's record, what each task's evaluation adds, and the figures
of the job's summary. A sweep's objectives must name one of these for every task its
search space can reach, so a typo is a 422 at submit, not a sweep of failed trials.
tests/training/test_metric_names.py checks these lists against what the training
core really produces.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.schemas.jobspec import TaskKind

# Every round's record (workers.training.coordinator).
ROUND_METRICS: tuple[str, ...] = (
    "train_loss",
    "uploads",
    "skips",
    "forced_uploads",
    "downloads",
    "uploads_total",
    "bytes_up_total",
    "dense_equiv_uploads",
    "dense_equiv_bytes",
    "grad_evals",
    "grad_evals_total",
    "samples_per_s",
)
# Added at evaluation rounds (every eval_every-th and the last), per task.
EVAL_METRICS: dict[TaskKind, tuple[str, ...]] = {
    "char_lm": ("val_loss", "val_perplexity", "unigram_perplexity"),
    "sequence_classification": ("val_loss", "val_accuracy", "chance_accuracy"),
    "adding": ("val_loss", "val_mse", "chance_mse"),
    "copy_memory": ("val_loss", "val_accuracy", "chance_accuracy"),
    "lag_paper_linreg": ("val_loss", "optimality_gap"),  # optimality_gap: every round too
}
# Every evaluation figure of any task: what a job's summary keeps from its latest
# evaluation when it ends between two (workers.job_outcome.Progress).
EVAL_METRIC_NAMES: frozenset[str] = frozenset(
    name for names in EVAL_METRICS.values() for name in names
)
# A reference a task reports beside its headline, by the headline it is read against:
# the best figure of a model that ignores its inputs, on the same validation samples —
# their own character frequencies, always their most frequent label, always their
# targets' mean (docs/tasks.md; tests/training/test_baselines.py).
# Constant through a job; the CLI writes it after its headline, the dashboard draws it
# as a dashed line on the headline's chart, and the sweep page flags a trial whose
# model did no better.
BASELINES: dict[str, str] = {
    "val_perplexity": "unigram_perplexity",
    "val_mse": "chance_mse",
    "val_accuracy": "chance_accuracy",
}
# Headlines where a larger value is the better model (every other one: smaller).
HIGHER_IS_BETTER: frozenset[str] = frozenset({"val_accuracy"})


def no_better_than_baseline(
    final_metrics: Mapping[str, float | None] | None,
) -> tuple[str, str, float] | None:
    """(headline, baseline, the baseline's value) where a job's model did no better
    than its baseline, else None: what the CLI's sweep table notes beside a trial (the
    dashboard's charts.js noBetterThanBaseline is the same test, in the browser)."""
    for headline, baseline in BASELINES.items():
        value = (final_metrics or {}).get(headline)
        reference = (final_metrics or {}).get(baseline)
        if value is None or reference is None:
            continue
        if value <= reference if headline in HIGHER_IS_BETTER else value >= reference:
            return headline, baseline, reference
    return None


# Each task's headline evaluation metric (its one evaluation metric besides val_loss
# and a baseline), in the order the CLI and the dashboard look for them: the first a
# job has is its task's headline.
HEADLINE_METRICS: tuple[str, ...] = tuple(
    dict.fromkeys(
        name
        for names in EVAL_METRICS.values()
        for name in names
        if name != "val_loss" and name not in BASELINES.values()
    )
)
# Metrics counted in bytes (bytes_up_total, dense_equiv_bytes): written in binary units
# wherever they are shown. The summary's bytes_saved_fraction is a fraction.
BYTE_METRICS: tuple[str, ...] = tuple(name for name in ROUND_METRICS if "bytes" in name)
# Figures of a finished job's summary that are not in its final metrics.
SUMMARY_METRICS: tuple[str, ...] = (
    "uploads_saved_fraction",
    "bytes_saved_fraction",
    "attempt_wall_time_s",
)


def final_metric_names(kind: TaskKind) -> tuple[str, ...]:
    """Names a finished job of this task has in its summary's final metrics (or, for
    SUMMARY_METRICS, in the summary itself)."""
    return (*ROUND_METRICS, *EVAL_METRICS[kind], *SUMMARY_METRICS)
