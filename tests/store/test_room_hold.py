"""Holding room for a gang that has waited (service.store.claim_candidate), on both
databases: smaller jobs start past a waiting gang until it has waited
LAGTRAIN_HOLD_ROOM_AFTER_SECONDS, then nothing behind it starts until it has."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.node_fit import ClusterRoom, NodeShape
from service.schemas.quota import QuotaDefaults
from service.store.attempts import ClaimedJob, claim_next, fail
from service.store.db import db_now, transaction
from service.store.held_packing import holds_that_cannot_pack
from service.store.models import Job, User
from tests.store.conftest import MakeUser, Submit, load_job

GiB = 2**30
# A cluster of two 4-CPU nodes: the wide gang (5 CPUs) fits it, not its free room.
CLUSTER = ClusterRoom(8.0, 0.0, (NodeShape(4.0, 0.0, 64 * GiB), NodeShape(4.0, 0.0, 64 * GiB)))
WIDE = {"distributed": {"workers": 2, "cpus_per_worker": 2}}  # 1 + 2 x 2 CPUs
SMALL = {"distributed": {"workers": 3, "cpus_per_worker": 0.1}}  # 1.3 CPUs


def claim(
    factory: sessionmaker[Session],
    *,
    free_cpus: float,
    hold: timedelta | None,
    free_gpus: float = 0,
    room: ClusterRoom | None = CLUSTER,
    free_nodes: tuple[NodeShape, ...] | None = None,
    now: datetime | None = None,
) -> ClaimedJob | None:
    with transaction(factory) as session:
        return claim_next(
            session=session,
            dispatcher_id="d1",
            lease_seconds=30,
            free_cpus=free_cpus,
            free_gpus=free_gpus,
            free_nodes=free_nodes,
            now=now,
            hold_room_after=hold,
            room=room,
        )


def claimed_id(claimed: ClaimedJob | None) -> int | None:
    return None if claimed is None else claimed.job_id


def queued_since(factory: sessionmaker[Session], job_id: int, ago: timedelta) -> datetime:
    """Back-date the job's submit by `ago`; the database's clock now."""
    with transaction(factory) as session:
        now = db_now(session)
        session.execute(update(Job).where(Job.id == job_id).values(created_at=now - ago))
    return now


def unpackable(
    factory: sessionmaker[Session], room: ClusterRoom, known: tuple[int, ...] = ()
) -> tuple[int, ...]:
    """held_packing.holds_that_cannot_pack at a 10-minute hold, as a maintenance asks."""
    with factory() as session:
        return holds_that_cannot_pack(
            session=session,
            room=room,
            hold_room_after=timedelta(minutes=10),
            quota_defaults=QuotaDefaults(),
            fair_share_window=timedelta(0),
            known=known,
        )


def test_smaller_jobs_pass_a_gang_until_it_has_waited_then_it_holds_the_room(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann, bob = make_user("ann"), make_user("bob")
    wide = submit(ann, **WIDE)
    small = [submit(bob, **SMALL) for _ in range(3)]
    now = queued_since(session_factory, wide, timedelta(minutes=5))
    # Waited 5 minutes of 10: the small job behind it starts on the 3 free CPUs.
    taken = claim(session_factory, free_cpus=3, hold=timedelta(minutes=10), now=now)
    assert claimed_id(taken) == small[0]
    # Waited 11 minutes of 10: it holds the room, so nothing that fits starts.
    later = now + timedelta(minutes=6)
    assert claim(session_factory, free_cpus=3, hold=timedelta(minutes=10), now=later) is None
    # Without a hold (store-level callers), the small job would have started.
    assert claimed_id(claim(session_factory, free_cpus=3, hold=None, now=later)) == small[1]
    # Once enough is free it starts, and the hold is gone with it.
    assert claimed_id(claim(session_factory, free_cpus=5, hold=timedelta(0), now=later)) == wide
    assert claimed_id(claim(session_factory, free_cpus=3, hold=timedelta(0))) == small[2]


def test_the_database_clock_judges_the_wait_on_either_database(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """`now` None: PostgreSQL computes the hold's start in the claim statement."""
    ann, bob = make_user("ann"), make_user("bob")
    wide = submit(ann, **WIDE)
    small = submit(bob, **SMALL)
    assert claim(session_factory, free_cpus=3, hold=timedelta(hours=1)) is not None
    assert load_job(session_factory, small).status == "running"
    submit(bob, **SMALL)
    assert claim(session_factory, free_cpus=3, hold=timedelta(0)) is None
    assert load_job(session_factory, wide).status == "queued"


