"""Settings refuse a lease that one missed heartbeat would lose, values no code can
use (inf, nan, durations past 30 days, quota defaults past a user's quota's most),
and read an empty bootstrap token as none."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from annotated_types import Le
from pydantic import ValidationError

from service.schemas.quota import QUOTA_FIELDS, QUOTA_MOST, QuotaIn
from service.settings import MOST_SECONDS, Settings


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


FLOAT_SETTINGS = [
    name for name, field in Settings.model_fields.items() if "float" in str(field.annotation)
]


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_no_setting_is_infinite_or_nan(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """inf passed every lower bound: a lease or a job-hours default of inf overflowed a
    timedelta in the claim or the heartbeat, which failed every job instead."""
    monkeypatch.setenv(f"LAGTRAIN_{name.upper()}", value)
    with pytest.raises(ValidationError, match="finite number"):
        Settings()


def _most(name: str) -> float:
    bounds = [cast(float, m.le) for m in Settings.model_fields[name].metadata if isinstance(m, Le)]
    assert bounds, f"{name} has no upper bound"
    return float(bounds[0])


def test_durations_are_bounded_and_the_longest_allowed_works() -> None:
    """Every duration setting is at most 30 days, so the longest allowed one fits a
    timedelta added to a date; past its bound the setting is refused at start."""
    durations = [name for name in Settings.model_fields if name.endswith("_seconds")]
    assert len(durations) >= 10
    for name in durations:
        most = _most(name)
        assert most <= MOST_SECONDS
        with pytest.raises(ValidationError, match="less than or equal to"):
            Settings.model_validate({name: most + 1})
        # The heartbeat's longest is half the longest lease (a lease survives one miss).
        longest = most / 2 if name == "heartbeat_seconds" else most
        values = {name: longest, "lease_seconds": MOST_SECONDS}
        assert getattr(Settings.model_validate(values), name) == longest
        assert datetime(2026, 12, 1) + timedelta(seconds=longest) > datetime(2026, 12, 1)


def test_the_server_quota_defaults_have_the_users_quota_bounds() -> None:
    """A default of 10**12 job hours (meant as "no limit") made every heartbeat raise
    OverflowError: the lease was never renewed and each job was reaped and rerun. The
    server's defaults are bounded as an admin's quota for a user is (QuotaIn)."""
    for name in QUOTA_FIELDS:
        most = QUOTA_MOST[name]
        assert QuotaIn.model_validate({name: most}).model_dump()[name] == most
        with pytest.raises(ValidationError, match="less than or equal"):
            QuotaIn.model_validate({name: most + 1})
        with pytest.raises(ValidationError, match="less than or equal"):
            Settings.model_validate({f"default_{name}": most + 1})
    most_hours = {"default_max_job_hours": QUOTA_MOST["max_job_hours"]}
    hours = Settings.model_validate(most_hours).default_max_job_hours
    assert datetime(2026, 12, 1) + timedelta(hours=hours) > datetime(2026, 12, 1)


def test_the_readme_states_each_settings_own_bound() -> None:
    """An operator reads the bounds in the README before a start refuses a value
    (`LAGTRAIN_DRAIN_SECONDS=900` stopped every process with "less than or equal to
    600", a bound no doc stated). The 30-day durations and the quota defaults are
    stated as rules, and a port's; every other upper bound by name."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    text = " ".join(readme.split())
    by_rule = {f"default_{name}" for name in QUOTA_FIELDS} | {"port"}
    for name, field in Settings.model_fields.items():
        bounds = [float(cast(float, m.le)) for m in field.metadata if isinstance(m, Le)]
        if not bounds or bounds[0] == MOST_SECONDS or name in by_rule:
            continue
        assert f"`{name.upper()}` ≤ {bounds[0]:g}" in text, name
