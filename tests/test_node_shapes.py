"""service.schemas.node_fit: the node shapes a bundle is judged against, and the
capacity window's memory of them (workers.capacity)."""

from __future__ import annotations

import itertools
import random

from service.schemas.gang import Bundle
from service.schemas.node_counts import counted, counts_memory, from_counted
from service.schemas.node_fit import (
    NodeShape,
    PassedOver,
    job_bundles,
    maximal,
    misfit,
    most_free,
    packs,
    placement,
    replicas_beside_coordinator,
)
from tests.hand_clock import Clock
from workers.capacity import NODE_SETS_MOST, CapacityWindow

GiB = 2**30
MiB = 2**20
GPU_NODE = NodeShape(8, 2, 32 * GiB)
CPU_NODE = NodeShape(32, 0, 128 * GiB)


def test_maximal_keeps_the_shapes_no_other_covers() -> None:
    small = NodeShape(4, 1, 16 * GiB)
    assert maximal([small, GPU_NODE, CPU_NODE, GPU_NODE]) == (CPU_NODE, GPU_NODE)
    assert maximal([]) == ()


def test_misfit_names_the_first_bundle_no_node_holds() -> None:
    def bundles(cpus: float, gpus: float, memory: float | None = None) -> dict[str, Bundle]:
        return job_bundles(
            replica_cpus=cpus, replica_gpus=gpus, replica_memory=memory, coordinator_memory=GiB
        )

    nodes = (GPU_NODE, CPU_NODE)
    assert misfit(bundles(8, 2), nodes) is None
    assert misfit(bundles(16, 0), nodes) is None, "the CPU node holds it"
    why = misfit(bundles(16, 1), nodes)  # 16 CPUs and a GPU: on no one node
    assert why is not None and why.startswith("a replica's bundle needs 16 CPU, 1 GPU on one node")
    assert "32 CPU, 128 GiB memory" in why and "8 CPU, 2 GPU, 32 GiB memory" in why, why
    why = misfit(bundles(1, 0, memory=200 * GiB), nodes)
    assert why is not None and "200 GiB memory" in why, why
    # 12.5 MiB estimated, reserved with the process's 256 MiB (gang.PROCESS_BASE_BYTES)
    why = misfit(bundles(64, 0, memory=12.5 * 2**20), nodes)
    assert why is not None and "64 CPU, 268 MiB memory on one node" in why, why
    assert misfit(bundles(99, 9), ()) is None, "no node known: nothing judged"
    unknown = job_bundles(
        replica_cpus=None, replica_gpus=None, replica_memory=None, coordinator_memory=None
    )
    assert misfit(unknown, (NodeShape(1, 0, 0),)) is None


def test_most_free_is_each_resources_most_on_one_node() -> None:
    free = most_free([NodeShape(1, 1, 4 * GiB), NodeShape(6, 0, 2 * GiB)])
    assert free == NodeShape(6, 1, 4 * GiB)
    assert most_free([]) == NodeShape(0, 0, 0)


def test_the_window_judges_bundles_by_every_node_it_saw_unless_a_ceiling_is_set() -> None:
    clock = Clock()
    window = CapacityWindow(60, clock=clock)
    window.observe(40, 2, (GPU_NODE, CPU_NODE))
    clock.now = 10
    window.observe(8, 2, (GPU_NODE,))  # the CPU node rebooting
    assert window.nodes() == (CPU_NODE, GPU_NODE)
    clock.now = 75
    window.observe(8, 2, (GPU_NODE,))  # gone for a whole window: not the cluster now
    assert window.nodes() == (GPU_NODE,)
    # A ceiling above what was seen: the cluster may grow by nodes of any shape (an
    # autoscaler's); within it (server --embedded's: the local Ray's totals) nodes
    # are judged.
    ceiling = CapacityWindow(60, ceiling_gpus=8, clock=clock)
    ceiling.observe(8, 2, (GPU_NODE,))
    assert not ceiling.judges_nodes() and ceiling.nodes() == ()
    fixed = CapacityWindow(60, ceiling_cpus=8, ceiling_gpus=2, clock=clock)
    fixed.observe(8, 2, (GPU_NODE,))
    assert fixed.judges_nodes() and fixed.nodes() == (GPU_NODE,)


def gang(cpus: float, gpus: float = 0.0, memory: float | None = None) -> dict[str, Bundle]:
    """A gang's bundles: replicas of `cpus`, `gpus` and `memory` estimated (reserved
    with the process's base; None: unknown, nothing); the coordinator's 1 CPU."""
    return job_bundles(
        replica_cpus=cpus, replica_gpus=gpus, replica_memory=memory, coordinator_memory=None
    )


