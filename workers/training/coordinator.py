"""The coordinator: holds θ, the per-worker stale gradients and the window of
parameter steps; plans each round (who is called, with which θ and RHS), applies
the replies, clips the aggregated gradient, steps the optimizer, evaluates and
returns the round's metric values (DESIGN §5). Plain class: the in-process
runner and the Ray layer drive the same `begin_round` / `end_round` pair.

Accounting: an upload of p float32 numbers counts 4·p bytes (8·p for float64),
i.e. `ndarray.nbytes` of what was shipped; `dense_equiv_uploads` = M·(rounds
done), what `dense` would have uploaded. A round's metrics are recorded after
its step, so an eval round k reports the model θ^{k+1}.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from service.schemas.jobspec import JobSpec
from workers.aggregation import lag_ps, local_sgd
from workers.aggregation.common import (
    Decision,
    StaleGradients,
    ThresholdWindow,
    clip_by_norm,
    squared_step,
)
from workers.training.flat import flat_params, from_numpy, load_flat, to_numpy
from workers.training.optim import OptimizerConfig, OptimizerState, optimizer_step
from workers.training.replica import ReplicaReply
from workers.training.tasks.base import DatasetResolver, Task
from workers.training.tasks.registry import build_task

COUNTERS = ("uploads_total", "forced_total", "grad_evals_total", "samples_total", "bytes_up_total")


class Diverged(RuntimeError):
    """The loss or the parameters became NaN/inf at `round`."""

    def __init__(self, round_: int) -> None:
        super().__init__(f"training diverged at round {round_} (non-finite loss or parameters)")
        self.round = round_


@dataclass(frozen=True)
class RoundPlan:
    """Call `replicas[r].step(round, params, rhs)` for every r in `ranks`."""

    round: int
    ranks: tuple[int, ...]
    params: np.ndarray
    rhs: float


@dataclass
class _Pending:
    plan: RoundPlan
    decisions: list[Decision] | None  # lag_ps: the coordinator's own decisions
    started: float = field(default_factory=time.perf_counter)


class Coordinator:
    def __init__(
        self,
        spec: JobSpec,
        *,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        resolve_dataset: DatasetResolver | None = None,
        task: Task | None = None,
        per_replica_metrics: bool = False,
    ) -> None:
        self.spec = spec
        self.dtype = dtype
        self.device = device
        self.per_replica_metrics = per_replica_metrics
        self.task = (
            task
            if task is not None
            else build_task(spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset)
        )
        self.workers = spec.distributed.workers or 1
        if self.task.num_workers != self.workers:
            raise ValueError(f"task has {self.task.num_workers} shards for {self.workers} workers")
        self.strategy = spec.aggregation.strategy
        self.optimizer = OptimizerConfig.from_spec(spec.optimizer)
        self.xi = float(spec.aggregation.xi if spec.aggregation.xi is not None else 1.0)
        self.smoothness: list[float] | None = None
        if self.strategy == "lag_ps":
            if self.task.smoothness is None:
                raise ValueError("aggregation.strategy: lag_ps needs the task's smoothness")
            self.smoothness = [float(v) for v in self.task.smoothness]
        self.model = self.task.build_model().to(dtype=dtype, device=device)
        self.params = flat_params(self.model)
        size = self.params.numel()
        self.next_round = 0
        self.stale = StaleGradients.zeros(self.workers, size, dtype=dtype, device=device)
        self.window = ThresholdWindow(spec.aggregation.window)
        self.opt_state = OptimizerState()
        self.ps = lag_ps.LagPsState.initial(self.workers, size, dtype=dtype, device=device)
        self.last_upload_round = [-1] * self.workers
        self.uploads_per_worker = [0] * self.workers
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._pending: _Pending | None = None

    # ---- one round -------------------------------------------------------------------

    def begin_round(self, round_: int) -> RoundPlan:
        if round_ != self.next_round or self._pending is not None:
            raise RuntimeError(f"begin_round({round_}) out of order: next is {self.next_round}")
        rhs = self.window.rhs(lr=self.optimizer.lr, xi=self.xi)
        decisions = None
        ranks = tuple(range(self.workers))
        if self.strategy == "lag_ps":
            assert self.smoothness is not None
            decisions = lag_ps.select(
                self.ps,
                self.params,
                smoothness=self.smoothness,
                round_=round_,
                rhs=rhs,
                max_staleness=self.spec.aggregation.max_staleness,
            )
            ranks = tuple(r for r, d in enumerate(decisions) if d.upload)
        plan = RoundPlan(round_, ranks, to_numpy(self.params), rhs)
        self._pending = _Pending(plan, decisions)
        return plan

    def end_round(self, round_: int, replies: Sequence[ReplicaReply]) -> dict[str, float]:
        pending = self._pending
        if pending is None or pending.plan.round != round_:
            raise RuntimeError(f"end_round({round_}) without its begin_round")
        ordered = sorted(replies, key=lambda r: r.rank)
        if tuple(r.rank for r in ordered) != pending.plan.ranks:
            raise RuntimeError(
                f"round {round_}: replies from {[r.rank for r in ordered]}, "
                f"expected {list(pending.plan.ranks)}"
            )
        uploads = {
            r.rank: from_numpy(r.upload, dtype=self.dtype, device=self.device)
            for r in ordered
            if r.upload is not None
        }
        if self.strategy in ("lag_ps", "local_sgd", "dense") and len(uploads) != len(ordered):
            raise RuntimeError(f"round {round_}: a called replica did not upload ({self.strategy})")
        losses = [r.loss for r in ordered]
        old, stale = self.params, self.stale
        if self.strategy == "local_sgd":
            # No coordinator clipping here: each local step was clipped already.
            averaged = torch.stack([uploads[r] for r in sorted(uploads)]).mean(dim=0)
            direction = local_sgd.pseudo_gradient(old, averaged, lr=self.optimizer.lr)
        else:
            stale = stale.with_uploads(uploads)
            direction = clip_by_norm(stale.mean(), self.spec.optimizer.clip_grad_norm)
        new, opt_state = optimizer_step(self.optimizer, self.opt_state, old, direction)
        if not all(math.isfinite(v) for v in losses) or not bool(torch.isfinite(new).all()):
            self._pending = None
            raise Diverged(round_)
        self.params, self.stale, self.opt_state = new, stale, opt_state
        self.window = self.window.push(squared_step(new, old))
        if self.strategy == "lag_ps":
            self.ps = lag_ps.after_uploads(self.ps, old, ranks=sorted(uploads), round_=round_)
        for rank in uploads:
            self.last_upload_round[rank] = round_
            self.uploads_per_worker[rank] += 1
        self.next_round = round_ + 1
        self._pending = None
        return self._values(round_, pending, ordered, uploads)

    def _values(
        self,
        round_: int,
        pending: _Pending,
        replies: Sequence[ReplicaReply],
        uploads: dict[int, torch.Tensor],
    ) -> dict[str, float]:
        forced = sum(1 for r in replies if r.forced and r.upload is not None)
        if pending.decisions is not None:
            forced = sum(1 for d in pending.decisions if d.forced)
        evals = sum(r.grad_evals for r in replies)
        samples = sum(r.samples for r in replies)
        c = self.counters
        c["uploads_total"] += len(uploads)
        c["forced_total"] += forced
        c["grad_evals_total"] += evals
        c["samples_total"] += samples
        c["bytes_up_total"] += sum(v.numel() * v.element_size() for v in uploads.values())
        elapsed = max(time.perf_counter() - pending.started, 1e-9)
        values: dict[str, float] = {
            "train_loss": float(np.mean([r.loss for r in replies])) if replies else math.nan,
            "uploads": float(len(uploads)),
            "skips": float(self.workers - len(uploads)),
            "forced_uploads": float(forced),
            "downloads": float(len(pending.plan.ranks)),
            "uploads_total": float(c["uploads_total"]),
            "bytes_up_total": float(c["bytes_up_total"]),
            "dense_equiv_uploads": float(self.workers * (round_ + 1)),
            "grad_evals": float(evals),
            "grad_evals_total": float(c["grad_evals_total"]),
            "samples_per_s": samples / elapsed,
        }
        if self.per_replica_metrics:
            values.update(self._replica_values(round_, pending, replies))
        schedule = self.spec.schedule
        if (round_ + 1) % schedule.eval_every == 0 or round_ + 1 == schedule.rounds:
            values.update(self.evaluate())
        return values

    def _replica_values(
        self, round_: int, pending: _Pending, replies: Sequence[ReplicaReply]
    ) -> dict[str, float]:
        values = {"rhs": pending.plan.rhs}
        lhs: dict[int, float | None] = {r.rank: r.lhs for r in replies}
        if pending.decisions is not None:
            lhs = {rank: d.lhs for rank, d in enumerate(pending.decisions)}
        for rank in range(self.workers):
            value = lhs.get(rank)
            if value is not None:
                values[f"lhs_w{rank}"] = value
            last = self.last_upload_round[rank]
            # Rounds since the last upload as of the end of this round (0 = just uploaded).
            values[f"staleness_w{rank}"] = float(round_ - last if last >= 0 else round_ + 1)
        return values

    def evaluate(self) -> dict[str, float]:
        load_flat(self.model, self.params)
        self.model.eval()
        with torch.no_grad():
            return {k: float(v) for k, v in self.task.evaluate(self.model).items()}

    # ---- outputs and checkpoints -------------------------------------------------------

    def model_state_dict(self) -> dict[str, torch.Tensor]:
        load_flat(self.model, self.params)
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints (torch.load(weights_only=True) reads it back):
        next_round, params (p,), stale_rows (M, p), stale_uploaded (M,) bool,
        window (≤ D,) float64 newest first, optimizer {step, momentum_buffer |
        exp_avg, exp_avg_sq[, max_exp_avg_sq]}, last_upload_round (M,) int64,
        uploads_per_worker (M,) int64, counters {name: int}, and ps_anchors (M, p)
        for lag_ps."""
        if self._pending is not None:
            raise RuntimeError("state_dict() in the middle of a round")
        state: dict[str, Any] = {
            "next_round": self.next_round,
            "params": self.params.clone(),
            "stale_rows": self.stale.rows.clone(),
            "stale_uploaded": self.stale.uploaded.clone(),
            "window": torch.tensor(self.window.sq_steps, dtype=torch.float64),
            "optimizer": self.opt_state.state_dict(),
            "last_upload_round": torch.tensor(self.last_upload_round, dtype=torch.int64),
            "uploads_per_worker": torch.tensor(self.uploads_per_worker, dtype=torch.int64),
            "counters": dict(self.counters),
        }
        if self.strategy == "lag_ps":
            state["ps_anchors"] = self.ps.anchors.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def tensor(value: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
            return value.detach().clone().to(dtype=dtype or self.dtype, device=self.device)

        params = tensor(state["params"])
        if params.shape != self.params.shape:
            raise ValueError(
                f"checkpoint has {params.numel()} parameters, the model {self.params.numel()}"
            )
        self.next_round = int(state["next_round"])
        self.params = params
        self.stale = StaleGradients(
            tensor(state["stale_rows"]), tensor(state["stale_uploaded"], torch.bool)
        )
        self.window = ThresholdWindow(
            self.spec.aggregation.window, tuple(float(v) for v in state["window"].tolist())
        )
        optimizer = {
            k: tensor(v) if isinstance(v, torch.Tensor) else v
            for k, v in state["optimizer"].items()
        }
        self.opt_state = OptimizerState.from_state_dict(optimizer)
        self.last_upload_round = [int(v) for v in state["last_upload_round"].tolist()]
        self.uploads_per_worker = [int(v) for v in state["uploads_per_worker"].tolist()]
        self.counters = {k: int(state["counters"][k]) for k in COUNTERS}
        if self.strategy == "lag_ps":
            self.ps = lag_ps.LagPsState(tensor(state["ps_anchors"]), tuple(self.last_upload_round))
        self._pending = None
