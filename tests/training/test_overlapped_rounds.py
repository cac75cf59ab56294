"""The overlapped round loop (workers.training.loop, as the Ray driver runs it: round
k+1 sent before round k's metrics) against the reference runner's strict order, in
this process: every rule's records (per-replica figures and evaluations included),
checkpoints and final state are identical, a checkpoint round is never overlapped,
and a stop ends the loop after the round already sent."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch

from service.schemas.resolved import ResolvedSpec
from tests.training.task_helpers import CADA2_MINIBATCH, linreg_spec
from workers.training.coordinator import Coordinator
from workers.training.loop import InSequence, RoundDone, run_rounds
from workers.training.replica import Replica, ReplicaReply
from workers.training.rounds import RoundPlan

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCHEDULE = {"rounds": 24, "eval_every": 5, "checkpoint_every": 10}


def linreg(strategy: str, **sections: Any) -> ResolvedSpec:
    schedule = {**SCHEDULE, **sections.pop("schedule", {})}
    return linreg_spec(strategy, schedule=schedule, **sections)


CASES = {
    "dense-adam": linreg("dense", optimizer={"name": "adam", "lr": 0.05}),
    "lag_wk": linreg("lag_wk"),
    "lag_ps": linreg("lag_ps"),
    "laq": linreg("laq", aggregation={"bits": 3}),
    "local_sgd": linreg("local_sgd", schedule={"batch_size": 10}),
    "cada2": linreg("lasg_wk2", **CADA2_MINIBATCH),
}


class Recorder:
    """The loop's rounds over in-process replicas, with the order of the calls the
    exchange saw ("send k" / "receive k")."""

    def __init__(self, spec: ResolvedSpec, *, overlaps: bool) -> None:
        self.coordinator = Coordinator(spec, dtype=F64, per_replica_metrics=True)
        self.replicas = [Replica(spec, r, dtype=F64) for r in range(spec.distributed.workers)]
        self.calls: list[str] = []
        exchange = InSequence(self._step, overlaps=overlaps)
        send = exchange.send

        def logged_send(plan: RoundPlan) -> None:
            self.calls.append(f"send {plan.round}")
            send(plan)

        exchange.send = logged_send  # type: ignore[method-assign]
        self.exchange = exchange

    def _step(self, plan: RoundPlan) -> list[ReplicaReply]:
        self.calls.append(f"receive {plan.round}")
        return [self.replicas[r].step(plan.round, plan.params, plan.rhs) for r in plan.ranks]

    def rounds(self, **kwargs: Any) -> list[RoundDone]:
        states = lambda: [r.state_dict() for r in self.replicas]  # noqa: E731
        done = []
        for item in run_rounds(self.coordinator, self.exchange, states, **kwargs):
            done.append(item)
            self.calls.append(f"record {item.round}")
        return done


def _timeless(done: list[RoundDone]) -> list[dict[str, float]]:
    return [{k: v for k, v in d.values.items() if k != "samples_per_s"} for d in done]


def _bytes(checkpoint: dict[str, Any] | None) -> bytes | None:
    if checkpoint is None:
        return None
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("spec", CASES.values(), ids=CASES.keys())
def test_the_overlapped_order_reproduces_the_reference_exactly(spec: ResolvedSpec) -> None:
    reference = Recorder(spec, overlaps=False)
    expected = reference.rounds()
    overlapped = Recorder(spec, overlaps=True)
    got = overlapped.rounds()
    assert [d.round for d in got] == list(range(spec.schedule.rounds))
    assert _timeless(got) == _timeless(expected)
    assert "rhs" in got[-1].values and "val_loss" in got[4].values
    assert [d.uploaded for d in got] == [d.uploaded for d in expected]
    assert [_bytes(d.checkpoint) for d in got] == [_bytes(d.checkpoint) for d in expected]
    assert torch.equal(overlapped.coordinator.params, reference.coordinator.params)
    # Round k+1 went out before round k's record, except after a checkpoint round.
    calls = overlapped.calls
    for k in range(spec.schedule.rounds - 1):
        sent, recorded = calls.index(f"send {k + 1}"), calls.index(f"record {k}")
        assert (sent > recorded) == spec.schedule.checkpoint_due(k), k
    assert reference.calls.index("send 1") > reference.calls.index("record 0")


def test_a_stop_finishes_the_round_already_sent_then_ends() -> None:
    spec = CASES["lag_wk"]
    full = Recorder(spec, overlaps=True).rounds()
    recorder = Recorder(spec, overlaps=True)
    got = recorder.rounds(should_stop=lambda: "record 2" in recorder.calls)
    # The stop came while round 3 was under way (sent before round 2's record).
    assert [d.round for d in got] == [0, 1, 2, 3]
    assert recorder.coordinator.next_round == 4
    assert _timeless(got) == _timeless(full[:4])
    assert recorder.calls[-2:] == ["receive 3", "record 3"]
    assert np.isfinite(recorder.coordinator.state_dict()["params"].numpy()).all()