def test_packs_fits_the_replicas_node_by_node_not_by_the_sums() -> None:
    """Two nodes of 5 CPUs: 10 CPUs in all, each replica of 3 fits either, yet only
    one fits on each; so 3 replicas (10 CPUs with the coordinator) never fit together."""
    five = NodeShape(5, 0, 8 * GiB)
    assert not packs(gang(3), 3, (five, five))
    assert replicas_beside_coordinator(gang(3), 3, (five, five)) == 2
    assert packs(gang(3), 2, (five, five))
    assert packs(gang(3), 3, (five, five, NodeShape(3, 0, GiB)))  # a third node's room


def test_packs_places_the_coordinator_where_it_costs_no_replica() -> None:
    """Nodes of 4 and 3 CPUs, replicas of 2: the coordinator on the 3-CPU node leaves
    room for 2 + 1 replicas; on the 4-CPU one, for only 1 + 1."""
    nodes = (NodeShape(4, 0, GiB), NodeShape(3, 0, GiB))
    assert packs(gang(2), 3, nodes)
    assert not packs(gang(2), 4, nodes)
    assert not packs(gang(0.5), 1, (NodeShape(0.5, 0, GiB),) * 4), "no CPU for the coordinator"


def test_packs_counts_every_resource_and_fractions() -> None:
    gpus = (NodeShape(8, 3, 32 * GiB),) * 3  # 9 GPUs, three replicas of 2
    assert packs(gang(1, 2), 3, gpus) and not packs(gang(1, 2), 4, gpus)
    memory = (NodeShape(64, 0, 10 * GiB),) * 2  # two replicas of 4.5 GiB + 256 MiB each
    assert packs(gang(1, 0, 4.5 * GiB), 4, memory) and not packs(gang(1, 0, 5 * GiB), 3, memory)
    assert packs(gang(0.1), 10, (NodeShape(2.0, 0, GiB),)), "1 + 10 x 0.1 CPU on 2 CPUs"
    assert packs(gang(0.0), 1000, (NodeShape(1, 0, GiB),)), "replicas asking for nothing"
    # Each process's base is reserved (gang.PROCESS_BASE_BYTES): 64 replicas of 0.01 CPU
    # whose job adds 1 MiB each take 16 GiB, not 64 MiB.
    assert not packs(gang(0.01, 0, 2**20), 64, (NodeShape(8, 0, 8 * GiB),))
    assert packs(gang(0.01, 0, 2**20), 64, (NodeShape(8, 0, 17 * GiB),))
    assert not packs(gang(1), 1, ())


def test_the_window_fails_a_gang_only_no_moment_of_its_nodes_held() -> None:
    clock = Clock()
    window = CapacityWindow(60, clock=clock)
    five = NodeShape(5, 0, 8 * GiB)
    window.observe(15, 0, (five, five, five))
    clock.now = 10
    window.observe(10, 0, (five, five))  # a node rebooting
    three = PassedOver(job_id=1, bundles=gang(3), workers=3)
    assert window.never_placed(three) is None, "not settled: judged once the window was watched"
    clock.now = 60
    window.observe(10, 0, (five, five))
    assert window.never_placed(three) is None, "three nodes held it 50 s ago"
    clock.now = 80
    window.observe(10, 0, (five, five))
    why = window.never_placed(three)
    assert why is not None and "3 replicas of 3 CPU each" in why and "2 of the replicas" in why
    assert window.never_placed(PassedOver(job_id=2, bundles=gang(3), workers=2)) is None
    unread = CapacityWindow(1, clock=clock)
    unread.observe(10, 0, ())  # Ray's per-node read failed: nothing judged by nodes
    clock.now = 90
    assert unread.never_placed(three) is None


