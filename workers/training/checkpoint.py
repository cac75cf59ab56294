"""Checkpoints, written once for the reference runner and the Ray path alike: what
one holds, when one is due, how its bytes are checked and read, and how a run is
restored from one.

A checkpoint holds plain tensors, ints and strings, so `torch.load(weights_only=True)`
reads it:

    {"format": CHECKPOINT_FORMAT, "next_round": int,
     "model": {name: tensor},                 # the coordinator's θ as a state dict
     "coordinator": Coordinator.state_dict(),
     "replicas": [Replica.state_dict() for rank 0..M-1]}

Cadence: after every `checkpoint_every`-th round and after the final round
(ResolvedSchedule.checkpoint_due).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from typing import Any

import torch

from workers.training.coordinator import Coordinator

CHECKPOINT_FORMAT = "lagtrain-checkpoint-2"


class CorruptCheckpoint(ValueError):
    """The bytes do not match the recorded sha256, or are not a checkpoint."""


def assemble(coordinator: Coordinator, replica_states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    state = coordinator.state_dict()
    return {
        "format": CHECKPOINT_FORMAT,
        "next_round": int(state["next_round"]),
        "model": coordinator.model_state_dict(),
        "coordinator": state,
        "replicas": list(replica_states),
    }


def to_bytes(checkpoint: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes, *, sha256: str, source: str) -> dict[str, Any]:
    """The checkpoint in `data`, after checking its sha256 and format."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise CorruptCheckpoint(f"checkpoint {source} is corrupt: sha256 {digest} != {sha256}")
    checkpoint = torch.load(io.BytesIO(data), weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CorruptCheckpoint(f"{source} is not a {CHECKPOINT_FORMAT} checkpoint")
    return checkpoint


def restore(
    checkpoint: dict[str, Any],
    coordinator: Coordinator,
    load_replicas: Callable[[list[dict[str, Any]]], None],
) -> int:
    """Load the coordinator and (through `load_replicas`) every replica; returns the
    next round to run."""
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CorruptCheckpoint(f"not a {CHECKPOINT_FORMAT} checkpoint")
    states = list(checkpoint["replicas"])
    if len(states) != coordinator.workers:
        raise ValueError(f"checkpoint has {len(states)} replicas, the job {coordinator.workers}")
    coordinator.load_state_dict(checkpoint["coordinator"])
    load_replicas(states)
    return coordinator.next_round
