"""Shared-lab safety (issue 8): the cost model's 422s, Ray bundle memory, quotas
(429 at submit and upload, waiting at the claim, explain) and the sweep budget."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from service.schemas.cost import CostEstimate
from service.schemas.gang import PROCESS_BASE_BYTES, GangMemory, gang_bundles
from service.schemas.resolve import resolve
from service.store.attempts import claim_next
from service.store.cluster_capacity import ClusterCapacity
from service.store.db import transaction
from service.store.dispatchers import mark_dispatcher_stopped, upsert_dispatcher
from service.store.models import Job
from tests.api.conftest import SMALL_SPEC, SMALL_SWEEP, Api, assert_json_error

# The audit's two attack specs: the largest model on the widest gang, and a
# cheap-CPU gang whose coordinator would hold workers x parameters.
HUGE_MODEL: dict[str, Any] = {
    "task": {"kind": "char_lm"},
    "model": {"hidden_size": 4096, "num_layers": 8, "embedding_dim": 4096},
    "distributed": {"workers": 256, "cpus_per_worker": 0.001},
}
WIDE_GANG: dict[str, Any] = {
    "task": {"kind": "sequence_classification"},
    "model": {"hidden_size": 2048, "num_layers": 2},
    "aggregation": {"strategy": "lag_wk"},
    "distributed": {"workers": 64, "cpus_per_worker": 0.01},
}


def _patch_quota(api: Api, user_id: int, **quota: Any) -> dict[str, Any]:
    r = api.client.patch(f"/v1/users/{user_id}", json={"quota": quota}, headers=api.admin)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_attack_specs_are_422_naming_the_field_and_both_figures(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    for spec, field in ((HUGE_MODEL, "model"), (WIDE_GANG, "distributed")):
        detail = assert_json_error(api.client.post("/v1/jobs", json=spec, headers=alice), 422)
        messages = " ".join(d["msg"] for d in detail)
        assert "estimated" in messages and "GiB" in messages and "limit 8.0 GiB" in messages
        assert any(d["loc"][1] == field for d in detail), detail
    coordinator = assert_json_error(api.client.post("/v1/jobs", json=WIDE_GANG, headers=alice), 422)
    assert coordinator[0]["loc"] == ["body", "distributed", "workers"], coordinator
    with api.sessions() as session:
        assert session.scalar(select(Job.id)) is None


def test_a_deep_model_is_refused_naming_the_model_not_the_dataset(api: Api) -> None:
    """Evaluation's activations (hidden size x layers over the capped validation set)
    dominate this coordinator's estimate: the 422 named task.dataset, which no change
    of dataset could fix."""
    _uid, alice = api.create_user("alice")
    deep = {
        "task": {"kind": "char_lm"},
        "model": {"cell": "lstm", "hidden_size": 1280, "num_layers": 8},
        "distributed": {"workers": 1},
    }
    [error] = assert_json_error(api.client.post("/v1/jobs", json=deep, headers=alice), 422)
    assert error["loc"] == ["body", "model", "hidden_size"], error
    assert "for the coordinator" in error["msg"] and "x 1 worker)" in error["msg"], error


def test_a_raised_limit_admits_the_spec_and_a_lowered_one_refuses_a_small_one(
    make_api: Any,
) -> None:
    roomy = make_api(max_coordinator_memory_bytes=1 << 40, max_replica_memory_bytes=1 << 40)
    _uid, alice = roomy.create_user("alice")
    assert roomy.client.post("/v1/jobs", json=WIDE_GANG, headers=alice).status_code == 201
    tight = make_api(max_replica_memory_bytes=1 << 20)
    wider = {**SMALL_SPEC, "model": {"cell": "rnn", "hidden_size": 512}}
    assert tight.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice).status_code == 201
    detail = assert_json_error(tight.client.post("/v1/jobs", json=wider, headers=alice), 422)
    assert detail[0]["loc"] == ["body", "model", "hidden_size"], detail
    assert "per replica" in detail[0]["msg"] and "limit 1.0 MiB" in detail[0]["msg"]


def test_a_million_distinct_characters_is_422_at_upload(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    # Every Unicode scalar value from U+0020 up, surrogates left out: ~1.1 M distinct.
    text = "".join(chr(c) for c in range(0x20, 0x110000) if not 0xD800 <= c < 0xE000)
    r = api.client.post(
        "/v1/datasets", files={"file": ("all.txt", text.encode("utf-8"))}, headers=alice
    )
    detail = assert_json_error(r, 422)
    assert detail[0]["loc"] == ["body", "file"] and "10,000 distinct" in detail[0]["msg"]


def test_csv_wider_than_the_limit_is_422_at_upload(make_api: Any) -> None:
    api = make_api(max_csv_columns=8)
    _uid, alice = api.create_user("alice")
    row = ",".join(["1"] * 9) + "\n"
    r = api.client.post("/v1/datasets", files={"file": ("w.csv", row.encode())}, headers=alice)
    assert "9 columns" in assert_json_error(r, 422)[0]["msg"]


def test_the_estimate_is_stored_and_reserved_as_bundle_memory(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    with api.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.replica_memory_bytes and job.coordinator_memory_bytes
        memory = GangMemory(job.replica_memory_bytes, job.coordinator_memory_bytes)
    claimed = api.claim()
    assert claimed.memory == memory
    bundles = gang_bundles(resolve(SMALL_SPEC), claimed.memory)
    # Each with the process's own base, which the estimate leaves out.
    assert bundles[0]["memory"] == memory.coordinator_bytes + PROCESS_BASE_BYTES
    assert all(b["memory"] == memory.replica_bytes + PROCESS_BASE_BYTES for b in bundles[1:])


def test_canonical_upload_reference_is_stored(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    ds = api.client.post(
        "/v1/datasets", files={"file": ("t.txt", b"abcdefgh" * 500)}, headers=alice
    ).json()
    spec = {
        "task": {"kind": "char_lm", "dataset": f"upload:000{ds['id']}", "seq_len": 8},
        "model": {"hidden_size": 8},
        "distributed": {"workers": 1},
        "schedule": {"rounds": 2},
    }
    r = api.client.post("/v1/jobs", json=spec, headers=alice)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["task"]["dataset"] == f"upload:{ds['id']}"


def test_queue_and_storage_quotas_are_429_naming_the_quota(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    me = api.client.get("/v1/users/me", headers=alice).json()
    assert me["quota"]["max_queued_jobs"] == api.settings.default_max_queued_jobs
    patched = _patch_quota(api, alice_id, max_queued_jobs=1, max_storage_bytes=100)
    assert patched["quota"]["max_queued_jobs"] == 1
    api.submit(alice)
    r = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice)
    assert "max_queued_jobs" in assert_json_error(r, 429)
    big = b"x" * 101
    r = api.client.post("/v1/datasets", files={"file": ("b.txt", big)}, headers=alice)
    assert "max_storage_bytes" in assert_json_error(r, 429)
    # Refused before it is read: no validation's CPU for a file that cannot be kept
    # (this one is no UTF-8, which reading it would have answered with a 422).
    not_text = b"\xff" * 101
    r = api.client.post("/v1/datasets", files={"file": ("n.txt", not_text)}, headers=alice)
    assert "max_storage_bytes: 0 bytes stored + 101 new" in assert_json_error(r, 429)
    ok = api.client.post("/v1/datasets", files={"file": ("s.txt", b"ab" * 40)}, headers=alice)
    assert ok.status_code == 201
    usage = api.client.get("/v1/users/me", headers=alice).json()["usage"]
    assert (usage["queued_jobs"], usage["storage_bytes"]) == (1, 80)
    # Back to the server default: null.
    assert _patch_quota(api, alice_id, max_queued_jobs=None)["quota"]["max_queued_jobs"] == 100
    assert api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice).status_code == 201


def test_a_storage_quota_of_0_stores_nothing_jobs_included(api: Api) -> None:
    """0 bytes: no upload, and no submit, whose checkpoints would be stored (a
    review: uploads were refused but jobs accepted, unlike max_queued_jobs: 0)."""
    bob_id, bob = api.create_user("bob")
    _patch_quota(api, bob_id, max_storage_bytes=0)
    r = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=bob)
    assert "max_storage_bytes: 0 bytes stored: the quota of 0 is full" in assert_json_error(r, 429)
    r = api.client.post("/v1/datasets", files={"file": ("t.txt", b"ab")}, headers=bob)
    assert "max_storage_bytes" in assert_json_error(r, 429)
    assert api.client.get("/v1/jobs", headers=bob).json()["data"] == []
    _patch_quota(api, bob_id, max_storage_bytes=1)
    assert api.client.post("/v1/jobs", json=SMALL_SPEC, headers=bob).status_code == 201


def test_a_sweep_budget_over_the_queue_quota_is_429(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _patch_quota(api, alice_id, max_queued_jobs=SMALL_SWEEP["trials"] - 1)
    r = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    assert "max_queued_jobs" in assert_json_error(r, 429)
    # The 422 checks come first.
    bad = {**SMALL_SWEEP, "trials": 0}
    assert api.client.post("/v1/sweeps", json=bad, headers=alice).status_code == 422


def test_running_and_cpu_quotas_make_jobs_wait_with_explain(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _patch_quota(api, alice_id, max_running_jobs=1)
    first, second = api.submit(alice), api.submit(alice)
    defaults = api.settings.quota_defaults()

    def claim() -> int | None:
        with transaction(api.sessions) as session:
            claimed = claim_next(
                session=session,
                dispatcher_id="d",
                lease_seconds=60,
                free_cpus=64,
                free_gpus=0,
                quota_defaults=defaults,
            )
        return None if claimed is None else claimed.job_id

    assert claim() == first
    assert claim() is None
    reasons = api.client.get(f"/v1/jobs/{second}/explain", headers=alice).json()["reasons"]
    quota = [r["message"] for r in reasons if r["kind"] == "quota"]
    assert quota == ["max_running_jobs: alice runs 1 job, the quota is 1"], reasons

    _patch_quota(api, alice_id, max_running_jobs=10, max_cpus=3)  # each gang holds 2 CPUs
    reasons = api.client.get(f"/v1/jobs/{second}/explain", headers=alice).json()["reasons"]
    assert [r["message"] for r in reasons if r["kind"] == "quota"] == [
        "max_cpus: alice's running jobs hold 2 CPUs, this job needs 2, the quota is 3"
    ], reasons
    assert claim() is None
    _patch_quota(api, alice_id, max_cpus=4)
    assert claim() == second
    usage = api.client.get("/v1/users/me", headers=alice).json()["usage"]
    assert (usage["running_jobs"], usage["cpus"]) == (2, 4.0)


def test_a_gang_larger_than_the_cpu_quota_is_429_at_submit(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _patch_quota(api, alice_id, max_cpus=1.5)
    r = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice)
    # It could never start: the answer says so, and what sizes the gang.
    assert assert_json_error(r, 429) == (
        "max_cpus: the gang needs 2 CPUs (the coordinator's and distributed.workers x "
        "cpus_per_worker), the quota is 1.5; it could never start: fewer workers or CPUs per "
        "worker, or ask an admin to raise the quota"
    )


def test_a_gang_exactly_at_the_cpu_quota_is_accepted(api: Api) -> None:
    """1 + 0.1 + 0.1 CPUs is 1.2000000000000002 in floats: the claim's fit test allows
    for that, and the submit's check, which refused it (429 "needs 1.2 CPUs, the
    quota is 1.2"), now uses the same rule."""
    alice_id, alice = api.create_user("alice")
    _patch_quota(api, alice_id, max_cpus=1.2)
    spec = {**SMALL_SPEC, "distributed": {"workers": 2, "cpus_per_worker": 0.1}}
    r = api.client.post("/v1/jobs", json=spec, headers=alice)
    assert r.status_code == 201, r.text
    reasons = api.client.get(f"/v1/jobs/{r.json()['id']}/explain", headers=alice).json()
    assert [x for x in reasons["reasons"] if x["kind"] == "quota"] == [], reasons


