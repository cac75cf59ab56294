"""One data-parallel worker: its own model copy, its shard's minibatches, and the
worker side of the aggregation rule. Plain class; the Ray layer wraps it in an
actor, and the in-process runner calls it directly, so both paths run this code.

Determinism: round k's minibatch is `task.batch(rank, k, batch_size)` and every
gradient evaluation of round k runs under a torch RNG seeded from (job seed,
rank, k) inside `fork_rng`, so dropout masks depend only on those numbers, and
LASG-WK2's two evaluations see the same minibatch, masks and (zero) initial
hidden state. The global RNG is never disturbed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from service.schemas.jobspec import JobSpec
from workers.aggregation import dense, lag_wk, lasg_wk2, local_sgd
from workers.aggregation.common import Decision
from workers.training.flat import flat_grad, from_numpy, load_flat, seed_for, to_numpy
from workers.training.tasks.base import Batch, DatasetResolver, Task
from workers.training.tasks.registry import build_task


@dataclass(frozen=True)
class ReplicaReply:
    """What a replica sends back for one round. `upload` is None for a skip; it is
    the fresh gradient (parameters for local_sgd). `loss` is the minibatch loss at
    the broadcast parameters; `lhs` the skip test's left side where evaluated."""

    rank: int
    upload: np.ndarray | None
    loss: float
    lhs: float | None
    forced: bool
    grad_evals: int
    samples: int


def batch_size_of(spec: JobSpec) -> int | None:
    size = spec.schedule.batch_size
    return None if size == "full" or size is None else int(size)


class Replica:
    def __init__(
        self,
        spec: JobSpec,
        rank: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: str = "cpu",
        resolve_dataset: DatasetResolver | None = None,
        task: Task | None = None,
    ) -> None:
        workers = spec.distributed.workers or 1
        if not 0 <= rank < workers:
            raise ValueError(f"rank {rank} outside 0..{workers - 1}")
        self.spec = spec
        self.rank = rank
        self.dtype = dtype
        self.device = device
        self.task = (
            task
            if task is not None
            else build_task(spec, dtype=dtype, device=device, resolve_dataset=resolve_dataset)
        )
        self.model = self.task.build_model().to(dtype=dtype, device=device)
        self.strategy = spec.aggregation.strategy
        self.batch_size = batch_size_of(spec)
        self._rng_devices = [] if torch.device(device).type == "cpu" else [torch.device(device)]
        self._lag_wk = lag_wk.LagWkState()
        self._lasg = lasg_wk2.LasgWk2State()

    def step(self, round_: int, params: np.ndarray, rhs: float) -> ReplicaReply:
        theta = from_numpy(params, dtype=self.dtype, device=self.device)
        if self.strategy == "local_sgd":
            return self._local_sgd(round_, theta)
        batch = self.task.batch(self.rank, round_, self.batch_size)
        seed = seed_for(self.spec.schedule.seed, self.rank, round_)
        loss, grad = self._gradient(theta, batch, seed)
        evals = 1
        agg = self.spec.aggregation
        decision: Decision
        if self.strategy == "lag_wk":
            decision = lag_wk.decide(
                self._lag_wk,
                grad,
                round_=round_,
                rhs=rhs,
                max_staleness=agg.max_staleness,
                warmup_full_upload=agg.warmup_full_upload,
            )
            if decision.upload:
                self._lag_wk = lag_wk.after_upload(self._lag_wk, grad, round_=round_)
        elif self.strategy == "lasg_wk2":
            early = lasg_wk2.pre_decision(
                self._lasg, round_=round_, max_staleness=agg.max_staleness
            )
            if early is None:
                assert self._lasg.anchor is not None
                _, anchor_grad = self._gradient(self._lasg.anchor, batch, seed)
                evals = 2
                decision = lasg_wk2.decide(grad, anchor_grad, rhs=rhs)
            else:
                decision = early
            if decision.upload:
                self._lasg = lasg_wk2.after_upload(self._lasg, theta, round_=round_)
        else:
            # dense, and lag_ps (the coordinator only calls the workers it chose).
            decision = dense.decide(dense.DenseState())
        return ReplicaReply(
            rank=self.rank,
            upload=to_numpy(grad) if decision.upload else None,
            loss=loss,
            lhs=decision.lhs,
            forced=decision.forced,
            grad_evals=evals,
            samples=batch.size,
        )

    def _local_sgd(self, round_: int, theta: torch.Tensor) -> ReplicaReply:
        steps = self.spec.aggregation.local_steps
        samples = 0

        def oracle(step: int, params: torch.Tensor) -> tuple[float, torch.Tensor]:
            nonlocal samples
            index = round_ * steps + step
            batch = self.task.batch(self.rank, index, self.batch_size)
            samples += batch.size
            seed = seed_for(self.spec.schedule.seed, self.rank, index)
            return self._gradient(params, batch, seed)

        lr = self.spec.optimizer.lr
        assert lr is not None
        final, losses = local_sgd.local_steps(
            theta, oracle, steps=steps, lr=lr, clip_grad_norm=self.spec.optimizer.clip_grad_norm
        )
        return ReplicaReply(
            rank=self.rank,
            upload=to_numpy(final),
            loss=losses[0],
            lhs=None,
            forced=False,
            grad_evals=steps,
            samples=samples,
        )

    def _gradient(
        self, params: torch.Tensor, batch: Batch, seed: int
    ) -> tuple[float, torch.Tensor]:
        load_flat(self.model, params)
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        with torch.random.fork_rng(devices=self._rng_devices):
            if self._rng_devices:
                torch.manual_seed(seed)
            else:
                # CPU only: torch.manual_seed would also queue lazy seeding of every
                # accelerator backend, which costs more than a small model's step.
                torch.default_generator.manual_seed(seed)
            loss = self.task.loss(self.model, batch)
            loss.backward()  # type: ignore[no-untyped-call]
        return float(loss.detach()), flat_grad(self.model)

    def state_dict(self) -> dict[str, Any]:
        """{"rank": int, "strategy": str, "last_upload_round": int} plus
        "last_upload" (lag_wk: g_m) or "anchor" (lasg_wk2: θ̂_m) once it exists."""
        state: dict[str, Any] = {"rank": self.rank, "strategy": self.strategy}
        if self.strategy == "lag_wk":
            state["last_upload_round"] = self._lag_wk.last_upload_round
            if self._lag_wk.last_upload is not None:
                state["last_upload"] = self._lag_wk.last_upload.clone()
        elif self.strategy == "lasg_wk2":
            state["last_upload_round"] = self._lasg.last_upload_round
            if self._lasg.anchor is not None:
                state["anchor"] = self._lasg.anchor.clone()
        else:
            state["last_upload_round"] = -1
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["rank"] != self.rank or state["strategy"] != self.strategy:
            raise ValueError(
                f"replica state is for rank {state['rank']} / {state['strategy']}, "
                f"not rank {self.rank} / {self.strategy}"
            )
        last = int(state["last_upload_round"])
        if self.strategy == "lag_wk":
            grad = state.get("last_upload")
            self._lag_wk = lag_wk.LagWkState(
                last_upload=None if grad is None else self._tensor(grad), last_upload_round=last
            )
        elif self.strategy == "lasg_wk2":
            anchor = state.get("anchor")
            self._lasg = lasg_wk2.LasgWk2State(
                anchor=None if anchor is None else self._tensor(anchor), last_upload_round=last
            )

    def _tensor(self, value: torch.Tensor) -> torch.Tensor:
        return value.detach().clone().to(dtype=self.dtype, device=self.device)
