"""service.schemas.node_fit: the node shapes a bundle is judged against, and the
capacity window's memory of them (workers.capacity)."""

from __future__ import annotations

from service.schemas.node_fit import NodeShape, job_bundles, maximal, misfit, most_free
from tests.hand_clock import Clock
from workers.capacity import CapacityWindow

GiB = 2**30
GPU_NODE = NodeShape(8, 2, 32 * GiB)
CPU_NODE = NodeShape(32, 0, 128 * GiB)


def test_maximal_keeps_the_shapes_no_other_covers() -> None:
    small = NodeShape(4, 1, 16 * GiB)
    assert maximal([small, GPU_NODE, CPU_NODE, GPU_NODE]) == (CPU_NODE, GPU_NODE)
    assert maximal([]) == ()


def test_misfit_names_the_first_bundle_no_node_holds() -> None:
    def bundles(cpus: float, gpus: float, memory: float = 0.0) -> dict[str, dict[str, float]]:
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
    why = misfit(bundles(64, 0, memory=12.5 * 2**20), nodes)
    assert why is not None and "64 CPU, 12.5 MiB memory on one node" in why, why
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
