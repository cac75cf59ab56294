"""What a dispatcher's claim is told from its settings. No Ray: a spy at the store
call, which finds nothing to claim."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.workers.test_stop_record import _store
from workers import dispatcher as dispatcher_module
from workers.dispatcher import Dispatcher


def test_a_dispatcher_claims_with_the_settings_fair_share_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is told the settings' window (its default, zero, would make fair share
    count running jobs only): a spy at the store call, which finds nothing to claim."""
    settings, sessions = _store(tmp_path)
    settings = settings.model_copy(update={"fair_share_window_seconds": 1234.0})
    seen: dict[str, object] = {}

    def spy(**kwargs: object) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(dispatcher_module, "free_resources", lambda: (4.0, 0.0))
    monkeypatch.setattr(dispatcher_module, "claim_next", spy)
    dispatcher = Dispatcher(settings, sessions, dispatcher_id="d1")
    assert dispatcher._claim_and_start() is False
    assert seen["fair_share_window"] == timedelta(seconds=1234)
    assert seen["quota_defaults"] == settings.quota_defaults()
