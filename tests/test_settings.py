"""Settings refuse a lease that one missed heartbeat would lose, and read an empty
bootstrap token as none."""

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


def test_an_empty_bootstrap_token_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose.yml hands the api ${LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN:-}: empty where
    it is not set, which means "make one on the first start", not a 31-character miss."""
    monkeypatch.setenv("LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN", "")
    assert Settings().bootstrap_admin_token is None
    monkeypatch.setenv("LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN", "short")
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings()
