"""The replica's loop (workers.round_exchange.serve_rounds) computes the next round's
anchor gradient while the next θ can arrive: the receive is posted first, the prefetch
runs, and only then does the loop wait. A fake group records the order (the real one
over gloo: tests/workers/test_dataplane.py counts the prefetched gradients)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import torch

from tests.training.task_helpers import linreg_spec
from workers.dataplane import WireArray, encode
from workers.round_exchange import serve_rounds
from workers.training.flat import flat_params
from workers.training.replica import Replica, ReplicaReply

ROUNDS = 4


class LoggingReplica(Replica):
    def __init__(self, log: list[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log = log

    def step(self, round_: int, params: np.ndarray, rhs: float) -> ReplicaReply:
        self.log.append(f"step {round_}")
        return super().step(round_, params, rhs)

    def prefetch(self, round_: int) -> None:
        self.log.append(f"prefetch {round_}")
        super().prefetch(round_)

    def _evaluate(self, params: torch.Tensor, index: int) -> tuple[float, torch.Tensor]:
        self.log.append("evaluate")
        return super()._evaluate(params, index)


class Arrival:
    """A posted receive: the message lands in the inbox when the loop waits for it."""

    def __init__(self, inbox: torch.Tensor, message: torch.Tensor, log: list[str]) -> None:
        self.inbox, self.message, self.log = inbox, message, log

    def wait(self, _timeout: timedelta) -> None:
        self.log.append("wait")
        self.inbox[: self.message.numel()] = self.message


class RecordingGroup:
    def __init__(self, messages: list[torch.Tensor], log: list[str]) -> None:
        self.messages, self.log = iter(messages), log

    def recv(self, inbox: torch.Tensor, source: int) -> Arrival:
        self.log.append("post receive")
        return Arrival(inbox, next(self.messages), self.log)

    def counted(self, **_counts: Any) -> None:
        pass

    def send(self, _message: torch.Tensor, _to: int, **_bytes: int) -> None:
        self.log.append("send")

    def wait_sends(self) -> None:
        pass


SPEC = linreg_spec(
    "lasg_wk2",
    optimizer={"name": "adam", "lr": 0.05},
    schedule={"rounds": ROUNDS, "batch_size": 10},
    aggregation={"max_staleness": 7},
)


def serve(replica: LoggingReplica, first_round: int) -> int:
    """serve_rounds over a fake group: rounds first_round … ROUNDS - 1 (RHS 0: every
    test uploads), then the stop."""
    theta = flat_params(replica.model).numpy()
    rounds = [encode((k, 0.0, WireArray.of(theta)), theta) for k in range(first_round, ROUNDS)]
    group: Any = RecordingGroup([*rounds, encode(None)], replica.log)
    return serve_rounds(group, replica, theta.size, replica.dtype, first_round=first_round)


def test_the_anchor_gradient_is_computed_between_posting_and_waiting() -> None:
    log: list[str] = []
    replica = LoggingReplica(log, SPEC, 0)
    assert serve(replica, 0) == ROUNDS
    # Round 0 has no anchor yet (its upload makes one): nothing to compute ahead.
    expected = ["post receive", "prefetch 0", "wait", "step 0", "evaluate", "send"]
    for k in range(1, ROUNDS):  # the anchor's gradient, then only θᵏ's once it is there
        expected += [
            "post receive",
            f"prefetch {k}",
            "evaluate",
            "wait",
            f"step {k}",
            "evaluate",
            "send",
        ]
    expected += ["post receive", f"prefetch {ROUNDS}", "wait"]  # past the last: nothing
    assert log == expected
    assert replica.evaluations_ahead == ROUNDS - 1


def test_a_resumed_replica_computes_its_first_round_ahead_too() -> None:
    before = Replica(SPEC, 0)
    theta = flat_params(before.model).numpy()
    before.step(0, theta, 0.0)
    before.step(1, theta, 0.0)
    log: list[str] = []
    replica = LoggingReplica(log, SPEC, 0)
    replica.load_state_dict(before.state_dict())  # as a resume from a checkpoint does
    assert serve(replica, 2) == ROUNDS - 2
    assert log[:4] == ["post receive", "prefetch 2", "evaluate", "wait"]
    assert replica.evaluations_ahead == ROUNDS - 2
