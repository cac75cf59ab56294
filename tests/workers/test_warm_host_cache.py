"""A warm actor's task cache (workers.warm_host): the data a job built is reused by
a later job only when everything it was built from is equal — the spec's task
sections and each upload's id and file content. WarmHost is a plain class, so this
runs it in-process on real files (Ray wraps it only at the edge)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from tests.fresh_python import last_line_printed
from workers.aggregation.registry import get_rule
from workers.training.tasks.base import Task
from workers.warm_host import TASK_CACHE_SIZE, WarmHost

TEXT = "to be, or not to be: that is the question. " * 40


def char_lm(dataset: str, **schedule: int) -> ResolvedSpec:
    return resolve(
        {
            "task": {"kind": "char_lm", "dataset": dataset, "seq_len": 8, "max_chars": 1600},
            "model": {"cell": "gru", "hidden_size": 8},
            "distributed": {"workers": 2},
            "schedule": {"rounds": 2, "batch_size": 4, **schedule},
        }
    )


@pytest.fixture(scope="module")
def host() -> Iterator[WarmHost]:
    # WarmHost.reset runs a full collection (in an actor, to free the last job's
    # tensors). In this long-lived pytest process one walks every earlier test's
    # leftovers — about 2 s each late in the suite, 20 s for this module against 0.8 s
    # alone. Frozen, they are out of its sight until the module ends.
    gc.freeze()
    try:
        yield WarmHost()
    finally:
        gc.unfreeze()


def become(host: WarmHost, spec: ResolvedSpec, datasets: dict[str, str]) -> Task:
    phases = host.become_replica(
        spec, 0, dtype=None, device="cpu", datasets=datasets, rule=get_rule("dense"), threads=1
    )
    assert phases["task_s"] >= 0 and phases["role_s"] >= 0
    role = host.role
    host.reset()
    assert role is not None and hasattr(role, "replica")
    task: Task = role.replica.task
    return task


def upload(directory: Path, text: str) -> str:
    """A dataset file as the service stores one (its name doesn't matter here: the
    cache must not rely on it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "data.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_same_content_is_reused_and_anything_else_is_rebuilt(
    host: WarmHost, tmp_path: Path
) -> None:
    first = upload(tmp_path / "alice", TEXT)
    spec = char_lm("upload:1")
    built = host.tasks_built
    task = become(host, spec, {"1": first})
    assert host.tasks_built == built + 1
    assert become(host, spec, {"1": first}) is task  # same spec, same file: reused
    assert host.tasks_built == built + 1

    # Another user's upload of the very same bytes, same file name, even the same
    # location: a different dataset id is never served the cache.
    other_user = become(host, char_lm("upload:2"), {"2": first})
    assert other_user is not task
    assert host.tasks_built == built + 2

    # Another spec over the same data (a different seed shards it differently).
    assert become(host, char_lm("upload:1", seed=7), {"1": first}) is not task
    assert host.tasks_built == built + 3


def test_a_file_whose_content_changed_is_rebuilt(host: WarmHost, tmp_path: Path) -> None:
    path = upload(tmp_path / "u", TEXT)
    spec = char_lm("upload:5")
    task = become(host, spec, {"5": path})
    built = host.tasks_built
    # Same id, same location, same size, new bytes (and a later modification time,
    # as any rewrite has): the sha256 in the key differs.
    before = os.stat(path).st_mtime_ns
    Path(path).write_text(TEXT.replace("question", "QUESTION"), encoding="utf-8")
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))
    rebuilt = become(host, spec, {"5": path})
    assert rebuilt is not task
    assert host.tasks_built == built + 1
    assert "Q" in rebuilt.vocabulary  # type: ignore[attr-defined]


def test_the_cache_is_bounded(host: WarmHost, tmp_path: Path) -> None:
    path = upload(tmp_path / "b", TEXT)
    specs = [char_lm("upload:9", seed=seed) for seed in range(TASK_CACHE_SIZE + 1)]
    first = become(host, specs[0], {"9": path})
    for spec in specs[1:]:
        become(host, spec, {"9": path})
    assert len(host._tasks) == TASK_CACHE_SIZE
    built = host.tasks_built
    assert become(host, specs[0], {"9": path}) is not first  # the oldest was dropped
    assert host.tasks_built == built + 1


def test_a_warm_actor_set_up_imports_nothing_more() -> None:
    """The first job on a warm actor imports nothing of torch (nor the scientific
    stack) any more: the warm-up at start did it. In a fresh
    interpreter, as a pooled actor's process is."""
    script = (
        "import sys\n"
        "from service.schemas.resolve import resolve\n"
        "from workers.aggregation.registry import get_rule\n"
        "from workers.warm_host import WarmHost\n"
        "host = WarmHost()\n"
        "before = set(sys.modules)\n"
        "spec = resolve({'task': {'kind': 'char_lm', 'max_chars': 20000},"
        " 'model': {'cell': 'lstm', 'hidden_size': 8}, 'distributed': {'workers': 2}})\n"
        "host.become_replica(spec, 0, dtype=None, device='cpu', datasets={},"
        " rule=get_rule('dense'), threads=1)\n"
        "host.become_driver(spec, dtype=None, datasets={}, rule=get_rule('dense'),"
        " job_key='t', replicas=[None, None], artifacts_url='/tmp', threads=1)\n"
        "new = set(sys.modules) - before\n"
        "print(sorted(m for m in new if m.split('.')[0] in {'torch', 'sklearn', 'scipy'}))\n"
    )
    assert last_line_printed(script) == "[]"
