"""Per-user quotas (DESIGN §11): what an admin sets, what is in force, and usage.

A user's own value (set with PATCH /v1/users/{id}) overrides the server's default
(settings, `default_max_*`); null in the store means "the server's default", so a
changed default reaches every user without a quota of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

QUOTA_FIELDS = (
    "max_running_jobs",
    "max_queued_jobs",
    "max_cpus",
    "max_gpus",
    "max_storage_bytes",
    "max_job_hours",
)


# The most each quota may be, a user's own (QuotaIn) and the server's default
# (settings) alike: past it, "no limit" is better said as a large number than
# inf, which JSON cannot carry and a time limit cannot hold (timedelta's overflow).
QUOTA_MOST: dict[str, float] = {
    "max_running_jobs": 10_000,
    "max_queued_jobs": 1_000_000,
    "max_cpus": 1_000_000,
    "max_gpus": 100_000,
    "max_storage_bytes": 2**62,
    "max_job_hours": 100_000,
}


@dataclass(frozen=True)
class QuotaDefaults:
    """The server's defaults (built from settings; these values are the settings'
    defaults, for store callers that are given none)."""

    max_running_jobs: int = 4
    max_queued_jobs: int = 100
    max_cpus: float = 64.0
    max_gpus: float = 4.0
    max_storage_bytes: int = 20 * (1 << 30)
    max_job_hours: float = 48.0


class QuotaIn(BaseModel):
    """A quota change: a field given sets it, null returns it to the server default,
    a field left out is unchanged."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    max_running_jobs: int | None = Field(default=None, ge=0, le=QUOTA_MOST["max_running_jobs"])
    max_queued_jobs: int | None = Field(default=None, ge=0, le=QUOTA_MOST["max_queued_jobs"])
    max_cpus: float | None = Field(default=None, ge=0, le=QUOTA_MOST["max_cpus"])
    max_gpus: float | None = Field(default=None, ge=0, le=QUOTA_MOST["max_gpus"])
    max_storage_bytes: int | None = Field(default=None, ge=0, le=QUOTA_MOST["max_storage_bytes"])
    max_job_hours: float | None = Field(default=None, gt=0, le=QUOTA_MOST["max_job_hours"])


class QuotaOut(BaseModel):
    """The quota in force (the user's own value, else the server's default)."""

    max_running_jobs: int
    max_queued_jobs: int
    max_cpus: float
    max_gpus: float
    max_storage_bytes: int
    max_job_hours: float


class UsageOut(BaseModel):
    running_jobs: int = Field(description="running or cancelling")
    queued_jobs: int
    cpus: float = Field(description="CPUs reserved by running jobs")
    gpus: float
    storage_bytes: int = Field(description="uploads + checkpoints")
    jobs_total: int
    jobs_by_status: dict[str, int]
