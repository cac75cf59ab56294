"""What a dispatcher's claim is told from its settings. No Ray: a spy at the store
call, which finds nothing to claim."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.schemas.node_fit import ClusterRoom, NodeShape
from service.settings import Settings
from tests.workers.dispatcher_seams import GiB, dispatcher_store, idle_node_at_seam
from workers import dispatcher as dispatcher_module
from workers.dispatcher import Dispatcher


def _spied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **update: float
) -> tuple[Dispatcher, Settings, dict[str, object]]:
    """A dispatcher (settings `update`d) on one idle node of 4 CPUs, whose claim's
    arguments are kept in the dict: a spy at the store call, which claims nothing."""
    settings, sessions = dispatcher_store(tmp_path)
    settings = settings.model_copy(update=update)
    seen: dict[str, object] = {}

    def spy(**kwargs: object) -> None:
        seen.update(kwargs)

    idle_node_at_seam(monkeypatch, 4.0)
    monkeypatch.setattr(dispatcher_module, "claim_next", spy)
    return Dispatcher(settings, sessions, dispatcher_id="d1"), settings, seen


def test_a_dispatcher_claims_with_the_settings_fair_share_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is told the settings' window (its default, zero, would make fair share
    count running jobs only)."""
    dispatcher, settings, seen = _spied(tmp_path, monkeypatch, fair_share_window_seconds=1234.0)
    assert dispatcher._claim_and_start() is False
    assert seen["fair_share_window"] == timedelta(seconds=1234)
    assert seen["quota_defaults"] == settings.quota_defaults()
    assert seen["free_nodes"] == (NodeShape(4.0, 0.0, 64 * GiB),)  # what each node has free
    assert seen["hold_room_after"] == timedelta(seconds=600)  # the setting's default
    assert seen["room"] is None  # no maintenance has seen the cluster yet


def test_a_dispatcher_holds_room_by_what_its_cluster_could_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The room a waiting gang must fit to hold the cluster: the newest totals, not
    the window's largest (a node gone would hold it idle), and no more than what is
    free plus this dispatcher's gangs — here none, so what is free now, its node too
    (the rest may be held outside it, and never come free)."""
    dispatcher, _settings, seen = _spied(tmp_path, monkeypatch, hold_room_after_seconds=42.0)
    big, small = NodeShape(8.0, 1.0, 64 * GiB), NodeShape(6.0, 0.0, 64 * GiB)
    dispatcher.capacity.observe(14.0, 1.0, (big, small))
    dispatcher.capacity.observe(6.0, 0.0, (small,))  # the larger node left
    assert dispatcher._claim_and_start() is False
    assert seen["hold_room_after"] == timedelta(seconds=42)
    assert seen["room"] == ClusterRoom(4.0, 0.0, (NodeShape(4.0, 0.0, 64 * GiB),))
