"""The addresses `lagtrain worker` probes before it asks Ray to join (workers.ray_runtime):
only what reads as one host and port; anything else is left to `ray.init`."""

from __future__ import annotations

import pytest

from workers.ray_runtime import gcs_endpoint


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [
        ("10.0.0.5:6379", ("10.0.0.5", 6379)),
        ("ray-head:6379", ("ray-head", 6379)),
        ("ray://ray-head:10001", ("ray-head", 10001)),
        ("[::1]:6379", ("::1", 6379)),
        ("auto", None),
        ("::1", None),  # a bare IPv6 address, not host ":" and port 1
        ("ray-head", None),
        (":6379", None),
        ("ray-head:port", None),
    ],
)
def test_the_probed_endpoint(address: str, endpoint: tuple[str, int] | None) -> None:
    assert gcs_endpoint(address) == endpoint
