"""The interface every aggregation rule implements (one module per rule, each ending
in `RULE = AggregationRule(...)`, registered in workers.aggregation.registry).

A rule has two sides, in the spirit of PyTorch's communication hooks (state + what
happens to a gradient):
- `ReplicaRule`, one per replica: its state between rounds and what the replica does
  in a round, given the broadcast θᵏ, the skip test's right-hand side and a gradient
  oracle; it returns what to upload (or None: a skip, nothing is sent).
- `CoordinatorRule`: which replicas to call (`plan`; server-side rules choose) and how
  the uploads become the direction the optimizer steps along (`combine`).
Both sides checkpoint their own state. Everything common to all rules — θ, the
optimizer, the threshold window, counters, evaluation — stays in
workers.training.Coordinator / Replica, which call a rule only through this
interface and never look at its name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from service.schemas.resolved import ResolvedSpec

# (parameters, minibatch index) -> (loss, flat gradient). The same index gives the same
# minibatch, dropout masks and initial hidden state, whatever the parameters.
GradientOracle = Callable[[torch.Tensor, int], tuple[float, torch.Tensor]]


@dataclass(frozen=True)
class RuleContext:
    spec: ResolvedSpec
    size: int  # parameters p
    dtype: torch.dtype
    device: str
    # Per-worker smoothness constants L_m where the task knows them.
    smoothness: Sequence[float] | None = None

    @property
    def workers(self) -> int:
        return self.spec.distributed.workers

    def zeros(self, *shape: int) -> torch.Tensor:
        return torch.zeros(*shape, dtype=self.dtype, device=self.device)


def full_precision(vector: torch.Tensor) -> np.ndarray:
    """A vector's wire form unless its rule encodes it otherwise: its values in its own
    dtype, so p float32 numbers are 4·p bytes (8·p for float64)."""
    return vector.detach().cpu().numpy().copy()


def dense_upload_bytes(ctx: RuleContext) -> int:
    """The bytes of one full-precision upload of this job's gradient (what a dense
    replica sends each round): `full_precision`'s element size at the job's dtype
    times p, so that dense's `bytes_up_total` is exactly M·rounds·this."""
    return full_precision(ctx.zeros(1)).itemsize * ctx.size


@dataclass(frozen=True)
class ReplicaOutcome:
    """One replica's round. `upload` is what it sends (None: skipped); `loss` the
    minibatch loss at the broadcast θᵏ; `lhs` the skip test's left side where it was
    evaluated; `forced` an upload made because staleness reached its bound."""

    upload: torch.Tensor | None
    loss: float
    lhs: float | None = None
    forced: bool = False


@dataclass(frozen=True)
class Plan:
    """The replicas the coordinator calls this round, and what a server-side rule
    decided for them: uploads it forced, and the skip tests it evaluated."""

    ranks: tuple[int, ...]
    forced: int = 0
    lhs: Mapping[int, float] = field(default_factory=dict)


class ReplicaRule(ABC):
    def __init__(self, ctx: RuleContext, rank: int) -> None:
        self.ctx = ctx
        self.rank = rank

    @abstractmethod
    def round(
        self, round_: int, params: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> ReplicaOutcome: ...

    def lookahead(self, round_: int) -> torch.Tensor | None:
        """Parameters at which round `round_` will evaluate a gradient on its minibatch
        whatever θ that round brings (LASG-WK2's anchor θ̂_m), or None. Asked right
        after the previous round; the Ray path evaluates it while the replica waits
        for θ, so the round itself computes one gradient (workers.round_exchange).
        Contract: the very tensor object the round will pass to its gradient oracle,
        never changed in place (the replica's memo is keyed by identity)."""
        return None

    def encode(self, upload: torch.Tensor) -> np.ndarray:
        """The upload as it goes over the wire; its `nbytes` are the bytes counted."""
        return full_precision(upload)

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers (a checkpoint is read with weights_only=True)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None

    def tensor(self, value: torch.Tensor) -> torch.Tensor:
        return value.detach().clone().to(dtype=self.ctx.dtype, device=self.ctx.device)


class CoordinatorRule(ABC):
    # A called replica that does not upload is an error (dense-style rules), not a skip.
    every_call_uploads = False
    # Whether the rule's `plan` or its replicas read the skip test's RHS. A rule that
    # reads neither gets NaN for it, and the coordinator measures the window's newest
    # step after θᵏ⁺¹ is sent, off the Ray driver's critical path (the recorded "rhs"
    # is the true one either way).
    reads_threshold = True

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx

    def plan(self, round_: int, params: torch.Tensor, rhs: float) -> Plan:
        """Worker-side rules call every replica; server-side rules override this."""
        return Plan(tuple(range(self.ctx.workers)))

    def decode(self, upload: np.ndarray) -> torch.Tensor:
        """The upload as a tensor. A writable array is the sender's message, handed
        over (the data plane's inbox of the round, a replica's encoded copy): the
        tensor may share it. Arrays out of Ray's object store are read-only: those
        are copied before torch wraps them. `combine` must not write its uploads."""
        array = upload if upload.flags.writeable else np.array(upload, copy=True)
        return torch.from_numpy(array).to(dtype=self.ctx.dtype, device=self.ctx.device)

    @abstractmethod
    def combine(
        self, round_: int, params: torch.Tensor, uploads: Mapping[int, torch.Tensor]
    ) -> torch.Tensor:
        """Take this round's uploads (rank -> decoded vector, rank order) and return the
        direction the optimizer steps along from `params` (θᵏ)."""

    def metrics(self) -> dict[str, float]:
        """Values of this rule's own to add to the round's metric record."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None

    def tensor(self, value: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        return value.detach().clone().to(dtype=dtype or self.ctx.dtype, device=self.ctx.device)


@dataclass(frozen=True)
class AggregationRule:
    """A registry entry: the name used as `aggregation.strategy` and the two sides."""

    name: str
    replica: Callable[[RuleContext, int], ReplicaRule]
    coordinator: Callable[[RuleContext], CoordinatorRule]
