"""The one module that composes training on Ray: a placement group (one bundle for
the coordinator, one per replica), replica actors wrapping the plain Replica class,
and a driver actor wrapping the Coordinator that runs the rounds and streams events.

The round loop is the reference runner's (begin_round -> replica.step for each
planned rank -> end_round); only the replica calls go through Ray, with numpy
arrays on the wire. So the Ray path reproduces run_reference's trajectory.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import ray
import torch
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from service.schemas.jobspec import COORDINATOR_CPUS, JobSpec
from workers.training.coordinator import Coordinator
from workers.training.replica import Replica, ReplicaReply
from workers.training.runner import CHECKPOINT_FORMAT, assemble_checkpoint

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class RecordEvent:
    round: int
    values: dict[str, float]


@dataclass(frozen=True)
class CheckpointEvent:
    round: int
    uri: str
    sha256: str
    bytes: int


JobEvent = RecordEvent | CheckpointEvent


def _threads_for(cpus: float) -> int:
    return max(1, math.floor(cpus))


def _local_copy(uri: str) -> Path:
    """A local path for a dataset URI (remote fsspec files are copied once)."""
    if "://" not in uri or uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    target = (
        Path(tempfile.gettempdir()) / "lagtrain-datasets" / hashlib.sha256(uri.encode()).hexdigest()
    )
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with fsspec.open(uri, "rb") as src, target.open("wb") as dst:
            dst.write(src.read())
    return target


def _resolver(datasets: Mapping[str, str]) -> Any:
    def resolve(dataset_id: str) -> Path:
        if dataset_id not in datasets:
            raise KeyError(f"dataset upload:{dataset_id} was not handed to this job")
        return _local_copy(datasets[dataset_id])

    return resolve


class ReplicaHost:
    """Runs in a replica actor: one Replica, torch limited to the bundle's CPUs."""

    def __init__(
        self,
        spec: dict[str, Any],
        rank: int,
        *,
        dtype: str,
        device: str,
        threads: int,
        datasets: Mapping[str, str],
    ) -> None:
        torch.set_num_threads(threads)
        self.replica = Replica(
            JobSpec.model_validate(spec),
            rank,
            dtype=DTYPES[dtype],
            device=device,
            resolve_dataset=_resolver(datasets),
        )

    def step(self, round_: int, params: np.ndarray, rhs: float) -> ReplicaReply:
        return self.replica.step(round_, params, rhs)

    def describe(self) -> dict[str, Any]:
        """Where this replica computes: its model's device and torch's thread count."""
        device = next(self.replica.model.parameters()).device
        return {
            "rank": self.replica.rank,
            "device": str(device),
            "threads": torch.get_num_threads(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            k: v.cpu() if isinstance(v, torch.Tensor) else v
            for k, v in self.replica.state_dict().items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.replica.load_state_dict(state)


class JobDriver:
    """Runs in the coordinator bundle: the Coordinator, the round loop, checkpoints."""

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        job_key: str,
        replicas: list[Any],
        dtype: str,
        artifacts_url: str,
        datasets: Mapping[str, str],
        threads: int,
    ) -> None:
        torch.set_num_threads(threads)
        self.spec = JobSpec.model_validate(spec)
        self.job_key = job_key
        self.replicas = replicas
        self.artifacts_url = artifacts_url.rstrip("/")
        self.coordinator = Coordinator(
            self.spec, dtype=DTYPES[dtype], resolve_dataset=_resolver(datasets)
        )
        if len(replicas) != self.coordinator.workers:
            raise ValueError(
                f"{len(replicas)} replica actors for {self.coordinator.workers} workers"
            )

    def resume(self, uri: str, sha256: str) -> int:
        """Load the checkpoint at `uri` after verifying its sha256; returns next round."""
        with fsspec.open(uri, "rb") as fh:
            data = fh.read()
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise ValueError(f"checkpoint {uri} is corrupt: sha256 {digest} != {sha256}")
        checkpoint = torch.load(io.BytesIO(data), weights_only=True)
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{uri} is not a {CHECKPOINT_FORMAT} checkpoint")
        self.coordinator.load_state_dict(checkpoint["coordinator"])
        states = checkpoint["replicas"]
        if len(states) != len(self.replicas):
            raise ValueError(f"checkpoint has {len(states)} replicas, the job {len(self.replicas)}")
        ray.get([r.load_state_dict.remote(s) for r, s in zip(self.replicas, states, strict=True)])
        return self.coordinator.next_round

    def run(self) -> Iterator[JobEvent]:
        rounds, every = self.spec.schedule.rounds, self.spec.schedule.checkpoint_every
        for round_ in range(self.coordinator.next_round, rounds):
            plan = self.coordinator.begin_round(round_)
            params = ray.put(plan.params)
            replies: list[ReplicaReply] = ray.get(
                [self.replicas[rank].step.remote(round_, params, plan.rhs) for rank in plan.ranks]
            )
            values = self.coordinator.end_round(round_, replies)
            yield RecordEvent(round_, values)
            if (round_ + 1) % every == 0 or round_ + 1 == rounds:
                yield self._checkpoint(round_)

    def _checkpoint(self, round_: int) -> CheckpointEvent:
        states = ray.get([r.state_dict.remote() for r in self.replicas])
        checkpoint = assemble_checkpoint(
            self.coordinator.state_dict(), self.coordinator.model_state_dict(), states
        )
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        uri = f"{self.artifacts_url}/jobs/{self.job_key}/round-{round_ + 1:08d}.pt"
        fs, path = fsspec.core.url_to_fs(uri)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(f"{path}.tmp", "wb") as fh:
            fh.write(data)
        fs.mv(f"{path}.tmp", path)
        return CheckpointEvent(round_, uri, hashlib.sha256(data).hexdigest(), len(data))


class RayJob:
    """One job's gang on Ray: reserve the placement group, start the actors, stream
    the driver's events, and stop everything (also on cancel or error)."""

    def __init__(
        self,
        spec: JobSpec,
        *,
        job_key: str,
        artifacts_url: str,
        datasets: Mapping[str, str] | None = None,
        dtype: str = "float32",
        attempt: int = 1,
    ) -> None:
        self.spec = spec
        self.job_key = job_key
        # Actors are named, so an operator (or a test) can find a job's gang in Ray.
        self.actor_prefix = f"lagtrain-job{job_key}-attempt{attempt}"
        self.artifacts_url = artifacts_url
        self.datasets = dict(datasets or {})
        self.dtype = dtype
        self.pg: Any = None
        self.actors: list[Any] = []
        self.driver: Any = None

    def bundles(self) -> list[dict[str, float]]:
        dist = self.spec.distributed
        replica: dict[str, float] = {"CPU": dist.cpus_per_worker}
        if dist.gpus_per_worker > 0:
            replica["GPU"] = dist.gpus_per_worker
        return [{"CPU": COORDINATOR_CPUS}] + [dict(replica) for _ in range(dist.workers or 1)]

    def start(self, *, ready_timeout_s: float, resume: tuple[str, str] | None = None) -> int:
        """Reserve and start the gang; returns the first round to run."""
        bundles = self.bundles()
        self.pg = placement_group(bundles, strategy="PACK")
        try:
            ray.get(self.pg.ready(), timeout=ready_timeout_s)
        except ray.exceptions.GetTimeoutError as exc:
            raise TimeoutError(
                f"the cluster could not place the gang {bundles} within {ready_timeout_s:.0f} s"
            ) from exc
        dist = self.spec.distributed
        device = "cuda" if dist.gpus_per_worker > 0 else "cpu"
        spec = self.spec.model_dump(mode="json")
        replica_cls = ray.remote(ReplicaHost)
        for rank, bundle in enumerate(bundles[1:]):
            self.actors.append(
                replica_cls.options(
                    name=f"{self.actor_prefix}-replica{rank}",
                    num_cpus=bundle["CPU"],
                    num_gpus=bundle.get("GPU", 0.0),
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        self.pg, placement_group_bundle_index=rank + 1
                    ),
                ).remote(
                    spec,
                    rank,
                    dtype=self.dtype,
                    device=device,
                    threads=_threads_for(bundle["CPU"]),
                    datasets=self.datasets,
                )
            )
        self.driver = (
            ray.remote(JobDriver)
            .options(
                name=f"{self.actor_prefix}-driver",
                num_cpus=COORDINATOR_CPUS,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    self.pg, placement_group_bundle_index=0
                ),
            )
            .remote(
                spec,
                job_key=self.job_key,
                replicas=list(self.actors),
                dtype=self.dtype,
                artifacts_url=self.artifacts_url,
                datasets=self.datasets,
                threads=_threads_for(COORDINATOR_CPUS),
            )
        )
        self.actors.append(self.driver)
        if resume is not None:
            return int(ray.get(self.driver.resume.remote(*resume)))
        return 0

    def events(self) -> Iterator[JobEvent]:
        generator = self.driver.run.options(num_returns="streaming").remote()
        for ref in generator:
            yield ray.get(ref)

    def stop(self) -> None:
        """Kill the actors and release the placement group; safe to call twice."""
        for actor in self.actors:
            # An actor that already died is fine.
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self.actors.clear()
        if self.pg is not None:
            remove_placement_group(self.pg)
            self.pg = None


def run_on_ray(
    spec: JobSpec,
    *,
    job_key: str,
    artifacts_url: str,
    dtype: str = "float32",
    datasets: Mapping[str, str] | None = None,
    resume: tuple[str, str] | None = None,
    ready_timeout_s: float = 120.0,
) -> Iterator[JobEvent]:
    """Run a whole job on Ray, yielding its events (tests and benchmarks use this)."""
    job = RayJob(spec, job_key=job_key, artifacts_url=artifacts_url, datasets=datasets, dtype=dtype)
    try:
        job.start(ready_timeout_s=ready_timeout_s, resume=resume)
        yield from job.events()
    finally:
        job.stop()
