"""The body of a warm-pool actor (workers.warm_pool): a plain class, like those of
workers.ray_actors, that Ray wraps at the edge. It becomes one job's replica or
driver at a time and keeps the tasks (datasets) it built, keyed by content."""

from __future__ import annotations

import gc
import json
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from service.schemas.resolved import ResolvedModel, ResolvedSpec
from workers.dataplane import Rendezvous
from workers.ray_actors import (
    DTYPES,
    JobDriver,
    JobEvent,
    ReplicaHost,
    dataset_resolver,
)
from workers.training.data_files import file_sha256
from workers.training.models import build_model
from workers.training.precision import storage_dtype
from workers.training.tasks.base import Task
from workers.training.tasks.registry import build_task

# Tasks a warm actor keeps between jobs (each holds its dataset in memory; the
# cache goes with the actor). A fixed bound: docs/operations.md, "Warm pool".
TASK_CACHE_SIZE = 2


class WarmHost:
    """A reusable actor body for the warm pool (workers.warm_pool): the process has
    torch and the training core imported once; for each job it becomes that job's
    replica or driver (model, optimizer and rule state built afresh from the job's
    spec) and is reset when the job ends. Tasks (the data) are cached by content."""

    def __init__(self) -> None:
        self.role: ReplicaHost | JobDriver | None = None
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self.tasks_built = 0
        warm_up()

    def _task(
        self, spec: ResolvedSpec, dtype: str | None, device: str, datasets: Mapping[str, str]
    ) -> Task:
        """The job's Task, reused when everything a task is built from is equal: the
        task and model sections (a built-in dataset's name and parameters are in the
        task section), the split, the seed, dtype, device, and each upload's identity:
        its id (so one user's upload is never served for another's, whatever the
        names) and the sha256 of its file's bytes (so changed content is rebuilt).
        A Task is never mutated after it is built (the reference runner shares one
        between its coordinator and all its replicas)."""
        # As Replica and Coordinator do: no dtype means the spec's storage dtype.
        torch_dtype = DTYPES[dtype] if dtype else storage_dtype(spec)
        resolve_dataset = dataset_resolver(datasets)
        uploads = {
            dataset_id: {"uri": uri, "sha256": file_sha256(resolve_dataset(dataset_id))}
            for dataset_id, uri in sorted(datasets.items())
        }
        key = json.dumps(
            {
                "task": spec.task.model_dump(mode="json"),
                "model": spec.model.model_dump(mode="json"),
                "distributed": spec.distributed.model_dump(mode="json"),
                "seed": spec.schedule.seed,
                "batch_size": spec.schedule.batch_size,
                "dtype": str(torch_dtype),
                "device": device,
                "uploads": uploads,
            },
            sort_keys=True,
        )
        task = self._tasks.pop(key, None)
        if task is None:
            self.tasks_built += 1
            task = build_task(
                spec,
                dtype=torch_dtype,
                device=device,
                resolve_dataset=resolve_dataset,
            )
        self._tasks[key] = task
        while len(self._tasks) > TASK_CACHE_SIZE:
            self._tasks.popitem(last=False)
        return task

    def become_replica(
        self,
        spec: ResolvedSpec,
        rank: int,
        *,
        dtype: str | None,
        device: str,
        datasets: Mapping[str, str],
        **kwargs: Any,
    ) -> dict[str, float]:
        """Become replica `rank` of the job; returns the set-up's phases (seconds)."""
        started, cpu = time.perf_counter(), time.process_time()
        built = self.tasks_built
        task = self._task(spec, dtype, device, datasets)
        task_done = time.perf_counter()
        self.role = ReplicaHost(
            spec, rank, dtype=dtype, device=device, datasets=datasets, task=task, **kwargs
        )
        return _phases(started, cpu, task_done, built == self.tasks_built)

    def become_driver(
        self, spec: ResolvedSpec, *, dtype: str | None, datasets: Mapping[str, str], **kwargs: Any
    ) -> dict[str, float]:
        """Become the job's driver; returns the set-up's phases (seconds)."""
        started, cpu = time.perf_counter(), time.process_time()
        built = self.tasks_built
        task = self._task(spec, dtype, "cpu", datasets)
        task_done = time.perf_counter()
        self.role = JobDriver(spec, dtype=dtype, datasets=datasets, task=task, **kwargs)
        return _phases(started, cpu, task_done, built == self.tasks_built)

    def reset(self) -> dict[str, int]:
        """Drop the job's objects (the task cache stays); returns this process's id and
        how many tasks it has built (tests check reuse). A cleanly ended job's run has
        closed its group already (only such jobs hand their actors back)."""
        self.role = None
        gc.collect()
        return {"pid": os.getpid(), "tasks_built": self.tasks_built}

    def _role(self) -> ReplicaHost | JobDriver:
        if self.role is None:
            raise RuntimeError("this warm actor has no job now")
        return self.role

    def _replica(self) -> ReplicaHost:
        if not isinstance(self.role, ReplicaHost):
            raise RuntimeError("this warm actor is not a replica now")
        return self.role

    def _driver(self) -> JobDriver:
        if not isinstance(self.role, JobDriver):
            raise RuntimeError("this warm actor is not a job driver now")
        return self.role

    def join_group(self, rendezvous: Rendezvous, timeout_s: float) -> None:
        self._replica().join_group(rendezvous, timeout_s)

    def serve(self, first_round: int) -> int:
        return self._replica().serve(first_round)

    def dataplane_stats(self) -> dict[str, int]:
        return self._role().dataplane_stats()

    def evaluations_ahead(self) -> int:
        return self._replica().evaluations_ahead()

    def describe(self) -> dict[str, Any]:
        return self._replica().describe()

    def state_dict(self) -> dict[str, Any]:
        return self._replica().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._replica().load_state_dict(state)

    def resume(self, uri: str, sha256: str) -> int:
        return self._driver().resume(uri, sha256)

    def run(self) -> Iterator[JobEvent]:
        yield from self._driver().run()

    def request_stop(self, checkpoint: bool = True) -> None:
        self._driver().request_stop(checkpoint)

    def run_start_phases(self) -> dict[str, float]:
        return self._driver().run_start_phases()


def _phases(started: float, cpu: float, task_done: float, cached: bool) -> dict[str, float]:
    return {
        "task_s": round(task_done - started, 4),
        "role_s": round(time.perf_counter() - task_done, 4),
        "cpu_s": round(time.process_time() - cpu, 4),  # this process's, all threads
        "task_cached": float(cached),
    }


def warm_up() -> None:
    """Run once what a job's first model build and first step would otherwise pay
    for in this process: the first build and forward/backward of each cell and dtype
    load torch's kernels and start autograd's machinery. (The big cost this was
    written for, a token model's build importing torch._dynamo, ≈ 4.5 s, is gone at
    its source: workers.training.models.) Tiny throwaway models: their weights come
    from their own generator, evaluation mode draws no dropout mask, so the global
    RNG is untouched."""
    generator = torch.Generator().manual_seed(0)
    for cell in ("rnn", "lstm", "gru"):
        spec = ResolvedModel(
            cell=cell, hidden_size=4, num_layers=1, dropout=0.0, embedding_dim=4, dtype="float32"
        )
        for dtype in (torch.float32, torch.float64):
            model = build_model(
                spec,
                head="language_model",
                out_features=3,
                generator=generator,
                dtype=dtype,
                device="cpu",
                vocab_size=3,
            ).eval()
            tokens = torch.zeros((2, 3), dtype=torch.int64)
            model(tokens).sum().backward()
