"""A round's metric values that mean the same for every rule, from the coordinator's
record of the round (`AppliedRound`) and the run's accounting:
- `train_loss`: the mean over all M workers of each worker's latest minibatch loss,
  evaluated at the parameters it last received. Every rule but lag_ps calls every
  worker each round, so this is the mean minibatch loss at θᵏ; under lag_ps a worker
  the coordinator did not call contributes its loss from its last call (as its stale
  gradient does to the step), so the figure is neither biased towards the workers
  that are called nor missing in a round where nobody is.
- an upload of p float32 numbers counts 4·p bytes (8·p for float64): the `nbytes`
  of what was shipped; `dense_equiv_uploads` = M·(rounds done) and `dense_equiv_bytes`
  what dense would have sent by then (each upload `dense_upload_bytes`), against
  which LAQ's quantized uploads show their saving where an upload count does not.
A round's metrics are recorded after its step, so an eval round k reports θᵏ⁺¹.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from workers.aggregation.rule import Plan
from workers.training.replica import ReplicaReply
from workers.training.rounds import RoundPlan

COUNTERS = ("uploads_total", "forced_total", "grad_evals_total", "samples_total", "bytes_up_total")


@dataclass
class PendingRound:
    plan: RoundPlan
    rule_plan: Plan
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class AppliedRound:
    """A round whose step is taken and whose metric values are not computed yet."""

    pending: PendingRound
    replies: Sequence[ReplicaReply]
    uploads: int
    sent: int  # bytes uploaded
    rule_metrics: dict[str, float]
    params: torch.Tensor  # θᵏ⁺¹
    applied: float = field(default_factory=time.perf_counter)


def standard_values(
    round_: int,
    applied: AppliedRound,
    *,
    counters: dict[str, int],
    last_loss: Sequence[float],
    workers: int,
    dense_upload_bytes: int,
) -> dict[str, float]:
    """The values every rule reports for round `round_`, then the rule's own; adds
    the round to the run's `counters` (keyed by COUNTERS)."""
    pending, replies = applied.pending, applied.replies
    forced = pending.rule_plan.forced + sum(1 for r in replies if r.forced and r.upload is not None)
    evals = sum(r.grad_evals for r in replies)
    samples = sum(r.samples for r in replies)
    c = counters
    c["uploads_total"] += applied.uploads
    c["forced_total"] += forced
    c["grad_evals_total"] += evals
    c["samples_total"] += samples
    c["bytes_up_total"] += applied.sent
    elapsed = max(applied.applied - pending.started, 1e-9)
    known = [loss for loss in last_loss if not math.isnan(loss)]
    return {
        "train_loss": float(np.mean(known)) if known else math.nan,
        "uploads": float(applied.uploads),
        "skips": float(workers - applied.uploads),
        "forced_uploads": float(forced),
        "downloads": float(len(pending.plan.ranks)),
        "uploads_total": float(c["uploads_total"]),
        "bytes_up_total": float(c["bytes_up_total"]),
        "dense_equiv_uploads": float(workers * (round_ + 1)),
        "dense_equiv_bytes": float(workers * (round_ + 1) * dense_upload_bytes),
        "grad_evals": float(evals),
        "grad_evals_total": float(c["grad_evals_total"]),
        "samples_per_s": samples / elapsed,
        **applied.rule_metrics,
    }


def replica_values(
    round_: int, applied: AppliedRound, rhs: float, last_upload_round: Sequence[int]
) -> dict[str, float]:
    """The per-replica values (aggregation.per_replica_metrics): the round's `rhs`,
    each worker's `lhs_w{rank}` where it has one, and its `staleness_w{rank}`."""
    values = {"rhs": rhs}
    lhs: dict[int, float | None] = {r.rank: r.lhs for r in applied.replies}
    lhs.update(applied.pending.rule_plan.lhs)
    for rank, last in enumerate(last_upload_round):
        value = lhs.get(rank)
        if value is not None:
            values[f"lhs_w{rank}"] = value
        # Rounds since the last upload as of the end of this round (0 = just uploaded).
        values[f"staleness_w{rank}"] = float(round_ - last if last >= 0 else round_ + 1)
    return values
