"""One data-parallel worker: its own model copy, its shard's minibatches, and the
replica side of its aggregation rule. Plain class; the Ray layer wraps it in an
actor, and the in-process runner calls it directly, so both paths run this code.

The replica gives its rule a gradient oracle: `gradient(θ, index)` evaluates the loss
and flat gradient at θ on minibatch `index` of this shard. Every evaluation of index
i runs under a torch RNG seeded from (job seed, rank, i) inside `fork_rng`, so
dropout masks depend only on those numbers, and two evaluations of one index (LASG-
WK2's) see the same minibatch, masks and (zero) initial hidden state. The global RNG
is never disturbed.

`prefetch(k)` evaluates, before round k's θ arrives, the gradient the rule will need
in round k whatever θ brings (ReplicaRule.lookahead: LASG-WK2's anchor); round k then
takes it from memory instead of evaluating it again. The values are the same either
way (same parameters, minibatch and seed), so prefetching changes no number, only
when the work is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from service.schemas.resolved import ResolvedSpec
from workers.aggregation.registry import get_rule
from workers.aggregation.rule import AggregationRule, ReplicaRule, RuleContext
from workers.training.flat import flat_grad, from_numpy, load_flat, seed_for
from workers.training.models import parameter_count
from workers.training.precision import check_device, forward_precision, storage_dtype
from workers.training.tasks.base import Batch, DatasetResolver, Task
from workers.training.tasks.registry import build_task


@dataclass(frozen=True)
class _Ahead:
    index: int  # the round, which is the minibatch index
    params: torch.Tensor
    result: tuple[float, torch.Tensor]


@dataclass(frozen=True)
class ReplicaReply:
    """What a replica sends back for one round. `upload` is what its rule sent (None
    for a skip); `loss` the minibatch loss at the broadcast parameters; `lhs` the skip
    test's left side where evaluated."""

    rank: int
    upload: np.ndarray | None
    loss: float
    lhs: float | None
    forced: bool
    grad_evals: int
    samples: int


class Replica:
    def __init__(
        self,
        spec: ResolvedSpec,
        rank: int,
        *,
        dtype: torch.dtype | None = None,  # None: the spec's model.dtype
        device: str = "cpu",
        resolve_dataset: DatasetResolver | None = None,
        task: Task | None = None,
        rule: AggregationRule | None = None,
    ) -> None:
        workers = spec.distributed.workers
        if not 0 <= rank < workers:
            raise ValueError(f"rank {rank} outside 0..{workers - 1}")
        self.spec = spec
        self.rank = rank
        self.dtype = dtype = dtype or storage_dtype(spec)
        self.device = device
        self.task = (
            task
            if task is not None
            else build_task(spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset)
        )
        check_device(spec, device)
        self.model = self.task.build_model().to(dtype=dtype, device=device)
        self.rule = rule or get_rule(spec.aggregation.strategy)
        context = RuleContext(spec, size=parameter_count(self.model), dtype=dtype, device=device)
        self.side: ReplicaRule = self.rule.replica(context, rank)
        self._rng_devices = [] if torch.device(device).type == "cpu" else [torch.device(device)]
        self._batch: tuple[int, Batch] | None = None
        self._evals = 0
        self._samples: dict[int, int] = {}
        self._ahead: _Ahead | None = None
        self.evaluations_ahead = 0  # prefetched gradients a round has used

    def step(self, round_: int, params: np.ndarray, rhs: float) -> ReplicaReply:
        self._evals, self._samples = 0, {}
        theta = from_numpy(params, dtype=self.dtype, device=self.device)
        outcome = self.side.round(round_, theta, rhs, self.gradient)
        self._ahead = None  # a prefetch this round did not use is for no other round
        return ReplicaReply(
            rank=self.rank,
            upload=None if outcome.upload is None else self.side.encode(outcome.upload),
            loss=outcome.loss,
            lhs=outcome.lhs,
            forced=outcome.forced,
            grad_evals=self._evals,
            samples=sum(self._samples.values()),
        )

    def prefetch(self, round_: int) -> None:
        """Evaluate now the gradient round `round_` will need whatever its θ (if any;
        none past the job's last round)."""
        self._ahead = None
        if round_ >= self.spec.schedule.rounds:
            return
        params = self.side.lookahead(round_)
        if params is not None:
            self._ahead = _Ahead(round_, params, self._evaluate(params, round_))

    def gradient(self, params: torch.Tensor, index: int) -> tuple[float, torch.Tensor]:
        """(loss, flat gradient) at `params` on this shard's minibatch `index`."""
        batch = self._minibatch(index)
        self._evals += 1
        self._samples[index] = batch.size
        ahead = self._ahead
        # The prefetched parameters are the rule's own state object (never changed in
        # place: a new state replaces it), so identity means the same values.
        if ahead is not None and ahead.index == index and ahead.params is params:
            self._ahead = None
            self.evaluations_ahead += 1
            return ahead.result
        return self._evaluate(params, index)

    def _evaluate(self, params: torch.Tensor, index: int) -> tuple[float, torch.Tensor]:
        batch = self._minibatch(index)
        load_flat(self.model, params)
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        with torch.random.fork_rng(devices=self._rng_devices):
            seed = seed_for(self.spec.schedule.seed, self.rank, index)
            if self._rng_devices:
                torch.manual_seed(seed)
            else:
                # CPU only: torch.manual_seed would also queue lazy seeding of every
                # accelerator backend, which costs more than a small model's step.
                torch.default_generator.manual_seed(seed)
            with forward_precision(self.spec, self.device):
                loss = self.task.loss(self.model, batch)
            loss.backward()  # type: ignore[no-untyped-call]
        return float(loss.detach()), flat_grad(self.model)

    def _minibatch(self, index: int) -> Batch:
        # A rule may evaluate one minibatch twice (LASG-WK2): build it once.
        if self._batch is None or self._batch[0] != index:
            self._batch = (index, self.task.batch(self.rank, index, self.spec.schedule.minibatch))
        return self._batch[1]

    def state_dict(self) -> dict[str, Any]:
        """{"rank", "strategy", "rule": the rule's replica state}."""
        return {"rank": self.rank, "strategy": self.rule.name, "rule": self.side.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["rank"] != self.rank or state["strategy"] != self.rule.name:
            raise ValueError(
                f"replica state is for rank {state['rank']} / {state['strategy']}, "
                f"not rank {self.rank} / {self.rule.name}"
            )
        self.side.load_state_dict(state["rule"])
