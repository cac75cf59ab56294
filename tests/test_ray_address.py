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


class _Connecting(Exception):
    """Stands in for Ray's start: the test ends where `lagtrain worker` would connect."""


@pytest.mark.parametrize("address", [None, "head.lab:6379"])
def test_a_worker_without_ray_address_says_it_starts_a_local_ray(
    address: str | None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DESIGN §8: unset means a local Ray; on a cluster host that quietly ran claimed
    jobs off the cluster (an operator's walkthrough), so the worker says so."""
    import workers.embedded as embedded
    from service.settings import Settings

    def connect(given: str | None, **_kwargs: object) -> None:
        assert given == address
        raise _Connecting

    monkeypatch.setattr(embedded, "connect", connect)
    with pytest.raises(_Connecting):
        embedded.run_worker(Settings(ray_address=address))
    warned = "RAY_ADDRESS is not set: starting a local Ray" in caplog.text
    assert warned == (address is None)
