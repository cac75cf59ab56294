"""A too-large job's reason names what set the ceiling it is over: under `server
--embedded` the local Ray's totals set them (workers.embedded.local_ray_ceilings),
and a walkthrough's reason sent the user to LAGTRAIN_CAPACITY_CEILING_*, which nobody
had set, where LAGTRAIN_EMBEDDED_RAY_CPUS sized the local Ray. No Ray: the embedded
server's wiring with its threads and Ray's seams stubbed."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from service.schemas.node_fit import NodeShape
from service.schemas.resolve import resolve
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Job
from service.store.users import create_user
from tests.workers.dispatcher_seams import GiB, cluster_at_seam, dispatcher_store
from workers import embedded
from workers.capacity import CapacityWindow
from workers.dispatcher import Dispatcher


class _UnstartedThread:
    """Stands in for threading.Thread: keeps the target, runs nothing."""

    def __init__(self, target: Callable[[], None], **_kwargs: Any) -> None:
        self.target = target

    def start(self) -> None:
        return None

    def join(self, timeout: float | None = None) -> None:
        return None


def test_an_embedded_servers_too_large_job_names_its_local_rays_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    machine = NodeShape(4, 0, 64 * GiB)
    cluster_at_seam(monkeypatch, [(machine, machine)])
    threads: list[_UnstartedThread] = []

    def thread(target: Callable[[], None], **kwargs: Any) -> _UnstartedThread:
        threads.append(_UnstartedThread(target, **kwargs))
        return threads[-1]

    monkeypatch.setattr(embedded, "threading", SimpleNamespace(Thread=thread))
    monkeypatch.setattr(embedded, "connect", lambda *_args, **_kwargs: None)
    monkeypatch.setattr(embedded, "total_resources", lambda: (4.0, 0.0))
    with transaction(sessions) as session:
        user, _, _ = create_user(session=session, name="ann", role="user")
        spec = {"task": {"kind": "adding"}, "distributed": {"workers": 4}}  # 5 CPUs
        job, _ = enqueue(session=session, owner_id=user.id, spec=resolve(spec))
    with ExitStack() as stack:
        embedded.start_embedded(settings, stack)
        owners = [getattr(t.target, "__self__", None) for t in threads]
        [dispatcher] = [owner for owner in owners if isinstance(owner, Dispatcher)]
        stack.callback(dispatcher._waker.close)
        dispatcher._maintain()  # judged at its first look: the ceilings are set
    with sessions() as session:
        failed = session.get(Job, job.id)
        assert failed is not None and failed.status == "failed" and failed.error, failed
    assert "needs 5 CPU" in failed.error and "has 4 CPU" in failed.error, failed.error
    assert "LAGTRAIN_EMBEDDED_RAY_CPUS" in failed.error, failed.error
    assert "the GPUs the local Ray of `server --embedded` found" in failed.error
    assert "LAGTRAIN_CAPACITY_CEILING" not in failed.error, failed.error


def test_each_ceiling_is_named_by_what_set_it(tmp_path: Path) -> None:
    settings, _sessions = dispatcher_store(tmp_path)
    window = CapacityWindow(600, ceiling_cpus=4.0, ceiling_gpus=0.0)
    window.ceiling_names.update(embedded.local_ray_ceiling_names(settings))
    assert window.describe() == (
        "CPUs: LAGTRAIN_EMBEDDED_RAY_CPUS, the CPUs of the local Ray `server --embedded` "
        "started; GPUs: the GPUs the local Ray of `server --embedded` found on this host"
    )
    # The operator's own ceiling stays the operator's, under --embedded too.
    operator = settings.model_copy(update={"capacity_ceiling_gpus": 2.0})
    assert list(embedded.local_ray_ceiling_names(operator)) == ["CPU"]
    window.ceiling_names.update(embedded.local_ray_ceiling_names(operator))
    window.ceiling_names["GPU"] = CapacityWindow(600).ceiling_names["GPU"]
    assert window.describe().endswith(
        "GPUs: the operator's ceiling, LAGTRAIN_CAPACITY_CEILING_GPUS"
    )
    # A worker's: the operator's settings where set, else the window.
    worker = CapacityWindow(600, ceiling_gpus=8.0)
    assert worker.describe() == (
        "CPUs: the most the Ray cluster showed in the last 600 s; GPUs: the operator's "
        "ceiling, LAGTRAIN_CAPACITY_CEILING_GPUS"
    )
    assert CapacityWindow(600).describe() == "the most the Ray cluster showed in the last 600 s"
