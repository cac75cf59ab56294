"""LAQ — lazily aggregated quantized gradients (Sun, Chen, Giannakis, Yang, NeurIPS
2019), exactly as ../shared/LAG-NOTES.md gives it. Worker m keeps Q̂_m, the quantized
gradient it last uploaded (zeros at start; the coordinator holds the same vector),
and ε̂_m, that upload's squared quantization error. With the fresh gradient g:

    R = ‖g - Q̂_m‖∞,  Δ = R / (2^b - 1),
    Q = Q̂_m - R + 2Δ·⌊(g - Q̂_m + R + Δ) / (2Δ)⌋      (each coordinate one of 2^b levels)
    ε = ‖g - Q‖²,  δ = Q - Q̂_m,
    upload δ iff ‖δ‖² ≥ RHS^k + 3(ε + ε̂_m), or staleness reached max_staleness.

What travels is the b-bit level index of every coordinate plus R (`encode`): an
upload costs ⌈b·p/8⌉ + 8 bytes, and those are the bytes counted. The coordinator
rebuilds δ = -R + 2Δ·index with the same arithmetic as the worker (`innovation`), so
both hold bit-identical Q̂_m, and its aggregate is always (1/M) Σ_m Q̂_m. With many
bits the quantization error vanishes and LAQ follows LAG-WK (a test).

Minibatch training (schedule.batch_size not "full") uses the stochastic variant: the
test above compares gradients of *different* minibatches, whose sampling noise (and
its quantization error ε) never shrinks, so on an RNN nearly every round skips or
nearly every round uploads depending on the noise. There the skip test is LASG-WK2's
(both gradients on the same minibatch, at θᵏ and at θ̂_m, the iterate of the last
upload; no ε term, the test sees no quantization), and what is sent is still the
quantized innovation δ = Q - Q̂_m.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from workers.aggregation import lasg_wk2
from workers.aggregation.common import (
    UPLOAD,
    Decision,
    StaleGradientCoordinator,
    clip_by_norm_,
    staleness_due,
)
from workers.aggregation.rule import (
    AggregationRule,
    GradientOracle,
    ReplicaOutcome,
    ReplicaRule,
    RuleContext,
)

RADIUS_BYTES = 8  # R travels as one float64 ahead of the packed indices


@dataclass(frozen=True)
class LaqState:
    held: torch.Tensor  # Q̂_m
    held_error: float = 0.0  # ε̂_m
    last_upload_round: int = -1
    anchor: torch.Tensor | None = None  # θ̂_m (the stochastic variant's second point)


def quantize(grad: torch.Tensor, held: torch.Tensor, bits: int) -> tuple[torch.Tensor, float]:
    """(level indices in 0 … 2^b - 1 as int64, radius R) of `grad` around `held`."""
    centred = grad - held
    radius = float(torch.linalg.vector_norm(centred, ord=float("inf")))
    if radius == 0.0:
        return torch.zeros_like(grad, dtype=torch.int64), 0.0
    half_step = radius / (2**bits - 1)  # Δ
    index = torch.floor((centred + radius + half_step) / (2 * half_step))
    return index.clamp_(0, 2**bits - 1).to(torch.int64), radius


def innovation(index: torch.Tensor, radius: float, bits: int, like: torch.Tensor) -> torch.Tensor:
    """δ = Q - Q̂_m = -R + 2Δ·index, in `like`'s dtype and device (both sides use this)."""
    half_step = radius / (2**bits - 1)
    levels = index.to(dtype=like.dtype, device=like.device)
    delta: torch.Tensor = levels * (2 * half_step) - radius
    return delta


