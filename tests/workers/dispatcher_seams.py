"""For dispatcher tests without Ray: a store, and the dispatcher's Ray seams
(workers.ray_runtime's cluster_totals and cluster_free) answering for a cluster of
given nodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import NodeShape
from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.dispatchers import upsert_dispatcher
from service.store.migrate import upgrade
from workers import dispatcher as dispatcher_module

GiB = 2**30


def cluster_at_seam(
    monkeypatch: pytest.MonkeyPatch, nodes: list[tuple[NodeShape, NodeShape]]
) -> None:
    """`nodes`: each node's (totals, free), as nodes n0, n1, …; the cluster's sums
    follow from them."""
    totals = {f"n{index}": total for index, (total, _) in enumerate(nodes)}
    frees = {f"n{index}": free for index, (_, free) in enumerate(nodes)}
    summed = {
        "cluster_totals": (
            (sum(t.cpus for t in totals.values()), sum(t.gpus for t in totals.values())),
            totals,
        ),
        "cluster_free": (
            (sum(f.cpus for f in frees.values()), sum(f.gpus for f in frees.values())),
            frees,
        ),
    }
    for seam, answer in summed.items():
        monkeypatch.setattr(dispatcher_module, seam, lambda answer=answer: answer)


def idle_node_at_seam(monkeypatch: pytest.MonkeyPatch, cpus: float, gpus: float = 0.0) -> None:
    """One idle node of `cpus` and `gpus` (and memory enough for any test job)."""
    node = NodeShape(cpus, gpus, 64 * GiB)
    cluster_at_seam(monkeypatch, [(node, node)])


def dispatcher_store(tmp_path: Path) -> tuple[Settings, sessionmaker[Session]]:
    """A migrated SQLite store under `tmp_path`, its settings, and dispatcher "d1"
    registered (the id the tests' dispatchers take)."""
    url = f"sqlite:///{tmp_path / 'lagtrain.db'}"
    upgrade(url)
    settings = Settings(
        database_url=url, artifacts_url=str(tmp_path / "artifacts"), state_dir=tmp_path / "s"
    )
    sessions = make_sessionmaker(make_engine(url))
    with transaction(sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="h", resources={})
    return settings, sessions
