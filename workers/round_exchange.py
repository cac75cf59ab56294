"""A round's messages over the gang's gloo group (workers.dataplane): the replica's
loop (`serve_rounds`, inside one long Ray call per job) and the driver's side
(`DriverExchange`), which Ray supervises.

Per round, for each replica the coordinator calls, one message each way: driver ->
replica (round, RHS) and θ; replica -> driver a StepReply (its reply without the
vector, and the upload's shape or None) and the upload if there is one. A replica
that is not called receives nothing; one that skips sends no vector. Every wait on
the group happens in a helper thread while the driver watches the replicas' `serve`
calls, so a replica that dies ends the round with Ray's error for it
(workers.job_outcome reports "replica r died"), also where gloo itself would not
notice (a lost node).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import ray
import torch

from workers.dataplane import (
    CONTROL_BYTES,
    UNBOUNDED,
    GangGroup,
    WireArray,
    decode,
    encode,
    vector_of,
)
from workers.training.replica import Replica, ReplicaReply
from workers.training.rounds import RoundPlan

# How often the driver looks at the replicas' Ray calls while a wait lasts, and how
# long it gives Ray to report a replica's death once the group has failed.
WATCH_S = 1.0
REPORT_S = 10.0


def largest_upload(size: int) -> int:
    """The most bytes an upload of a model of `size` parameters may have: p float64
    values (every rule's wire form fits: a vector in the job's dtype, or LAQ's packed
    bits and its 8-byte radius)."""
    return 8 * size + 64


@dataclass(frozen=True)
class StepReply:
    """A replica's round as it sends it back: the reply without its upload, and the
    upload's shape when one follows (None: a skip)."""

    reply: ReplicaReply
    upload: WireArray | None


def serve_rounds(
    group: GangGroup, replica: Replica, size: int, dtype: torch.dtype, *, first_round: int
) -> int:
    """A replica's rounds from `first_round` (after a resume, not 0) until the driver's
    stop message; returns how many it ran. θ arrives as `size` values of `dtype` (the
    coordinator's, which is the replica's)."""
    theta = WireArray(np.dtype(str(dtype).removeprefix("torch.")).str, (size,))
    inbox = torch.empty(CONTROL_BYTES + theta.nbytes, dtype=torch.uint8)
    served = 0
    receive = group.recv(inbox, 0)
    replica.prefetch(first_round)  # after a resume the replica has an anchor already
    while True:
        # The driver may evaluate or write a checkpoint between two rounds.
        receive.wait(UNBOUNDED)
        command = decode(inbox)
        if command is None:
            group.counted(received=(CONTROL_BYTES, 0))
            return served
        group.counted(received=(CONTROL_BYTES + theta.nbytes, theta.nbytes))
        round_, rhs, sent = command
        if sent != theta:  # a shorter θ would fill a prefix of the inbox unnoticed
            raise ValueError(f"θ sent as {sent}, this replica expects {theta}")
        reply = replica.step(round_, vector_of(inbox, theta), rhs)
        upload = reply.upload
        if upload is not None and upload.nbytes > largest_upload(size):
            raise ValueError(f"an upload of {upload.nbytes} bytes for {size} parameters")
        if upload is None:
            group.send(encode(StepReply(reply, None)), 0)
        else:
            head = StepReply(replace(reply, upload=None), WireArray.of(upload))
            group.send(encode(head, upload), 0, vector_bytes=upload.nbytes)
        group.wait_sends()  # the driver's receive is posted already
        served += 1
        # While the other uploads, the combine and the broadcast take their time, work
        # out what the next round needs whatever its θ (LASG-WK2's anchor gradient):
        # the next θ lands in the inbox meanwhile (this round's θ is no longer read).
        receive = group.recv(inbox, 0)
        replica.prefetch(round_ + 1)


class DriverExchange:
    """The driver's side of the rounds: starts each replica's `serve` call, runs a
    round's exchange, and ends the replicas' loops on a clean finish. `largest` is
    the most bytes an upload may have (receives are posted before its size is
    known)."""

    # The loop sends round k+1 before it makes round k's record (workers.training.loop).
    overlaps = True

    def __init__(
        self, group: GangGroup, replicas: Sequence[Any], *, largest: int, first_round: int
    ) -> None:
        self.group = group
        self.replicas = list(replicas)
        self.largest = largest
        self.serving = [replica.serve.remote(first_round) for replica in self.replicas]
        # Gloo's waits block; they run here while the caller's thread watches Ray.
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix="lagtrain-dataplane")
        # θ's message is kept from round to round (its sends are complete once the
        # round's replies are in). Each round's inboxes are new: the coordinator's
        # decoded uploads may share them (CoordinatorRule.decode), so they are never
        # written again.
        self._message: torch.Tensor | None = None
        self._in_flight: tuple[RoundPlan, dict[int, torch.Tensor], list[Any]] | None = None

    def step(self, plan: RoundPlan) -> list[ReplicaReply]:
        """One round's exchange, start to end."""
        self.send(plan)
        return self.receive(plan)

    def send(self, plan: RoundPlan) -> None:
        """Post the round's receives and send θ and its control part to the replicas
        it calls; returns at once (their steps run until `receive`)."""
        if self._in_flight is not None:
            earlier = self._in_flight[0].round
            raise RuntimeError(f"round {plan.round} sent before round {earlier}'s replies")
        group = self.group
        self._message = encode(
            (plan.round, plan.rhs, WireArray.of(plan.params)), plan.params, into=self._message
        )
        inboxes = {
            rank: torch.empty(CONTROL_BYTES + self.largest, dtype=torch.uint8)
            for rank in plan.ranks
        }
        works = [group.recv(inbox, rank + 1) for rank, inbox in inboxes.items()]
        for rank in plan.ranks:
            group.send(self._message, rank + 1, vector_bytes=plan.params.nbytes)
        self._in_flight = (plan, inboxes, [*group.take_sends(), *works])

    def receive(self, plan: RoundPlan) -> list[ReplicaReply]:
        """The replies of the round `send` started, rank order."""
        if self._in_flight is None or self._in_flight[0] is not plan:
            raise RuntimeError(f"round {plan.round}'s replies awaited before it was sent")
        _, inboxes, works = self._in_flight
        self._wait(works)  # as long as the slowest replica's step
        self._in_flight = None
        group = self.group
        replies = []
        for inbox in inboxes.values():
            head: StepReply = decode(inbox)
            if head.upload is None:
                group.counted(received=(CONTROL_BYTES, 0))
                replies.append(head.reply)
                continue
            group.counted(received=(CONTROL_BYTES + head.upload.nbytes, head.upload.nbytes))
            replies.append(replace(head.reply, upload=vector_of(inbox, head.upload)))
        return replies

    def finish(self) -> None:
        """A clean end: stop every replica's loop, each closes its member of the
        group, then this one (a pooled actor keeps no group)."""
        for rank in range(len(self.replicas)):
            self.group.send(encode(None), rank + 1)
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