def test_a_retried_submit_is_answered_even_when_the_queue_quota_is_full(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    _patch_quota(api, alice_id, max_queued_jobs=1)
    key = {"Idempotency-Key": "once"}
    first = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice | key)
    again = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice | key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    other = api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice | {"Idempotency-Key": "2"})
    assert_json_error(other, 429)


def test_explain_says_when_a_lowered_quota_means_a_job_can_never_start(api: Api) -> None:
    """A walkthrough lowered alice's max_cpus under her queued 7-CPU gangs: explain
    gave the job position 1 and a reason that read like a wait, and counted it ahead
    of jobs that could start. Such a job waits until an admin raises the quota (a new
    submit of it would be a 429): explain says so, gives it no place, and the jobs
    behind it move up."""
    alice_id, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    stuck = api.submit(alice)  # a gang of 2 CPUs
    behind = api.submit(bob)
    for change, says in (
        ({"max_cpus": 1}, "max_cpus: this job needs 2 CPUs, the quota is 1; it cannot start"),
        ({"max_cpus": 8, "max_running_jobs": 0}, "max_running_jobs: alice's quota is 0; it"),
    ):
        _patch_quota(api, alice_id, **change)
        explain = api.client.get(f"/v1/jobs/{stuck}/explain", headers=alice).json()
        assert explain["queue_position"] is None, explain
        messages = [r["message"] for r in explain["reasons"]]
        assert len(messages) == 1 and messages[0].startswith(says), explain
        assert messages[0].endswith("ask an admin to raise it, or cancel the job"), messages
        mine = api.client.get(f"/v1/jobs/{behind}/explain", headers=bob).json()
        assert mine["queue_position"] == 1, mine
        # The Lab's queue lists it after the ranked jobs, without a place, with
        # explain's reasons (it was left out: "No job is queued" above "queued 1").
        head = api.client.get("/v1/cluster", headers=api.admin).json()["queue_head"]
        assert [(p["job_id"], p["position"]) for p in head] == [(behind, 1), (stuck, None)]
        assert head[1]["reasons"] == explain["reasons"]
        [own] = api.client.get("/v1/cluster", headers=alice).json()["queue_head"]
        assert (own["job_id"], own["position"]) == (stuck, None)
    # Raised again: back in the queue, first by submit time.
    _patch_quota(api, alice_id, max_running_jobs=4)
    explain = api.client.get(f"/v1/jobs/{stuck}/explain", headers=alice).json()
    assert explain["queue_position"] == 1, explain


