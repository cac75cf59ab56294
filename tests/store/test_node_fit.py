"""Per-node fit in the store (service.schemas.node_fit): Ray places each bundle of a
gang on one node, so the claim skips a job whose bundles fit the free resources only
when summed, and the dispatcher's too-large rule names a bundle no node holds."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.gang import PROCESS_BASE_BYTES, reserved_bytes
from service.schemas.node_fit import NodeShape, PassedOver, misfit
from service.store.attempts import ClaimedJob, claim_next
from service.store.claim import PASSED_OVER_MOST
from service.store.db import transaction
from service.store.models import Job, JobEvent
from service.store.node_fit_sql import bundles_of
from service.store.unschedulable import unschedulable_jobs
from tests.store.conftest import MakeUser, Submit, load_job

GiB = 2**30
ONE_GPU_NODE = NodeShape(8, 1, 32 * GiB)


def claim(
    factory: sessionmaker[Session],
    *,
    cpus: float,
    gpus: float,
    free_nodes: tuple[NodeShape, ...],
    passed: list[PassedOver] | None = None,
    known_unfit: tuple[int, ...] = (),
) -> ClaimedJob | None:
    with transaction(factory) as session:
        return claim_next(
            session=session,
            dispatcher_id="d1",
            lease_seconds=30,
            free_cpus=cpus,
            free_gpus=gpus,
            free_nodes=free_nodes,
            passed_over=None if passed is None else passed.append,
            known_unfit=known_unfit,
        )


def statuses(factory: sessionmaker[Session], job_id: int) -> list[str]:
    with factory() as session:
        query = select(JobEvent.to_status).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        return list(session.scalars(query))


def judged(factory: sessionmaker[Session], nodes: tuple[NodeShape, ...]) -> dict[int, str]:
    with transaction(factory) as session:
        return unschedulable_jobs(session=session, total_cpus=64, total_gpus=8, nodes=nodes)


def test_a_job_stores_its_replica_bundle(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"), distributed={"workers": 3, "cpus_per_worker": 0.5})
    job = load_job(session_factory, job_id)
    assert (job.replica_cpus, job.replica_gpus) == (0.5, 0.0)
    assert (job.cpus_required, job.gpus_required) == (2.5, 0.0)


def test_the_claim_skips_a_gang_free_only_when_summed_over_nodes(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """One GPU free on each of four nodes: a gang of two 2-GPU replicas fits the sum
    (4 GPUs) but no node; the next job, 1 GPU per replica, is claimed instead."""
    owner = make_user("ann")
    wide = submit(owner, distributed={"workers": 2, "gpus_per_worker": 2})
    narrow = submit(owner, distributed={"workers": 4, "gpus_per_worker": 1})
    spread = claim(session_factory, cpus=32, gpus=4, free_nodes=(ONE_GPU_NODE,) * 4)
    assert spread is not None and spread.job_id == narrow
    assert load_job(session_factory, wide).status == "queued"
    two_gpus_on_a_node = NodeShape(8, 2, 32 * GiB)
    taken = claim(session_factory, cpus=32, gpus=4, free_nodes=(two_gpus_on_a_node,) * 2)
    assert taken is not None and taken.job_id == wide


def test_the_claim_skips_a_gang_whose_memory_no_node_has_free(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"), distributed={"workers": 2})
    replica_bytes = load_job(session_factory, job_id).replica_memory_bytes
    assert replica_bytes is not None and replica_bytes > 0
    # A bundle reserves the estimate and the process's base (gang.reserved_bytes).
    short = NodeShape(8, 0, reserved_bytes(replica_bytes) - 1)
    assert claim(session_factory, cpus=8, gpus=0, free_nodes=(short, short)) is None
    roomy = NodeShape(8, 0, reserved_bytes(replica_bytes) + GiB)
    taken = claim(session_factory, cpus=8, gpus=0, free_nodes=(roomy, roomy))
    assert taken is not None and taken.job_id == job_id


def test_a_gang_of_many_tiny_processes_reserves_each_ones_base(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """64 replicas of 0.01 CPU pass any CPU quota (1.64 CPUs with the coordinator) and
    their estimates are a few MiB, but each is a process holding the interpreter and
    torch: 65 x 256 MiB does not fit a node of 8 GiB. Not claimed there (the
    dispatcher's window then fails it: tests/workers/test_process_base_memory.py)."""
    tiny = {"workers": 64, "cpus_per_worker": 0.01}
    job_id = submit(make_user("ann"), task={"kind": "adding", "num_samples": 640}, distributed=tiny)
    job = load_job(session_factory, job_id)
    assert job.replica_memory_bytes is not None
    assert 65 * job.replica_memory_bytes < 8 * GiB, "the estimates alone would fit"
    node = NodeShape(8, 0, 8 * GiB)
    assert claim(session_factory, cpus=8, gpus=0, free_nodes=(node,)) is None
    roomy = NodeShape(8, 0, 65 * PROCESS_BASE_BYTES + 65 * job.replica_memory_bytes + GiB)
    taken = claim(session_factory, cpus=8, gpus=0, free_nodes=(roomy,))
    assert taken is not None and taken.job_id == job_id


def test_no_claim_without_a_cpu_free_on_one_node_for_the_coordinator(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    job_id = submit(make_user("ann"), distributed={"workers": 2, "cpus_per_worker": 0.25})
    half_a_cpu = NodeShape(0.5, 0, 32 * GiB)  # 4 such nodes: 2 CPUs free in all
    assert claim(session_factory, cpus=2, gpus=0, free_nodes=(half_a_cpu,) * 4) is None
    one_cpu = NodeShape(1, 0, 32 * GiB)
    taken = claim(session_factory, cpus=2, gpus=0, free_nodes=(one_cpu, half_a_cpu))
    assert taken is not None and taken.job_id == job_id


def test_the_claim_passes_over_a_gang_whose_replicas_fit_no_free_nodes_together(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """Two nodes with 5 CPUs free: 10 in all, and a replica of 3 fits either, so the
    sums and each bundle against the most free on one node pass a gang of three such
    replicas (10 CPUs with the coordinator) — but one fits on each node. It is passed
    over, nothing of it written; the job behind it is claimed."""
    owner = make_user("ann")
    wide = submit(owner, distributed={"workers": 3, "cpus_per_worker": 3})
    small = submit(owner, distributed={"workers": 2, "cpus_per_worker": 1})
    five = NodeShape(5, 0, 32 * GiB)
    passed: list[PassedOver] = []
    taken = claim(session_factory, cpus=10, gpus=0, free_nodes=(five, five), passed=passed)
    assert taken is not None and taken.job_id == small
    assert [(p.job_id, p.workers) for p in passed] == [(wide, 3)]
    assert passed[0].bundles["replica"]["CPU"] == 3
    after = load_job(session_factory, wide)
    assert (after.status, after.attempt, after.lease_token) == ("queued", 0, None)
    assert statuses(session_factory, wide) == ["queued"], "no event of the rolled-back claim"
    taken = claim(session_factory, cpus=10, gpus=0, free_nodes=(NodeShape(10, 0, 32 * GiB),))
    assert taken is not None and taken.job_id == wide


def test_jobs_known_not_to_fit_these_nodes_are_left_out_untested(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """A dispatcher passes the jobs it passed over on the same free nodes: the claim
    leaves them out without claiming them again (here one that would fit, to see it)."""
    owner = make_user("ann")
    first = submit(owner, distributed={"workers": 1})
    second = submit(owner, distributed={"workers": 1})
    roomy = (NodeShape(8, 0, 32 * GiB),)
    passed: list[PassedOver] = []
    taken = claim(
        session_factory, cpus=8, gpus=0, free_nodes=roomy, passed=passed, known_unfit=(first,)
    )
    assert taken is not None and taken.job_id == second and passed == []
    assert load_job(session_factory, first).status == "queued"


def test_the_claim_passes_over_a_bounded_number_of_gangs(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """Each gang passed over costs a claim statement: after PASSED_OVER_MOST of them
    the claim takes nothing this time, even if a job further back would fit."""
    owner = make_user("ann")
    wide = [
        submit(owner, distributed={"workers": 3, "cpus_per_worker": 3})
        for _ in range(PASSED_OVER_MOST)
    ]
    small = submit(owner, distributed={"workers": 1})
    five = NodeShape(5, 0, 32 * GiB)
    passed: list[PassedOver] = []
    assert claim(session_factory, cpus=10, gpus=0, free_nodes=(five, five), passed=passed) is None
    assert [p.job_id for p in passed] == wide
    assert load_job(session_factory, small).status == "queued"


def test_a_bundle_no_node_holds_is_unschedulable_and_says_which(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    owner = make_user("ann")
    wide = submit(owner, distributed={"workers": 2, "gpus_per_worker": 2})
    fits = submit(owner, distributed={"workers": 4, "gpus_per_worker": 1})
    fat = submit(owner, distributed={"workers": 2, "cpus_per_worker": 12})
    reasons = judged(session_factory, (ONE_GPU_NODE, NodeShape(16, 0, 64 * GiB)))
    assert set(reasons) == {wide}, reasons
    assert "2 GPU" in reasons[wide] and "on one node" in reasons[wide], reasons[wide]
    assert "8 CPU, 1 GPU, 32 GiB memory" in reasons[wide], reasons[wide]
    # Only nodes of one GPU and 8 CPUs: the 12-CPU replicas fit none either.
    reasons = judged(session_factory, (ONE_GPU_NODE,))
    assert set(reasons) == {wide, fat}, reasons
    assert "12 CPU" in reasons[fat]
    assert fits not in judged(session_factory, (ONE_GPU_NODE,))
    assert judged(session_factory, ()) == {}, "no nodes known: nothing judged by them"


def test_a_job_stored_without_its_replica_bundle_is_judged_by_what_is_known(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """A row an older API process wrote during a rolling upgrade: no replica CPUs or
    GPUs, so only its memory and totals can fail it."""
    job_id = submit(make_user("ann"), distributed={"workers": 2, "gpus_per_worker": 2})
    with transaction(session_factory) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(replica_cpus=None, replica_gpus=None)
        )
    assert judged(session_factory, (ONE_GPU_NODE,)) == {}
    taken = claim(session_factory, cpus=32, gpus=4, free_nodes=(ONE_GPU_NODE,) * 4)
    assert taken is not None and taken.job_id == job_id


def test_the_sql_rule_reads_exactly_the_jobs_misfit_fails(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """The too-large rule selects in SQL (service.store.node_fit_sql) and words the reason
    in Python (node_fit.misfit): on mixed node shapes, a head node of no CPU among
    them, both pick the same jobs."""
    owner = make_user("ann")
    shapes = [(0.5, 0), (0.25, 1), (4, 0), (1, 1), (6, 0), (2, 2), (1, 3)]
    ids = {
        submit(owner, distributed={"workers": 1, "cpus_per_worker": c, "gpus_per_worker": g}): (
            c,
            g,
        )
        for c, g in shapes
    }
    for nodes, all_fail in [
        ((NodeShape(0, 0, 64 * GiB), NodeShape(4, 0, 64 * GiB), NodeShape(2, 1, 64 * GiB)), False),
        ((NodeShape(8, 0, 64 * GiB), NodeShape(1, 2, 64 * GiB)), False),
        ((NodeShape(0.5, 1, 64 * GiB),), True),  # no node holds a coordinator's CPU
    ]:
        failed = set(judged(session_factory, nodes))
        with session_factory() as session:
            jobs = [session.get(Job, job_id) for job_id in ids]
        expected = {
            job.id for job in jobs if job is not None and misfit(bundles_of(job), nodes) is not None
        }
        assert failed == expected, (nodes, failed, expected)
        assert failed and (failed == set(ids)) == all_fail, (nodes, failed)