def test_the_window_reports_each_node_set_by_shape_and_count() -> None:
    """The submit's together check reads them (service.store.cluster_capacity): a
    set of nodes by shape and count, each node's memory rounded up to a whole GiB so
    that alike machines, whose Ray memory differs by megabytes, fold into one shape;
    up, so the submit never refuses what a node's real memory holds."""
    clock = Clock()
    window = CapacityWindow(60, clock=clock)
    five, other_five = NodeShape(5, 0, 8 * GiB - 30 * MiB), NodeShape(5, 0, 8 * GiB - 10 * MiB)
    window.observe(18, 1, (five, GPU_NODE, other_five))
    assert window.node_sets() is None, "not settled"
    clock.now = 60
    window.observe(10, 0, (five, other_five))
    sets = window.node_sets()
    eight = 8.0 * GiB
    assert sets == [
        [
            {"CPU": 5.0, "GPU": 0.0, "memory": eight, "count": 2},
            {"CPU": 8.0, "GPU": 2.0, "memory": 32.0 * GiB, "count": 1},
        ],
        [{"CPU": 5.0, "GPU": 0.0, "memory": eight, "count": 2}],
    ]
    assert window.node_report({"n1": five})["node_sets"] == sets
    assert sorted(from_counted(sets[0])) == [
        NodeShape(5, 0, eight),
        NodeShape(5, 0, eight),
        NodeShape(8, 2, 32 * GiB),
    ]
    assert packs(gang(3), 2, from_counted(sets[1])) and not packs(gang(3), 3, from_counted(sets[1]))
    # Apart from the rounding, memory counts: 8 GiB nodes hold 2 bundles of 4 GiB.
    by_memory = {"coordinator": {"CPU": 1.0, "memory": 4.0 * GiB}, "replica": {"memory": 4.0 * GiB}}
    assert packs(by_memory, 3, from_counted(sets[1]))
    assert not packs(by_memory, 4, from_counted(sets[1]))
    assert counted([NodeShape(1, 0, 0.0), NodeShape(1, 0, 2 * GiB)]) == [
        {"CPU": 1.0, "GPU": 0.0, "memory": 0.0, "count": 1},
        {"CPU": 1.0, "GPU": 0.0, "memory": 2.0 * GiB, "count": 1},
    ], "a whole GiB stays as it is"
    assert counts_memory(sets[0]) and not counts_memory([{"CPU": 5.0, "GPU": 0.0, "count": 2}])
    many = CapacityWindow(0, clock=clock)  # a cluster of more shapes than a report lists
    many.observe(1000, 0, tuple(NodeShape(c, 0, GiB) for c in range(1, NODE_SETS_MOST + 2)))
    assert many.node_sets() is None and "node_sets" not in many.node_report({"n1": five})
    # Alike machines whose memory differs by GiBs: too many shapes with memory, so the
    # sets are listed by CPU and GPU alone (a review: the whole check was lost).
    varied = CapacityWindow(0, clock=clock)
    varied.observe(
        800, 0, tuple(NodeShape(8, 0, (20 + i) * GiB) for i in range(NODE_SETS_MOST + 1))
    )
    assert varied.node_sets() == [[{"CPU": 8.0, "GPU": 0.0, "count": NODE_SETS_MOST + 1}]]
    ceiling = CapacityWindow(0, ceiling_cpus=64, clock=clock)  # may grow by unknown nodes
    ceiling.observe(10, 0, (five, five))
    assert ceiling.node_sets() is None


def fits_by_brute_force(bundles: dict[str, Bundle], workers: int, nodes: list[NodeShape]) -> bool:
    """Every assignment of the gang's bundles to nodes, tried."""
    gang = [bundles["coordinator"]] + [bundles["replica"]] * workers
    for chosen in itertools.product(range(len(nodes)), repeat=len(gang)):
        left: list[NodeShape | None] = list(nodes)
        for bundle, index in zip(gang, chosen, strict=True):
            node = left[index]
            left[index] = None if node is None else node.after(bundle)
        if all(node is not None for node in left):
            return True
    return False


def placed_fits(bundles: dict[str, Bundle], chosen: list[int], nodes: list[NodeShape]) -> bool:
    left: list[NodeShape | None] = list(nodes)
    for rank, index in enumerate(chosen):
        node = left[index]
        bundle = bundles["coordinator"] if rank == 0 else bundles["replica"]
        left[index] = None if node is None else node.after(bundle)
    return all(node is not None for node in left)


def test_packs_and_placement_agree_with_trying_every_assignment() -> None:
    """packs is exact: on random small clusters it says what trying every assignment
    says, and placement's answer is one of them."""
    rng = random.Random(7)
    for _ in range(300):
        nodes = [
            NodeShape(rng.choice([0, 1, 2, 3, 4, 5]), rng.choice([0, 1, 2]), rng.choice([4, 8]))
            for _ in range(rng.randint(1, 3))
        ]
        bundles = {
            "coordinator": {"CPU": 1.0, "memory": float(rng.choice([0, 2, 5]))},
            "replica": {
                "CPU": rng.choice([0.5, 1.0, 2.0, 3.0]),
                "GPU": float(rng.choice([0, 0, 1])),
                "memory": float(rng.choice([0, 1, 3])),
            },
        }
        workers = rng.randint(1, 4)
        expected = fits_by_brute_force(bundles, workers, nodes)
        assert packs(bundles, workers, nodes) == expected, (bundles, workers, nodes)
        chosen = placement(bundles, workers, nodes)
        assert (chosen is not None) == expected
        assert chosen is None or (
            len(chosen) == workers + 1 and placed_fits(bundles, chosen, nodes)
        )


def test_placement_puts_the_coordinator_where_the_gang_fits_on_fewest_nodes() -> None:
    """Nodes of 4 and 3 CPUs, three replicas of 2: only with the coordinator on the
    3-CPU node (Ray's PACK search put it on the 4-CPU one and never placed the gang)."""
    four, three = NodeShape(4, 0, GiB), NodeShape(3, 0, GiB)
    assert placement(gang(2), 3, [four, three]) == [1, 1, 0, 0]
    roomy = NodeShape(16, 0, 8 * GiB)
    assert placement(gang(2), 3, [four, roomy, three]) == [1, 1, 1, 1], "one node holds all"
    assert placement(gang(3), 3, [NodeShape(5, 0, GiB)] * 2) is None
