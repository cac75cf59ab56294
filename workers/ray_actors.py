"""What runs inside a job's Ray actors: plain classes that wrap the training core's
Replica and Coordinator (Ray wraps them at the edge, in workers.ray_job). The spec and
the rule arrive as the objects the dispatcher resolved (pickled, not re-read). Ray
places and supervises the actors; a round's messages and vectors move over the
gang's gloo group (workers.dataplane, workers.round_exchange). The round loop is the
reference runner's (workers.training.loop), so the Ray path reproduces its trajectory.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch

from service.artifacts import checkpoint_url, local_copy, read_file, write_file
from service.schemas.resolved import ResolvedSpec
from workers.aggregation.rule import AggregationRule
from workers.checkpoint_write import OUTAGE_SECONDS, write_with_retry
from workers.dataplane import TIMEOUT_S, GangGroup, Rendezvous, RendezvousHost
from workers.round_exchange import DriverExchange, largest_upload, serve_rounds
from workers.training.checkpoint import assemble, from_bytes, restore, to_bytes
from workers.training.coordinator import Coordinator
from workers.training.loop import RoundDone, run_rounds
from workers.training.models import parameter_count
from workers.training.replica import Replica
from workers.training.tasks.base import DatasetResolver, Task

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class RecordEvent:
    round: int
    values: dict[str, float]
    uploaded: tuple[int, ...]  # the replicas whose upload this round used


@dataclass(frozen=True)
class CheckpointEvent:
    round: int
    uri: str
    sha256: str
    bytes: int


JobEvent = RecordEvent | CheckpointEvent


# A worker machine's copies of remote uploads (service.artifacts.local_copy). Not the
# "lagtrain-datasets" of earlier versions, which wrote copies in place: one cut short
# there would be used again.
DATASET_COPIES = Path(tempfile.gettempdir()) / "lagtrain-uploads"


def dataset_resolver(datasets: Mapping[str, str]) -> DatasetResolver:
    def resolve(dataset_id: str) -> Path:
        if dataset_id not in datasets:
            raise KeyError(f"dataset upload:{dataset_id} was not handed to this job")
        return local_copy(datasets[dataset_id], DATASET_COPIES)

    return resolve


def _to_cpu(value: Any) -> Any:
    """Tensors anywhere in a state dict moved to the CPU (checkpoints are read there)."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


class ReplicaHost:
    """Runs in a replica actor: one Replica, torch limited to the bundle's CPUs."""

    def __init__(
        self,
        spec: ResolvedSpec,
        rank: int,
        *,
        rule: AggregationRule,
        dtype: str | None,
        device: str,
        threads: int,
        datasets: Mapping[str, str],
        task: Task | None = None,
    ) -> None:
        torch.set_num_threads(threads)
        self.replica = Replica(
            spec,
            rank,
            dtype=DTYPES[dtype] if dtype else None,
            device=device,
            resolve_dataset=dataset_resolver(datasets),
            task=task,
            rule=rule,
        )
        self.group: GangGroup | None = None

    def join_group(self, rendezvous: Rendezvous, timeout_s: float) -> None:
        """Join the job's gloo group as rank + 1 (blocks until every member joined)."""
        self.group = GangGroup(rendezvous, self.replica.rank + 1, timeout_s=timeout_s)

    def serve(self, first_round: int) -> int:
        """This replica's side of the job's rounds from `first_round` (workers.
        round_exchange) until the driver ends them, then it leaves the group; returns
        the rounds it ran. Runs for the whole job, so the actor takes a second call
        (state_dict) meanwhile."""
        group = self._group()
        size = parameter_count(self.replica.model)
        served = serve_rounds(
            group, self.replica, size, self.replica.dtype, first_round=first_round
        )
        group.close()
        return served

    def dataplane_stats(self) -> dict[str, int]:
        return self._group().stats()

    def evaluations_ahead(self) -> int:
        """Gradients this replica computed before their round's θ arrived and used."""
        return self.replica.evaluations_ahead

    def _group(self) -> GangGroup:
        if self.group is None:
            raise RuntimeError("this replica has not joined its job's group")
        return self.group

    def describe(self) -> dict[str, Any]:
        """Where this replica computes: its model's device and torch's thread count."""
        device = next(self.replica.model.parameters()).device
        return {
            "rank": self.replica.rank,
            "device": str(device),
            "threads": torch.get_num_threads(),
        }

    def state_dict(self) -> dict[str, Any]:
        return dict(_to_cpu(self.replica.state_dict()))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.replica.load_state_dict(state)


