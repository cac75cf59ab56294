"""A gang the claims passed over is judged at a maintenance that commits: one that
fails before its commit (a store blip) leaves it to the next. Before (a review),
taking the jobs to judge forgot them, the claims left the job out untested on the
same free nodes, and a gang no node set of the cluster could ever hold waited
forever on an idle cluster. No Ray: the nodes at the dispatcher's seams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc

from service.schemas.node_fit import NodeShape
from service.store.dispatchers import upsert_dispatcher
from tests.workers.dispatcher_seams import GiB, cluster_at_seam, dispatcher_store
from tests.workers.test_node_fit_dispatcher import (
    THREE_REPLICAS_OF_3_CPUS,
    _dispatcher,
    _job,
    _submit,
)
from workers import dispatcher as dispatcher_module


def test_a_maintenance_that_fails_before_its_commit_leaves_the_judgement_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, sessions = dispatcher_store(tmp_path)
    node = NodeShape(5, 0, 32 * GiB)  # idle: one replica beside the coordinator each
    cluster_at_seam(monkeypatch, [(node, node)] * 2)
    wide = _submit(sessions, THREE_REPLICAS_OF_3_CPUS)
    blips = [True]  # the next maintenance's last statement fails once

    def upsert(**kwargs: Any) -> Any:
        if blips and blips.pop():
            raise sqlalchemy.exc.OperationalError(
                "UPDATE", {}, Exception("server closed the connection unexpectedly")
            )
        return upsert_dispatcher(**kwargs)

    with _dispatcher(settings, sessions) as (dispatcher, clock):
        dispatcher._maintain()
        clock.now = settings.capacity_window_seconds
        dispatcher._maintain()  # the window is watched
        assert dispatcher._claim_and_start() is False, "passed over"
        monkeypatch.setattr(dispatcher_module, "upsert_dispatcher", upsert)
        with pytest.raises(sqlalchemy.exc.OperationalError):
            dispatcher._maintain()  # rolled back: the job's failure is not written
        assert _job(sessions, wide).status == "queued"
        assert dispatcher._claim_and_start() is False, "left out untested on these nodes"
        dispatcher._maintain()
        job = _job(sessions, wide)
        assert job.status == "failed", (job.status, job.error)
        assert job.error is not None
        assert "fit no set of the cluster's nodes at once" in job.error, job.error