def test_a_gang_no_live_dispatcher_could_hold_is_refused_at_submit(api: Api) -> None:
    """A UI walkthrough's 17-CPU job on a 4-CPU cluster was accepted, then failed on
    the dispatcher 3 s later ("too large for the cluster"): bad input is a 422 at
    submit. Judged by the live dispatchers' capacity (the largest total each saw, as
    each judges queued jobs); with none alive the cluster is unknown and the job waits."""
    # The seam: each submit reads the dispatchers afresh (a server reads them at most
    # every 5 s: tests/api/test_submit_statements.py).
    api.client.app.state.cluster_capacity = ClusterCapacity(refresh_seconds=0)  # type: ignore[attr-defined]
    _uid, alice = api.create_user("alice")
    big = {**SMALL_SPEC, "distributed": {"workers": 4, "cpus_per_worker": 1.0}}  # 5 CPUs
    assert api.client.post("/v1/jobs", json=big, headers=alice).status_code == 201  # none yet
    report = {"total": {"CPU": 2.0, "GPU": 0.0}, "capacity": {"CPU": 4.0, "GPU": 0.0}}
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="n", resources=report)
    r = api.client.post("/v1/jobs", json=big, headers=alice)
    [error] = assert_json_error(r, 422)
    assert error["loc"] == ["body", "distributed", "workers"], error
    # The figures asked and the cluster's (the wording: tests/api/test_gang_refused_fields.py).
    assert "need 5 CPU" in error["msg"] and "cluster has 4 CPU" in error["msg"], error
    assert "can never start" in error["msg"], error
    fits = {**SMALL_SPEC, "distributed": {"workers": 3, "cpus_per_worker": 1.0}}  # 4 CPUs
    assert api.client.post("/v1/jobs", json=fits, headers=alice).status_code == 201
    with transaction(api.sessions) as session:  # stopped: the cluster is unknown again
        mark_dispatcher_stopped(session=session, dispatcher_id="d1")
    assert api.client.post("/v1/jobs", json=big, headers=alice).status_code == 201
    with transaction(api.sessions) as session:  # a report naming no CPU says nothing
        upsert_dispatcher(session=session, dispatcher_id="d2", hostname="n", resources={})
    assert api.client.post("/v1/jobs", json=big, headers=alice).status_code == 201
    # An old flat report (its running_jobs no resource); GPUs short: that field named.
    flat = {"CPU": 8.0, "running_jobs": 3}
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d3", hostname="n", resources=flat)
    gpus = {
        **SMALL_SPEC,
        "distributed": {"workers": 2, "cpus_per_worker": 1.0, "gpus_per_worker": 1},
    }
    [error] = assert_json_error(api.client.post("/v1/jobs", json=gpus, headers=alice), 422)
    assert error["loc"] == ["body", "distributed", "gpus_per_worker"], error
    msg = error["msg"]
    assert "need 2 CPU, 1 GPU; the largest live dispatcher's cluster has 8 CPU, 0 GPU" in msg