class JobDriver:
    """Runs in the coordinator bundle: the Coordinator, the round loop, checkpoints."""

    def __init__(
        self,
        spec: ResolvedSpec,
        *,
        rule: AggregationRule,
        job_key: str,
        replicas: list[Any],
        attempt: int = 1,
        dtype: str | None,
        artifacts_url: str,
        datasets: Mapping[str, str],
        threads: int,
        task: Task | None = None,
        dataplane_timeout_s: float = TIMEOUT_S,
        artifacts_outage_seconds: float = OUTAGE_SECONDS,
    ) -> None:
        torch.set_num_threads(threads)
        self.spec = spec
        self.job_key = job_key
        # How long a checkpoint write waits out a fault of the artifacts location.
        self.artifacts_outage_seconds = artifacts_outage_seconds
        self.write_failures = 0  # checkpoint writes that failed and were retried
        self._stop = threading.Event()
        self._checkpoint_on_stop = True
        self.attempt = attempt
        self.replicas = replicas
        self.artifacts_url = artifacts_url.rstrip("/")
        self.coordinator = Coordinator(
            self.spec,
            dtype=DTYPES[dtype] if dtype else None,
            resolve_dataset=dataset_resolver(datasets),
            task=task,
            rule=rule,
        )
        if len(replicas) != self.coordinator.workers:
            raise ValueError(
                f"{len(replicas)} replica actors for {self.coordinator.workers} workers"
            )
        self.dataplane_timeout_s = dataplane_timeout_s
        self.group: GangGroup | None = None
        # Seconds of the run's start (the gang-start breakdown, workers.ray_job).
        self.start_phases: dict[str, float] = {}

    def _connect(self) -> GangGroup:
        """Build the job's gloo group: this driver hosts the rendezvous and joins as
        rank 0 while every replica joins (each join blocks until all have)."""
        # The replicas' construction first, unbounded as before the group existed
        # (it may load a large dataset); its errors surface here as Ray errors.
        started = time.perf_counter()
        ray.get([r.describe.remote() for r in self.replicas])
        described = time.perf_counter()
        timeout = self.dataplane_timeout_s
        host = RendezvousHost(len(self.replicas) + 1, timeout_s=timeout)
        joins = [r.join_group.remote(host.rendezvous, timeout) for r in self.replicas]
        self.group = GangGroup(host.rendezvous, 0, timeout_s=timeout, store=host.store)
        ray.get(joins)
        self.start_phases["replicas_ready_s"] = described - started
        self.start_phases["group_s"] = time.perf_counter() - described
        return self.group

    def dataplane_stats(self) -> dict[str, int]:
        return self._group().stats()

    def _group(self) -> GangGroup:
        if self.group is None:
            raise RuntimeError("the driver has not joined its job's group")
        return self.group

    def resume(self, uri: str, sha256: str) -> int:
        """Load the checkpoint at `uri` after verifying its sha256; returns next round."""
        checkpoint = from_bytes(read_file(uri), sha256=sha256, source=uri)

        def load(states: list[dict[str, Any]]) -> None:
            ray.get(
                [r.load_state_dict.remote(s) for r, s in zip(self.replicas, states, strict=True)]
            )

        return restore(checkpoint, self.coordinator, load)

    def run(self) -> Iterator[JobEvent]:
        size = self.coordinator.params.numel()
        exchange = DriverExchange(
            self._connect(),
            self.replicas,
            largest=largest_upload(size),
            first_round=self.coordinator.next_round,
        )

        def states() -> list[dict[str, Any]]:
            return list(ray.get([r.state_dict.remote() for r in self.replicas]))

        last: RoundDone | None = None
        rounds = run_rounds(self.coordinator, exchange, states, should_stop=self._stop.is_set)
        round_started = time.perf_counter()
        for last in rounds:
            self.start_phases.setdefault("first_round_s", time.perf_counter() - round_started)
            yield RecordEvent(last.round, last.values, last.uploaded)
            if last.checkpoint is not None:
                yield self._write_checkpoint(last.round, last.checkpoint)
        stopped = self._stop.is_set() and self._checkpoint_on_stop
        if stopped and last is not None and last.checkpoint is None:
            # Stopped early (a draining worker): checkpoint the last finished round, so
            # the next attempt re-trains nothing.
            yield self._write_checkpoint(last.round, assemble(self.coordinator, states()))
        exchange.finish()  # a clean end: every member leaves the group

    def run_start_phases(self) -> dict[str, float]:
        return dict(self.start_phases)

    def checkpoint_write_failures(self) -> int:
        """Checkpoint writes that failed so far (asked on the second thread while
        `run` waits out an artifacts outage: tests and operators see it waiting)."""
        return self.write_failures

    def _count_failure(self, _error: OSError) -> None:
        self.write_failures += 1

    def request_stop(self, checkpoint: bool = True) -> None:
        """End `run` after the round in progress (and the next one if it was already
        sent: workers.training.loop), with a checkpoint of it unless `checkpoint` is
        False (a cancelled job has no next attempt). Runs on the actor's second
        thread (the gang starts the driver with max_concurrency=2)."""
        self._checkpoint_on_stop = checkpoint
        self._stop.set()

    def _write_checkpoint(self, round_: int, checkpoint: dict[str, Any]) -> CheckpointEvent:
        data = to_bytes(checkpoint)
        uri = checkpoint_url(self.artifacts_url, self.job_key, round_, self.attempt)
        # A fault of the artifacts location is waited out (the rounds wait too), up to
        # the bound (workers.checkpoint_write says why a drain does not end the wait).
        write_with_retry(
            lambda: write_file(uri, data),
            name=f"job {self.job_key}",
            url=uri,
            give_up_seconds=self.artifacts_outage_seconds,
            on_failure=self._count_failure,
        )
        return CheckpointEvent(round_, uri, hashlib.sha256(data).hexdigest(), len(data))
