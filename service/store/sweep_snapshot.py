"""A sweep as one step of its controller sees it: plain data read in `observe`
(service.store.sweep_steps), outside any session, for the sampler and the pruner;
and the rule that stops a sweep whose trials all fail before they start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.store.models import SweepStatus, TrialState
from service.store.sweeps import OPEN_TRIAL

# A sweep whose first trials all failed before they started stops after this many
# (or after its first `parallel`, if more were queued at once) instead of spending
# the rest of its budget on jobs that fail the same way.
STOP_AFTER_UNSTARTED = 3


@dataclass(frozen=True)
class TrialView:
    """A trial as the sampler and pruner see it (plain data, outside any session)."""

    number: int
    state: TrialState
    params: dict[str, Any]
    values: list[float] | None
    intermediate: dict[int, float]  # {a metric record's 0-based round: value}, as stored
    system_attrs: dict[str, Any]
    job_active: bool  # its job is queued, running or cancelling (it holds a slot)
    # Its job failed before any dispatcher claimed it (a gang larger than the whole
    # cluster, a time limit while queued): nothing about its point was tried.
    failed_unstarted: bool = False
    error: str | None = None
    rounds: int | None = None  # its job's schedule.rounds (None before it has a job)


@dataclass(frozen=True)
class SweepSnapshot:
    sweep_id: int
    owner_id: int
    status: SweepStatus
    spec: dict[str, Any]
    trials: tuple[TrialView, ...]
    adds_trials: bool  # sweeps.adds_trials: new points may be asked now

    def _finished(self) -> list[TrialView]:
        return [t for t in self.trials if t.state not in OPEN_TRIAL]

    def unstarted_streak(self) -> bool:
        """Every finished trial, STOP_AFTER_UNSTARTED of them at least, failed before
        its job started, with budget left: ask no new points (the open ones finish).
        Never while `distributed.*` is searched: a gang too large for the cluster
        then says nothing about the next point's."""
        if any(path.startswith("distributed.") for path in self.spec["parameters"]):
            return False
        finished = self._finished()
        return STOP_AFTER_UNSTARTED <= len(finished) < int(self.spec["trials"]) and all(
            t.failed_unstarted for t in finished
        )

    def why_stop_unstarted(self) -> str | None:
        """Why to fail the sweep now (an unstarted streak and no trial open), or None."""
        if not self.unstarted_streak():
            return None
        if any(t.state in OPEN_TRIAL or t.job_active for t in self.trials):
            return None
        finished = self._finished()
        left = int(self.spec["trials"]) - len(finished)
        return (
            f"stopped: the first {len(finished)} trials all failed before their jobs "
            f"started, so the other {left} of the budget would too (trial "
            f"{finished[0].number}: {finished[0].error})"
        )
