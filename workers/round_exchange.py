"""A round's messages over the gang's gloo group (workers.dataplane): the replica's
loop (`serve_rounds`, inside one long Ray call per job) and the driver's side
(`DriverExchange`), which Ray supervises.

Per round, for each replica the coordinator calls: driver -> replica a control
message (round, RHS) and θ; replica -> driver a StepReply (its reply without the
vector, and the upload's shape or None), then the upload if there is one. A replica
that is not called, or that skips, sends no vector. Every wait on the group happens
in a helper thread while the driver watches the replicas' `serve` calls, so a
replica that dies ends the round with Ray's error for it (job_run reports "a replica
died"), also where gloo itself would not notice (a lost node).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import ray
import torch

from workers.dataplane import (
    CONTROL_BYTES,
    CONTROL_TAG,
    PARAMS_TAG,
    UNBOUNDED,
    UPLOAD_TAG,
    GangGroup,
    WireArray,
    decode,
)
from workers.training.coordinator import RoundPlan
from workers.training.replica import Replica, ReplicaReply

# How often the driver looks at the replicas' Ray calls while a wait lasts, and how
# long it gives Ray to report a replica's death once the group has failed.
WATCH_S = 1.0
REPORT_S = 10.0


@dataclass(frozen=True)
class StepReply:
    """A replica's round as it sends it back: the reply without its upload, and the
    upload's shape when one follows (None: a skip)."""

    reply: ReplicaReply
    upload: WireArray | None


def serve_rounds(group: GangGroup, replica: Replica, params: torch.Tensor) -> int:
    """A replica's rounds until the driver's stop message; returns how many it ran.
    `params` is the buffer θ arrives in (the coordinator's dtype and size)."""
    control = torch.empty(CONTROL_BYTES, dtype=torch.uint8)
    served = 0
    while True:
        # The driver may evaluate or write a checkpoint between two rounds.
        group.recv(control, 0, CONTROL_TAG).wait(UNBOUNDED)
        command = decode(control)
        if command is None:
            return served
        round_, rhs = command
        group.recv(params, 0, PARAMS_TAG).wait()
        reply = replica.step(round_, params.numpy(), rhs)
        upload = reply.upload
        if upload is None:
            group.send_message(StepReply(reply, None), 0)
        else:
            group.send_message(StepReply(replace(reply, upload=None), WireArray.of(upload)), 0)
            group.send_array(upload, 0, UPLOAD_TAG)
        group.wait_sends()  # the driver reads them at once
        served += 1


class DriverExchange:
    """The driver's side of the rounds: starts each replica's `serve` call, runs a
    round's exchange, and ends the replicas' loops on a clean finish."""

    def __init__(self, group: GangGroup, replicas: Sequence[Any]) -> None:
        self.group = group
        self.replicas = list(replicas)
        self.serving = [replica.serve.remote() for replica in self.replicas]
        # Gloo's waits block; they run here while the caller's thread watches Ray.
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix="lagtrain-dataplane")

    def step(self, plan: RoundPlan) -> list[ReplicaReply]:
        group = self.group
        params = torch.from_numpy(plan.params)
        for rank in plan.ranks:
            group.send_message((plan.round, plan.rhs), rank + 1)
            group.send(params, rank + 1, PARAMS_TAG)
        buffers = [torch.empty(CONTROL_BYTES, dtype=torch.uint8) for _ in plan.ranks]
        works = [
            group.recv(buffer, rank + 1, CONTROL_TAG)
            for rank, buffer in zip(plan.ranks, buffers, strict=True)
        ]
        self._wait([*group.take_sends(), *works])  # as long as the slowest replica's step
        heads: list[StepReply] = [decode(buffer) for buffer in buffers]
        uploads = {
            h.reply.rank: (h.upload, torch.empty(h.upload.nbytes, dtype=torch.uint8))
            for h in heads
            if h.upload is not None
        }
        self._wait([group.recv(raw, rank + 1, UPLOAD_TAG) for rank, (_w, raw) in uploads.items()])
        arrays = {
            rank: raw.numpy().view(wire.dtype).reshape(wire.shape)
            for rank, (wire, raw) in uploads.items()
        }
        return [replace(h.reply, upload=arrays.get(h.reply.rank)) for h in heads]

    def finish(self) -> None:
        """A clean end: stop every replica's loop, each closes its member of the
        group, then this one (a pooled actor keeps no group)."""
        for rank in range(len(self.replicas)):
            self.group.send_message(None, rank + 1)
        self._wait(self.group.take_sends())
        ray.get(self.serving)
        self.group.close()
        self._waiter.shutdown()

    def _wait(self, works: Sequence[Any]) -> None:
        future = self._waiter.submit(_wait_all, works)
        while True:
            try:
                future.result(timeout=WATCH_S)
                return
            except TimeoutError:
                self._raise_if_a_replica_ended(timeout=0.0)
            except RuntimeError:
                # The group failed (a peer's socket closed, a timeout): Ray's account
                # of the replica says more, if it has one.
                self._raise_if_a_replica_ended(timeout=REPORT_S)
                raise

    def _raise_if_a_replica_ended(self, *, timeout: float) -> None:
        ended, _ = ray.wait(self.serving, num_returns=1, timeout=timeout)
        if ended:
            ray.get(ended)  # a replica's error (its actor died, its step raised)
            raise RuntimeError("a replica left the job's rounds before the driver ended them")


def _wait_all(works: Sequence[Any]) -> None:
    for work in works:
        work.wait(UNBOUNDED)