def test_a_replica_no_live_dispatchers_node_could_hold_is_refused_at_submit(api: Api) -> None:
    """Ray places each bundle on one node: on nodes of 1 GPU and 8 CPUs, replicas of 2
    GPUs, or of 12 CPUs, can never be placed though the cluster's sums hold them."""
    api.client.app.state.cluster_capacity = ClusterCapacity(refresh_seconds=0)  # type: ignore[attr-defined]
    _uid, alice = api.create_user("alice")
    node = {"CPU": 8.0, "GPU": 1.0, "memory": 32.0 * 2**30}
    report = {"capacity": {"CPU": 32.0, "GPU": 4.0}, "nodes": [node]}
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="n", resources=report)
    two_gpus = {**SMALL_SPEC, "distributed": {"workers": 2, "gpus_per_worker": 2}}
    [error] = assert_json_error(api.client.post("/v1/jobs", json=two_gpus, headers=alice), 422)
    assert error["loc"] == ["body", "distributed", "gpus_per_worker"], error
    assert "a replica's bundle needs 1 CPU, 2 GPU on one node" in error["msg"], error
    assert "8 CPU, 1 GPU" in error["msg"] and "can never start" in error["msg"], error
    wide = {**SMALL_SPEC, "distributed": {"workers": 2, "cpus_per_worker": 12.0}}
    [error] = assert_json_error(api.client.post("/v1/jobs", json=wide, headers=alice), 422)
    assert error["loc"] == ["body", "distributed", "cpus_per_worker"], error
    one_gpu = {**SMALL_SPEC, "distributed": {"workers": 4, "gpus_per_worker": 1}}
    assert api.client.post("/v1/jobs", json=one_gpu, headers=alice).status_code == 201
    # Another live dispatcher that names no nodes (given a ceiling): it might hold it.
    ceiling = {"capacity": {"CPU": 64.0, "GPU": 8.0}, "nodes": []}
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d2", hostname="n", resources=ceiling)
    assert api.client.post("/v1/jobs", json=two_gpus, headers=alice).status_code == 201