def pack(index: torch.Tensor, radius: float, bits: int) -> np.ndarray:
    """The wire form: R as float64 bytes, then every index in `bits` bits (LSB first).
    Where `bits` divides 8 (2, 4 and 8: the defaults on full batches and minibatches)
    whole codes share each byte: the same layout, built without a byte per bit
    (benchmarks/laq_pack.py). Codes keep their low `bits` bits, as bit by bit."""
    codes = index.detach().cpu().numpy()
    header = np.frombuffer(np.float64(radius).tobytes(), dtype=np.uint8)
    if 8 % bits == 0:
        per_byte = 8 // bits
        padded = np.zeros(-(-codes.size // per_byte) * per_byte, dtype=np.uint8)
        padded[: codes.size] = codes & (2**bits - 1)
        grouped = padded.reshape(-1, per_byte)
        payload = grouped[:, 0].copy()
        for slot in range(1, per_byte):
            payload |= grouped[:, slot] << np.uint8(slot * bits)
        return np.concatenate([header, payload])
    shifts32 = np.arange(bits, dtype=np.uint32)
    bit_matrix = ((codes.astype(np.uint32)[:, None] >> shifts32) & 1).astype(np.uint8)
    payload = np.packbits(bit_matrix.reshape(-1), bitorder="little")
    return np.concatenate([header, payload])


def unpack(wire: np.ndarray, bits: int, size: int) -> tuple[torch.Tensor, float]:
    raw = np.asarray(wire, dtype=np.uint8)
    if raw.size != wire_bytes(bits, size):
        raise ValueError(f"an upload of {raw.size} bytes; {size} codes of {bits} bits take more")
    radius = float(np.frombuffer(raw[:RADIUS_BYTES].tobytes(), dtype=np.float64)[0])
    if 8 % bits == 0:
        shifts = (np.arange(8 // bits) * bits).astype(np.uint8)
        unpacked = (raw[RADIUS_BYTES:, None] >> shifts) & np.uint8(2**bits - 1)
        return torch.from_numpy(unpacked.reshape(-1)[:size].astype(np.int64)), radius
    bit_vector = np.unpackbits(raw[RADIUS_BYTES:], bitorder="little")[: size * bits]
    weights = (1 << np.arange(bits, dtype=np.int64)).astype(np.int64)
    codes = bit_vector.reshape(size, bits).astype(np.int64) @ weights
    return torch.from_numpy(codes), radius


def wire_bytes(bits: int, size: int) -> int:
    return RADIUS_BYTES + (bits * size + 7) // 8


def decide(
    state: LaqState,
    delta: torch.Tensor,
    error: float,
    *,
    round_: int,
    rhs: float,
    max_staleness: int | None,
    warmup_full_upload: bool,
) -> Decision:
    if state.last_upload_round < 0 and warmup_full_upload:
        return UPLOAD
    if staleness_due(round_, state.last_upload_round, max_staleness):
        return Decision(upload=True, forced=True)
    lhs = float(torch.dot(delta, delta))
    # "Not a clear skip", as common.skip_test: a NaN uploads (and diverges).
    return Decision(upload=not lhs < rhs + 3.0 * (error + state.held_error), lhs=lhs)


class LaqReplica(ReplicaRule):
    def __init__(self, ctx: RuleContext, rank: int) -> None:
        super().__init__(ctx, rank)
        self.bits = ctx.spec.aggregation.bits
        self.state = LaqState(held=ctx.zeros(ctx.size))

    def round(
        self, round_: int, params: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> ReplicaOutcome:
        loss, grad = gradient(params, round_)
        index, radius = quantize(grad, self.state.held, self.bits)
        delta = innovation(index, radius, self.bits, self.state.held)
        quantized = self.state.held + delta
        error = float(torch.sum((grad - quantized).to(torch.float64) ** 2))
        agg = self.ctx.spec.aggregation
        if self.ctx.spec.schedule.minibatch is None:
            decision = decide(
                self.state,
                delta,
                error,
                round_=round_,
                rhs=rhs,
                max_staleness=agg.max_staleness,
                warmup_full_upload=agg.warmup_full_upload,
            )
        else:
            decision = self._same_batch_decision(round_, grad, rhs, gradient)
        upload = None
        if decision.upload:
            self.state = LaqState(
                held=quantized,
                held_error=error,
                last_upload_round=round_,
                anchor=params.detach().clone(),
            )
            # [R, index_1 … index_p] in float64 (indices < 2^16 are exact); encode packs it.
            upload = torch.cat([torch.tensor([radius], dtype=torch.float64), index.double().cpu()])
        return ReplicaOutcome(upload=upload, loss=loss, lhs=decision.lhs, forced=decision.forced)

    def lookahead(self, round_: int) -> torch.Tensor | None:
        if self.ctx.spec.schedule.minibatch is None:
            return None  # the deterministic test evaluates only at θ^k
        max_staleness = self.ctx.spec.aggregation.max_staleness
        return lasg_wk2.anchor_ahead(self._wk2_state(), round_=round_, max_staleness=max_staleness)

    def _wk2_state(self) -> lasg_wk2.LasgWk2State:
        return lasg_wk2.LasgWk2State(self.state.anchor, self.state.last_upload_round)

    def _same_batch_decision(
        self, round_: int, grad: torch.Tensor, rhs: float, gradient: GradientOracle
    ) -> Decision:
        max_staleness = self.ctx.spec.aggregation.max_staleness
        decision = lasg_wk2.pre_decision(
            self._wk2_state(), round_=round_, max_staleness=max_staleness
        )
        if decision is None:
            assert self.state.anchor is not None  # pre_decision decides without one
            _, anchor_grad = gradient(self.state.anchor, round_)  # the same minibatch
            decision = lasg_wk2.decide(grad, anchor_grad, rhs=rhs)
        return decision

    def encode(self, upload: torch.Tensor) -> np.ndarray:
        radius = float(upload[0])
        return pack(upload[1:].to(torch.int64), radius, self.bits)

    def state_dict(self) -> dict[str, Any]:
        """held (Q̂_m), held_error (ε̂_m), last_upload_round, and anchor (θ̂_m) once
        there is one."""
        state: dict[str, Any] = {
            "held": self.state.held.clone(),
            "held_error": self.state.held_error,
            "last_upload_round": self.state.last_upload_round,
        }
        if self.state.anchor is not None:
            state["anchor"] = self.state.anchor.clone()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.state = LaqState(
            held=self.tensor(state["held"]),
            held_error=float(state["held_error"]),
            last_upload_round=int(state["last_upload_round"]),
            anchor=None if state.get("anchor") is None else self.tensor(state["anchor"]),
        )


class LaqCoordinator(StaleGradientCoordinator):
    """Row m is Q̂_m; an upload is the innovation δ, added to its row."""

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        self.bits = ctx.spec.aggregation.bits

    def decode(self, upload: np.ndarray) -> torch.Tensor:
        index, radius = unpack(upload, self.bits, self.ctx.size)
        return innovation(index, radius, self.bits, self.stale.rows[0])

    def combine(
        self, round_: int, params: torch.Tensor, uploads: Mapping[int, torch.Tensor]
    ) -> torch.Tensor:
        # The same addition as the worker's Q̂_m + δ, so the rows stay bit-identical.
        self.stale.replace({rank: self.stale.rows[rank] + delta for rank, delta in uploads.items()})
        return clip_by_norm_(self.stale.mean(), self.ctx.spec.optimizer.clip_grad_norm)


RULE = AggregationRule(name="laq", replica=LaqReplica, coordinator=LaqCoordinator)
