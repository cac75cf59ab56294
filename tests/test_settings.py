"""Settings refuse a lease that one missed heartbeat would lose."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_lease_must_outlive_a_missed_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(lease_seconds=10, heartbeat_seconds=5).lease_seconds == 10
    with pytest.raises(ValidationError) as error:
        Settings(lease_seconds=9, heartbeat_seconds=5)
    message = str(error.value)
    assert "LAGTRAIN_LEASE_SECONDS (9)" in message
    assert "LAGTRAIN_HEARTBEAT_SECONDS (5)" in message

    # Checked however the values arrive, e.g. from the environment at start-up.
    monkeypatch.setenv("LAGTRAIN_LEASE_SECONDS", "4")
    monkeypatch.setenv("LAGTRAIN_HEARTBEAT_SECONDS", "3")
    with pytest.raises(ValidationError, match="at least twice"):
        Settings()
    monkeypatch.setenv("LAGTRAIN_HEARTBEAT_SECONDS", "0.5")
    assert Settings().heartbeat_seconds == 0.5
