"""What a dispatcher's claim is told from its settings. No Ray: a spy at the store
call, which finds nothing to claim."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from service.schemas.node_fit import NodeShape
from tests.workers.dispatcher_seams import GiB, dispatcher_store, idle_node_at_seam
from workers import dispatcher as dispatcher_module
from workers.dispatcher import Dispatcher


def test_a_dispatcher_claims_with_the_settings_fair_share_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is told the settings' window (its default, zero, would make fair share
    count running jobs only): a spy at the store call, which finds nothing to claim."""
    settings, sessions = dispatcher_store(tmp_path)
    settings = settings.model_copy(update={"fair_share_window_seconds": 1234.0})
    seen: dict[str, object] = {}

    def spy(**kwargs: object) -> None:
        seen.update(kwargs)

    idle_node_at_seam(monkeypatch, 4.0)
    monkeypatch.setattr(dispatcher_module, "claim_next", spy)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    assert dispatcher._claim_and_start() is False
    assert seen["fair_share_window"] == timedelta(seconds=1234)
    assert seen["quota_defaults"] == settings.quota_defaults()
    assert seen["free_nodes"] == (NodeShape(4.0, 0.0, 64 * GiB),)  # what each node has free