def test_a_gang_no_set_of_a_live_dispatchers_nodes_holds_at_once_is_refused_at_submit(
    api: Api,
) -> None:
    """Two nodes of 5 CPUs: 10 CPUs, the gang's 10 with its coordinator, and each
    replica of 3 fits either node, yet one fits on each. A dispatcher failed it after
    a claim; the submit refuses it now, from the reports' node sets (each moment of
    the dispatcher's capacity window, workers.capacity)."""
    api.client.app.state.cluster_capacity = ClusterCapacity(refresh_seconds=0)  # type: ignore[attr-defined]
    _uid, alice = api.create_user("alice")
    fives = [{"CPU": 5.0, "GPU": 0.0, "count": 2}]
    five = {"CPU": 5.0, "GPU": 0.0, "memory": 8.0 * 2**30}
    report = {"capacity": {"CPU": 10.0, "GPU": 0.0}, "nodes": [five], "node_sets": [fives]}
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="n", resources=report)
    three = {**SMALL_SPEC, "distributed": {"workers": 3, "cpus_per_worker": 3.0}}
    [error] = assert_json_error(api.client.post("/v1/jobs", json=three, headers=alice), 422)
    assert error["loc"] == ["body", "distributed", "workers"], error
    assert "the gang's 3 replicas of 3 CPU each and its coordinator's 1 CPU" in error["msg"]
    assert "2 of the replicas fit beside the coordinator at most" in error["msg"], error
    assert "can never start" in error["msg"], error
    two = {**SMALL_SPEC, "distributed": {"workers": 2, "cpus_per_worker": 3.0}}
    assert api.client.post("/v1/jobs", json=two, headers=alice).status_code == 201
    # A moment of the window with a third node held it: the dispatcher would not fail it.
    grown = {**report, "node_sets": [fives, [{"CPU": 5.0, "GPU": 0.0, "count": 3}]]}
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="n", resources=grown)
    assert api.client.post("/v1/jobs", json=three, headers=alice).status_code == 201
    # Another live dispatcher whose report lists no node sets (too many shapes, or one
    # of the previous release): unknown there, so accepted.
    with transaction(api.sessions) as session:
        upsert_dispatcher(session=session, dispatcher_id="d1", hostname="n", resources=report)
        upsert_dispatcher(
            session=session,
            dispatcher_id="d2",
            hostname="n",
            resources={**report, "node_sets": None},
        )
    assert api.client.post("/v1/jobs", json=three, headers=alice).status_code == 201