def test_a_gang_the_cluster_could_not_run_even_empty_holds_nothing(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann, bob = make_user("ann"), make_user("bob")
    submit(ann, **WIDE)
    small = [submit(bob, **SMALL) for _ in range(2)]
    # Fewer CPUs in all than the gang's 5 (a node is down; the window's largest may
    # still be more): holding would keep the cluster idle for a start that cannot come.
    thin = ClusterRoom(4.0, 0.0, None)
    assert claimed_id(claim(session_factory, free_cpus=3, hold=timedelta(0), room=thin)) == small[0]
    # Enough CPUs summed, but a replica of 2 CPUs fits no node of 1.5.
    narrow = ClusterRoom(6.0, 0.0, tuple(NodeShape(1.5, 0.0, 64 * GiB) for _ in range(4)))
    taken = claim(session_factory, free_cpus=3, hold=timedelta(0), room=narrow)
    assert claimed_id(taken) == small[1]


def test_a_gang_its_owners_quota_holds_back_holds_nothing(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann, bob = make_user("ann", max_running_jobs=1), make_user("bob")
    running = [submit(ann, **SMALL), submit(bob, **SMALL), submit(bob, **SMALL)]
    assert [claimed_id(claim(session_factory, free_cpus=8, hold=None)) for _ in running] == running
    # First by fair share (ann runs 1 job, bob 2), but it waits for ann's running job
    # whatever is free.
    submit(ann, **WIDE)
    small = submit(bob, **SMALL)
    assert claimed_id(claim(session_factory, free_cpus=3, hold=timedelta(0))) == small


def test_a_gang_waiting_to_pack_the_free_nodes_holds_them(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """5 CPUs free in all, on two nodes of 2.5: the gang's sums fit, its bundles do not
    (claim.py passes it over); once it has waited, the small job does not start."""
    ann, bob = make_user("ann"), make_user("bob")
    wide = submit(ann, **WIDE)
    small = submit(bob, **SMALL)
    halves = (NodeShape(2.5, 0.0, 64 * GiB), NodeShape(2.5, 0.0, 64 * GiB))
    assert claim(session_factory, free_cpus=5, hold=timedelta(0), free_nodes=halves) is None
    assert load_job(session_factory, wide).status == load_job(session_factory, small).status
    taken = claim(session_factory, free_cpus=5, hold=timedelta(hours=1), free_nodes=halves)
    assert claimed_id(taken) == small


def test_a_job_back_in_the_queue_waits_from_its_last_attempt(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    ann, bob = make_user("ann"), make_user("bob")
    wide = submit(ann, **WIDE)
    queued_since(session_factory, wide, timedelta(hours=2))  # submitted long ago
    run = claim(session_factory, free_cpus=5, hold=timedelta(0))
    assert run is not None and run.job_id == wide
    with transaction(session_factory) as session:
        fail(session=session, job_id=wide, token=run.fencing_token, reason="x", retryable=True)
        ended = db_now(session)
    small = submit(bob, **SMALL)
    hold = timedelta(minutes=10)
    # Queued again 5 minutes ago (submitted 2 hours ago): not held yet.
    taken = claim(session_factory, free_cpus=3, hold=hold, now=ended + timedelta(minutes=5))
    assert claimed_id(taken) == small
    submit(bob, **SMALL)
    assert claim(session_factory, free_cpus=3, hold=hold, now=ended + timedelta(minutes=11)) is None


def test_a_job_that_leaves_free_what_the_held_one_waits_for_still_starts(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """A GPU gang waiting for the only GPU holds no CPU-only work that leaves it its
    CPUs (a review: a three-day GPU job stopped every CPU job); a job that would take
    CPUs it needs does wait."""
    ann, bob, cat = make_user("ann"), make_user("bob"), make_user("cat")
    room = ClusterRoom(16.0, 1.0, None)
    gpu = {"distributed": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 1}}
    running = submit(ann, **gpu)
    assert claimed_id(claim(session_factory, free_cpus=16, free_gpus=1, hold=None)) == running
    waiting = submit(bob, **gpu)  # 2 CPUs (its coordinator's and its replica's), 1 GPU
    small = submit(cat, **SMALL)
    wide = submit(cat, distributed={"workers": 3, "cpus_per_worker": 1})  # 4 CPUs
    queued_since(session_factory, waiting, timedelta(hours=1))
    # 14 CPUs free, no GPU: the small job leaves 12.7 of the 2 CPUs the GPU gang needs.
    taken = claim(session_factory, free_cpus=14, free_gpus=0, hold=timedelta(0), room=room)
    assert claimed_id(taken) == small
    # 5 CPUs free: the 4-CPU job would leave 1 of the 2; it waits.
    assert claim(session_factory, free_cpus=5, free_gpus=0, hold=timedelta(0), room=room) is None
    assert load_job(session_factory, wide).status == "queued"


def test_a_job_ahead_in_order_that_has_not_waited_leaves_the_hold_on(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """Of the jobs that have waited, the first holds: a lighter user's wide gang,
    submitted just now and first by fair share, does not lift it for the jobs behind
    (a review: each such job reopened the gap for the wait's length)."""
    ann, cat, dan = make_user("ann"), make_user("cat"), make_user("dan")
    for _ in range(2):  # ann runs two jobs: she goes after cat and dan by fair share
        submit(ann, **SMALL)
        assert claim(session_factory, free_cpus=8, hold=None) is not None
    waited = submit(ann, **WIDE)
    queued_since(session_factory, waited, timedelta(hours=2))
    fresh = submit(cat, distributed={"workers": 3, "cpus_per_worker": 2})  # 7 CPUs
    small = submit(dan, distributed={"workers": 1, "cpus_per_worker": 2})  # 3 CPUs
    # 4 CPUs free: the small job would leave 1 of the 5 the waited gang needs: it waits.
    assert claim(session_factory, free_cpus=4, hold=timedelta(minutes=10)) is None
    assert {load_job(session_factory, j).status for j in (fresh, small)} == {"queued"}
    # Had the waited gang not waited long enough, the small job would start.
    assert claimed_id(claim(session_factory, free_cpus=4, hold=timedelta(hours=3))) == small


def test_the_held_job_starts_first_when_it_fits(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """A job ahead of it in order that leaves it its room by the sums could still take
    a node it fits now (a review): the held job, when it fits, is the one started."""
    ann, cat = make_user("ann"), make_user("cat")
    submit(ann, **SMALL)
    assert claim(session_factory, free_cpus=20, hold=None) is not None  # ann has run
    held = submit(ann, distributed={"workers": 2, "cpus_per_worker": 3})  # 7 CPUs
    queued_since(session_factory, held, timedelta(hours=1))
    fresh = submit(cat, **SMALL)  # first by fair share; leaves 7.7 of 9 CPUs
    nodes = tuple(NodeShape(3.0, 0.0, 64 * GiB) for _ in range(3))
    room = ClusterRoom(9.0, 0.0, nodes)
    hold = timedelta(minutes=10)  # the fresh job has not waited
    taken = claim(session_factory, free_cpus=9, hold=hold, room=room, free_nodes=nodes)
    assert claimed_id(taken) == held
    assert load_job(session_factory, fresh).status == "queued"


def test_a_gang_that_cannot_pack_the_free_nodes_it_holds_holds_nothing(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """Two nodes of 8 CPUs with 3 held outside the dispatcher on each and none of its
    own gangs running: the room is the free nodes, 5 + 5. A waited gang of 3 x 3 + 1
    CPUs passes the sums and each bundle's test but packs on no set of them; it held
    the cluster idle for as long as the outside holder stayed (a review). Passed over
    on the nodes that are its room, it holds nothing: the small job starts, in the
    same claim."""
    ann, bob = make_user("ann"), make_user("bob")
    wide = submit(ann, distributed={"workers": 3, "cpus_per_worker": 3})
    small = submit(bob, **SMALL)
    now = queued_since(session_factory, wide, timedelta(hours=1))
    fives = (NodeShape(5.0, 0.0, 64 * GiB), NodeShape(5.0, 0.0, 64 * GiB))
    room = ClusterRoom(10.0, 0.0, fives)
    taken = claim(
        session_factory,
        free_cpus=10,
        hold=timedelta(minutes=10),
        room=room,
        free_nodes=fives,
        now=now,
    )
    assert claimed_id(taken) == small
    assert load_job(session_factory, wide).status == "queued"


def test_a_gang_known_not_to_pack_the_room_holds_nothing(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """The dispatcher's room names the jobs it passed over on it (ClusterRoom.unplaceable):
    they hold nothing; without them named, the gang holds and the small job waits."""
    ann, bob = make_user("ann"), make_user("bob")
    wide = submit(ann, **WIDE)
    small = submit(bob, **SMALL)
    now = queued_since(session_factory, wide, timedelta(hours=1))
    hold = timedelta(minutes=10)
    assert claim(session_factory, free_cpus=3, hold=hold, now=now) is None
    room = ClusterRoom(CLUSTER.cpus, CLUSTER.gpus, CLUSTER.nodes, unplaceable=(wide,))
    assert claimed_id(claim(session_factory, free_cpus=3, hold=hold, room=room, now=now)) == small


def test_the_held_owners_own_job_passes_only_if_their_quota_holds_both(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """ann (max_running_jobs 2) runs one job; her GPU gang has waited and holds the
    room. Her CPU-only job behind it leaves the GPUs free, but would take her last
    running slot: the held gang would then be over her quota, hold nothing, and bob's
    GPU job behind it take its GPUs (a review). It waits; with a third slot it passes."""
    ann, bob = make_user("ann", max_running_jobs=2), make_user("bob")
    first = submit(ann, **SMALL)
    assert claimed_id(claim(session_factory, free_cpus=8, hold=None)) == first
    gpu = {"distributed": {"workers": 1, "cpus_per_worker": 1, "gpus_per_worker": 1}}
    held = submit(ann, **gpu)
    trial = submit(ann, **SMALL)
    submit(bob, **gpu)
    now = queued_since(session_factory, held, timedelta(hours=1))
    room = ClusterRoom(8.0, 1.0, None)
    hold = timedelta(minutes=10)
    busy = functools.partial(
        claim, session_factory, free_cpus=6.0, free_gpus=0.0, hold=hold, room=room, now=now
    )
    assert busy() is None
    with transaction(session_factory) as session:
        session.get_one(User, ann).max_running_jobs = 3
    assert claimed_id(busy()) == trial


def test_a_gang_that_packs_on_no_set_of_the_rooms_nodes_is_named_unplaceable(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """Five nodes with 5 CPUs free (3 of 8 held outside each), one of them with 1.5
    more the dispatcher's own gang could free: a gang of 3 x 6 + 1 CPUs passes the
    hold's sums and its each-bundle test, but packs on no set of those nodes, so it
    held the cluster for as long as the dispatcher's gangs kept running (a review).
    `holds_that_cannot_pack` names it; once named, the small job starts."""
    ann, bob = make_user("ann"), make_user("bob")
    wide = submit(ann, distributed={"workers": 3, "cpus_per_worker": 6})
    small = submit(bob, **SMALL)
    now = queued_since(session_factory, wide, timedelta(hours=1))
    five, more = NodeShape(5.0, 0.0, 64 * GiB), NodeShape(6.5, 0.0, 64 * GiB)
    room = ClusterRoom(26.5, 0.0, (more, five, five, five, five))
    hold = timedelta(minutes=10)
    assert unpackable(session_factory, room) == (wide,)
    three_nodes = replace(room, nodes=(more, more, more, five, five))  # a replica each
    assert unpackable(session_factory, three_nodes) == ()
    # 20 CPUs free on five nodes of 4: the small job would leave 18.7 of the 19 the
    # gang waits for.
    fours = (NodeShape(4.0, 0.0, 64 * GiB),) * 5
    held = functools.partial(
        claim, session_factory, free_cpus=20, hold=hold, free_nodes=fours, now=now
    )
    assert held(room=room) is None
    assert claimed_id(held(room=replace(room, unplaceable=(wide,)))) == small


def test_a_queue_of_gangs_that_pack_nowhere_is_worked_through_turn_by_turn(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """Five such gangs: a maintenance tests four anew, and keeps naming the ones it
    found before (each tested again), so the fifth is named at the next turn; it held
    for ever when each turn started afresh with the same four (a review)."""
    ann, bob = make_user("ann"), make_user("bob")
    wide = [submit(ann, distributed={"workers": 3, "cpus_per_worker": 6}) for _ in range(5)]
    small = submit(bob, **SMALL)
    for job_id in wide:
        now = queued_since(session_factory, job_id, timedelta(hours=1))
    five, more = NodeShape(5.0, 0.0, 64 * GiB), NodeShape(6.5, 0.0, 64 * GiB)
    room = ClusterRoom(26.5, 0.0, (more, five, five, five, five))

    first = unpackable(session_factory, room)
    assert first == tuple(wide[:4])
    assert unpackable(session_factory, room, first) == tuple(wide)
    # Where the room's nodes are unknown for a turn, the names stay.
    assert unpackable(session_factory, replace(room, nodes=None), tuple(wide)) == tuple(wide)
    fours = (NodeShape(4.0, 0.0, 64 * GiB),) * 5
    taken = claim(
        session_factory,
        free_cpus=20,
        hold=timedelta(minutes=10),
        free_nodes=fours,
        now=now,
        room=replace(room, unplaceable=tuple(wide)),
    )
    assert claimed_id(taken) == small


def test_every_gang_that_packs_nowhere_stays_named_while_queued(
    session_factory: sessionmaker[Session], make_user: MakeUser, submit: Submit
) -> None:
    """Twelve such gangs are all named after three turns (a cap on the names kept let
    the one past it hold for ever: a review); a cancelled one is no longer named."""
    ann = make_user("ann")
    wide = [submit(ann, distributed={"workers": 3, "cpus_per_worker": 6}) for _ in range(12)]
    for job_id in wide:
        queued_since(session_factory, job_id, timedelta(hours=1))
    five, more = NodeShape(5.0, 0.0, 64 * GiB), NodeShape(6.5, 0.0, 64 * GiB)
    room = ClusterRoom(26.5, 0.0, (more, five, five, five, five))
    known: tuple[int, ...] = ()
    for _turn in range(3):
        known = unpackable(session_factory, room, known)
    assert known == tuple(wide)
    with transaction(session_factory) as session:
        session.get_one(Job, wide[0]).status = "cancelled"
    assert unpackable(session_factory, room, known) == tuple(wide[1:])
