"""A gang Ray's PACK search did not place is pinned, bundle by bundle, to the nodes
node_fit.placement chose (workers.ray_runtime.place_gang): the search missed a
placement that existed (nodes of 4 and 3 CPUs, three replicas of 2 CPUs: the gang
waited `gang_ready_seconds` and failed each attempt on a real two-node Ray;
docs/decisions.md)."""

from __future__ import annotations

from typing import Any

import pytest
import ray
from ray._private.state import state as ray_state
from ray.util.placement_group import placement_group, remove_placement_group

from service.schemas.gang import Bundle
from workers import ray_runtime
from workers.ray_runtime import NODE_ID_LABEL, pinned_to_nodes, place_gang

GiB = 2**30
COORDINATOR: Bundle = {"CPU": 1.0, "memory": 0.2 * GiB}
REPLICA: Bundle = {"CPU": 2.0, "memory": 0.01 * GiB}
FOUR_AND_THREE = {"four": {"CPU": 4.0, "memory": GiB}, "three": {"CPU": 3.0, "memory": GiB}}


class Group:
    """A placement group at Ray's seam: placed or not within the wait."""

    def __init__(self, placed: bool, selectors: Any) -> None:
        self.placed, self.selectors, self.removed = placed, selectors, False

    def wait(self, timeout_seconds: float) -> bool:
        return self.placed

    def remove(self) -> None:
        self.removed = True


def ray_placing(monkeypatch: pytest.MonkeyPatch, *, unpinned_placed: bool) -> list[Group]:
    """Ray's calls at the seam: its search places the unpinned group or not; a pinned
    one is placed. The nodes have 4 and 3 CPUs free."""
    groups: list[Group] = []

    def create(bundles: list[Bundle], strategy: str, bundle_label_selector: Any = None) -> Group:
        assert strategy == "PACK"
        pinned = bundle_label_selector is not None
        groups.append(Group(unpinned_placed or pinned, bundle_label_selector))
        return groups[-1]

    monkeypatch.setattr(ray_runtime, "placement_group", create)
    monkeypatch.setattr(ray_runtime, "remove_placement_group", Group.remove)
    monkeypatch.setattr(ray_state, "available_resources_per_node", lambda: FOUR_AND_THREE)
    return groups


def placed(bundles: list[Bundle]) -> object:
    return place_gang(bundles)


def test_a_gang_rays_search_places_is_left_as_ray_placed_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    groups = ray_placing(monkeypatch, unpinned_placed=True)
    assert placed([COORDINATOR, REPLICA, REPLICA, REPLICA]) is groups[0]
    assert len(groups) == 1 and groups[0].selectors is None and not groups[0].removed


def test_a_gang_rays_search_misses_is_pinned_where_it_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    groups = ray_placing(monkeypatch, unpinned_placed=False)
    assert placed([COORDINATOR, REPLICA, REPLICA, REPLICA]) is groups[1]
    assert groups[0].removed and not groups[1].removed
    where = ("three", "three", "four", "four")  # the coordinator on the smaller node
    assert groups[1].selectors == [{NODE_ID_LABEL: node} for node in where]


def test_a_gang_that_fits_no_nodes_now_keeps_rays_pending_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    groups = ray_placing(monkeypatch, unpinned_placed=False)
    assert placed([COORDINATOR] + [REPLICA] * 4) is groups[0]
    assert len(groups) == 1 and not groups[0].removed


def test_an_unreadable_per_node_read_pins_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, dict[str, float]]:
        raise RuntimeError("a Ray release moved it")

    monkeypatch.setattr(ray_state, "available_resources_per_node", broken)
    assert pinned_to_nodes([COORDINATOR, REPLICA]) is None


@pytest.mark.ray
def test_rays_node_labels_honour_the_pins(ray_address: str) -> None:
    """On the session's real Ray: the label names its node, and a placement group
    pinned by it is placed (tiny bundles: other tests' gangs may hold the CPUs)."""
    small: Bundle = {"CPU": 0.05}
    pins = pinned_to_nodes([small, small, small])
    [node] = [n["NodeID"] for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    assert pins == [{NODE_ID_LABEL: node}] * 3
    group = placement_group([small] * 3, strategy="PACK", bundle_label_selector=pins)
    nowhere = [{NODE_ID_LABEL: "0" * len(node)}]  # no such node: Ray must not place it
    elsewhere = placement_group([small], strategy="PACK", bundle_label_selector=nowhere)
    try:
        assert group.wait(60)
        assert not elsewhere.wait(1), "Ray placed a bundle pinned to a node that is not there"
    finally:
        remove_placement_group(group)
        remove_placement_group(elsewhere)