def test_the_live_dispatchers_are_read_once_per_refresh() -> None:
    """A submit's statements are pinned: the dispatchers' reports are read again only
    once `refresh_seconds` have passed; liveness is judged on every call."""
    from datetime import timedelta

    from service.store.models import Dispatcher, utcnow

    big = {"CPU": 5.0, "GPU": 0.0}
    now = utcnow()
    reads: list[int] = []

    class Session:  # the seam: list_dispatchers' one call, counted
        def scalars(self, _query: Any) -> list[Dispatcher]:
            reads.append(1)
            return [Dispatcher(id="d", last_seen_at=now, stopped_at=None, resources={"CPU": 4})]

    cached = ClusterCapacity(refresh_seconds=3600)
    ask = {
        "session": Session(),
        "gang": big,
        "replica": {"CPU": 1.0},
        "workers": 4,
        "cost": CostEstimate(1, 0, 0, "model.hidden_size", "model.hidden_size"),
        "lease_seconds": 30.0,
    }
    assert [f for f, _ in cached.problems(now=now, **ask)] == ["distributed.workers"]  # type: ignore[arg-type]
    later = now + timedelta(seconds=31)  # the one report read is past its lease by then
    assert cached.problems(now=later, **ask) == []  # type: ignore[arg-type]
    assert len(reads) == 1
    fresh = ClusterCapacity(refresh_seconds=0)
    fresh.problems(now=now, **ask)  # type: ignore[arg-type]
    fresh.problems(now=now, **ask)  # type: ignore[arg-type]
    assert len(reads) == 3


def test_a_job_queued_while_the_queue_head_is_read_is_not_called_skipped(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review: on PostgreSQL each read of the queue head sees its own snapshot, so a
    job queued after the ranking was read was listed as skipped, position null, "job
    is no longer queued; it is not waiting". Only jobs the claim skips are listed so."""
    import service.store.explain as explain

    _uid, alice = api.create_user("alice")
    first = api.submit(alice)
    from service.store.queue_order import ranked_queue

    late: list[int] = []

    def ranking_then_a_submit(**kwargs: Any) -> Any:
        ranking = ranked_queue(**kwargs)
        if not late:  # the seam: a submit lands between the two reads
            late.append(api.submit(alice))
        return ranking

    monkeypatch.setattr(explain, "ranked_queue", ranking_then_a_submit)
    head = api.client.get("/v1/cluster", headers=api.admin).json()["queue_head"]
    assert late and [(p["job_id"], p["position"]) for p in head] == [(first, 1)], head
