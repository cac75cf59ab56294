"""workers.passed_over: what a dispatcher keeps of the jobs its claims passed over."""

from __future__ import annotations

from service.schemas.node_fit import NodeShape, PassedOver
from workers.passed_over import PassedOverJobs

GiB = 2**30
BUSY = (NodeShape(5, 0, GiB), NodeShape(5, 0, GiB))
FREER = (NodeShape(8, 0, GiB), NodeShape(5, 0, GiB))


def passed(job_id: int) -> PassedOver:
    return PassedOver(job_id, {"coordinator": {"CPU": 1.0}, "replica": {"CPU": 3.0}}, 3)


def test_jobs_passed_over_are_left_out_only_while_the_free_nodes_stay_as_they_were() -> None:
    jobs = PassedOverJobs()
    assert jobs.known_for(BUSY) == ()
    jobs.add(passed(7))
    jobs.add(passed(9))
    assert jobs.known_for(BUSY) == (7, 9)
    assert jobs.known_for(FREER[::-1]) == ()
    jobs.add(passed(9))
    assert jobs.known_for(FREER) == (9,), "the same nodes listed in another order"
    assert jobs.known_for(BUSY) == (), "other free nodes: each is tested again"
    assert jobs.known_for(None) == ()


def test_each_job_passed_over_is_judged_once() -> None:
    jobs = PassedOverJobs()
    jobs.known_for(BUSY)
    jobs.add(passed(7))
    jobs.add(passed(7))
    assert [job.job_id for job in jobs.to_judge()] == [7]
    assert [job.job_id for job in jobs.to_judge()] == [7], "not judged yet: a failed turn"
    jobs.add(passed(9))
    assert [job.job_id for job in jobs.to_judge()] == [7, 9]
    jobs.judged()  # committed
    assert jobs.to_judge() == []
