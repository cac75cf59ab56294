"""The coordinator: holds θ, the window of parameter steps, the optimizer state and
the run's accounting; its aggregation rule's coordinator side decides whom to call
and how the uploads become a direction. It plans each round (who is called, with
which θ and RHS), applies the replies, steps the optimizer, evaluates and returns the
round's metric values (DESIGN §5; what they mean: workers.training.metric_values).
Plain class: the in-process runner and the Ray layer drive the same `begin_round` /
`end_round` pair; `end_round` is `apply_round` (the step: all that the next round's
plan depends on) then `round_values` (the metrics), which the Ray driver splits to
send θᵏ⁺¹ before the metrics (workers.training.loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from service.schemas.resolved import ResolvedSpec
from workers.aggregation.common import SquaredStepMeter, ThresholdWindow
from workers.aggregation.registry import get_rule
from workers.aggregation.rule import (
    AggregationRule,
    CoordinatorRule,
    RuleContext,
    dense_upload_bytes,
)
from workers.training.flat import all_finite, flat_params, load_flat, read_only_view
from workers.training.metric_values import (
    COUNTERS,
    AppliedRound,
    PendingRound,
    replica_values,
    standard_values,
)
from workers.training.optim import OptimizerState, optimizer_step, preconditioner
from workers.training.precision import forward_precision, storage_dtype
from workers.training.replica import ReplicaReply
from workers.training.rounds import Diverged, RoundPlan
from workers.training.tasks.base import DatasetResolver, RoundMetrics, Task
from workers.training.tasks.registry import build_task


class Coordinator:
    def __init__(
        self,
        spec: ResolvedSpec,
        *,
        dtype: torch.dtype | None = None,  # None: the spec's model.dtype
        device: str = "cpu",
        resolve_dataset: DatasetResolver | None = None,
        task: Task | None = None,
        rule: AggregationRule | None = None,
        per_replica_metrics: bool = False,
    ) -> None:
        self.spec = spec
        self.dtype = dtype = dtype or storage_dtype(spec)
        self.device = device
        # The job asks for them (aggregation.per_replica_metrics), or a test does.
        self.per_replica_metrics = per_replica_metrics or spec.aggregation.per_replica_metrics
        self.task = (
            task
            if task is not None
            else build_task(spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset)
        )
        self.workers = spec.distributed.workers
        if self.task.num_workers != self.workers:
            raise ValueError(f"task has {self.task.num_workers} shards for {self.workers} workers")
        self.model = self.task.build_model().to(dtype=dtype, device=device)
        self.params = flat_params(self.model)
        self.rule = rule or get_rule(spec.aggregation.strategy)
        context = RuleContext(
            spec,
            size=self.params.numel(),
            dtype=dtype,
            device=device,
            smoothness=self.task.smoothness,
        )
        self.side: CoordinatorRule = self.rule.coordinator(context)
        self.dense_upload_bytes = dense_upload_bytes(context)
        self.next_round = 0
        self.window = ThresholdWindow(spec.aggregation.window)
        self.opt_state = OptimizerState()
        self.last_upload_round = [-1] * self.workers
        self.uploads_per_worker = [0] * self.workers
        self.last_loss = [math.nan] * self.workers
        # The ranks whose upload the last completed round used (DESIGN §11 `uploaded`).
        self.uploaded: tuple[int, ...] = ()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._pending: PendingRound | None = None
        self._applied: AppliedRound | None = None
        self._steps = SquaredStepMeter(self.params.numel(), device=device)
        # (θᵏ⁺¹, θᵏ, optimizer state) of a step not yet in the window (_measure_step).
        self._unmeasured: tuple[torch.Tensor, torch.Tensor, OptimizerState] | None = None

    # ---- one round -------------------------------------------------------------------

    def begin_round(self, round_: int) -> RoundPlan:
        if round_ != self.next_round or self._pending is not None:
            raise RuntimeError(f"begin_round({round_}) out of order: next is {self.next_round}")
        rhs = self._rhs() if self.side.reads_threshold else math.nan
        rule_plan = self.side.plan(round_, self.params, rhs)
        # θ is replaced by each step, never written in place: the plan can share it.
        plan = RoundPlan(round_, rule_plan.ranks, read_only_view(self.params), rhs)
        self._pending = PendingRound(plan, rule_plan)
        return plan

    def end_round(self, round_: int, replies: Sequence[ReplicaReply]) -> dict[str, float]:
        """`apply_round` then `round_values`: the step, then the round's metrics."""
        self.apply_round(round_, replies)
        return self.round_values(round_)

    def apply_round(self, round_: int, replies: Sequence[ReplicaReply]) -> None:
        """Take the round's step: everything the next round's plan depends on. Its
        metric values (`round_values`) may follow after the next `begin_round`, which
        is how the Ray driver sends θᵏ⁺¹ before it does this round's bookkeeping."""
        pending = self._pending
        if pending is None or pending.plan.round != round_ or self._applied is not None:
            raise RuntimeError(f"apply_round({round_}) without its begin_round")
        ordered = sorted(replies, key=lambda r: r.rank)
        if tuple(r.rank for r in ordered) != pending.plan.ranks:
            raise RuntimeError(
                f"round {round_}: replies from {[r.rank for r in ordered]}, "
                f"expected {list(pending.plan.ranks)}"
            )
        if self.side.every_call_uploads and any(r.upload is None for r in ordered):
            raise RuntimeError(
                f"round {round_}: a called replica did not upload ({self.rule.name})"
            )
        # The pending round is over whatever happens next (a divergence ends the run).
        self._pending = None
        uploads = {r.rank: self.side.decode(r.upload) for r in ordered if r.upload is not None}
        old = self.params
        direction = self.side.combine(round_, old, uploads)
        new, opt_state = optimizer_step(self.spec.optimizer, self.opt_state, old, direction)
        if not all(math.isfinite(r.loss) for r in ordered) or not all_finite(new):
            raise Diverged(round_)
        self.params, self.opt_state = new, opt_state
        self._unmeasured = (new, old, opt_state)
        if self.side.reads_threshold:  # the next plan's RHS needs this step
            self._measure_step()
        for reply in ordered:
            self.last_loss[reply.rank] = reply.loss
        self.uploaded = tuple(sorted(uploads))
        for rank in uploads:
            self.last_upload_round[rank] = round_
            self.uploads_per_worker[rank] += 1
        self.next_round = round_ + 1
        sent = sum(r.upload.nbytes for r in ordered if r.upload is not None)
        # The rule's own figures now: the next round's plan may change its state.
        self._applied = AppliedRound(
            pending, ordered, len(uploads), sent, self.side.metrics(), params=new
        )

    def round_values(self, round_: int) -> dict[str, float]:
        """The metric values of round `round_`, whose step `apply_round` took (the
        next round may have begun since: nothing here depends on it)."""
        applied = self._applied
        if applied is None or applied.pending.plan.round != round_:
            raise RuntimeError(f"round_values({round_}) without its apply_round")
        self._applied = None
        values = standard_values(
            round_,
            applied,
            counters=self.counters,
            last_loss=self.last_loss,
            workers=self.workers,
            dense_upload_bytes=self.dense_upload_bytes,
        )
        figures = {"train_loss": values["train_loss"]}
        if isinstance(self.task, RoundMetrics):
            figures.update(self.task.round_metrics(applied.params))
        if self.spec.schedule.eval_due(round_):
            figures.update(self.evaluate(applied.params))
        # Finite parameters can still overflow the loss's mean, the optimality gap or
        # the evaluation (1e302 squared): the run has diverged as surely, and a
        # "succeeded" job whose final metrics are null would hide it.
        if not all(math.isfinite(value) for value in figures.values()):
            raise Diverged(round_)
        values.update(figures)
        if self.per_replica_metrics:
            planned_rhs = applied.pending.plan.rhs
            rhs = self._rhs() if math.isnan(planned_rhs) else planned_rhs
            values.update(replica_values(round_, applied, rhs, self.last_upload_round))
        self._measure_step()  # after the "rhs" above, which is the window before it
        return values

    def _rhs(self) -> float:
        return self.window.rhs(lr=self.spec.optimizer.lr, xi=self.spec.aggregation.xi)

    def _measure_step(self) -> None:
        """Push the last step's ‖P·Δθ‖² into the window, if not done yet: at once
        when the rule reads the threshold, else once θᵏ⁺¹ is sent (round_values)."""
        if self._unmeasured is not None:
            new, old, opt_state = self._unmeasured
            self._unmeasured = None
            metric = preconditioner(self.spec.optimizer, opt_state)
            self.window = self.window.push(self._steps(new, old, metric))

    def evaluate(self, params: torch.Tensor | None = None) -> dict[str, float]:
        """The task's evaluation at `params` (default θ, the current parameters)."""
        load_flat(self.model, self.params if params is None else params)
        self.model.eval()
        with torch.no_grad(), forward_precision(self.spec, self.device):
            return {k: float(v) for k, v in self.task.evaluate(self.model).items()}

    # ---- outputs and checkpoints -------------------------------------------------------

    def model_state_dict(self) -> dict[str, torch.Tensor]:
        load_flat(self.model, self.params)
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and ints (torch.load(weights_only=True) reads it back):
        next_round, params (p,), window (≤ D,) float64 newest first, optimizer {step,
        momentum_buffer | exp_avg, exp_avg_sq[, max_exp_avg_sq]}, last_upload_round (M,)
        int64, uploads_per_worker (M,) int64, last_loss (M,) float64, counters
        {name: int}, and rule: the rule's coordinator state."""
        if self._pending is not None or self._applied is not None:
            raise RuntimeError("state_dict() in the middle of a round")
        return {
            "next_round": self.next_round,
            "params": self.params.clone(),
            "window": torch.tensor(self.window.sq_steps, dtype=torch.float64),
            "optimizer": self.opt_state.state_dict(),
            "last_upload_round": torch.tensor(self.last_upload_round, dtype=torch.int64),
            "uploads_per_worker": torch.tensor(self.uploads_per_worker, dtype=torch.int64),
            "last_loss": torch.tensor(self.last_loss, dtype=torch.float64),
            "counters": dict(self.counters),
            "rule": self.side.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def tensor(value: torch.Tensor) -> torch.Tensor:
            return value.detach().clone().to(dtype=self.dtype, device=self.device)

        params = tensor(state["params"])
        if params.shape != self.params.shape:
            raise ValueError(
                f"checkpoint has {params.numel()} parameters, the model {self.params.numel()}"
            )
        self.next_round = int(state["next_round"])
        self.params = params
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
        self.last_loss = [float(v) for v in state["last_loss"].tolist()]
        self.counters = {k: int(state["counters"][k]) for k in COUNTERS}
        self.side.load_state_dict(state["rule"])
        self._pending = self._applied = self._unmeasured = None
