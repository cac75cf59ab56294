"""Process settings: one object per process, built once and passed in (DESIGN §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.schemas.defaults import DEFAULT_MAX_ATTEMPTS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAGTRAIN_", extra="ignore")

    database_url: str = "sqlite:///./.lagtrain/lagtrain.db"
    artifacts_url: str = "./.lagtrain/artifacts"
    state_dir: Path = Path("./.lagtrain")
    # Ray reads RAY_ADDRESS under its usual name; the prefixed name also works.
    ray_address: str | None = Field(
        default=None, validation_alias=AliasChoices("RAY_ADDRESS", "LAGTRAIN_RAY_ADDRESS")
    )
    # Ray's token authentication (on by default in 2.60); every node and client of a
    # cluster must agree. Read under Ray's own name.
    ray_auth_mode: Literal["token", "disabled"] = Field(
        default="token", validation_alias=AliasChoices("RAY_AUTH_MODE", "LAGTRAIN_RAY_AUTH_MODE")
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # uvicorn worker processes of `lagtrain server` (each has its own connection pool
    # and SSE feeds); `server --embedded` always runs one, beside its dispatcher.
    web_workers: int = Field(default=1, ge=1, le=64)
    # `server --embedded`: the submit route wakes the in-process dispatcher at once.
    # Off only to measure the polling baseline (benchmarks/embedded_wakeup.py).
    embedded_wakeup: bool = True

    # A dispatcher renews its job's lease every heartbeat_seconds (and notices a cancel
    # then); a lease not renewed for lease_seconds is reaped and the job rerun.
    lease_seconds: float = Field(default=30.0, gt=0)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0, le=1.0)
    # How long a claimed job may wait for its placement group before the attempt fails.
    gang_ready_seconds: float = Field(default=120.0, gt=0)
    # Logical CPUs of the local Ray that `server --embedded` starts. Ray's CPUs are
    # accounting units; more than the cores lets small RNN gangs share them.
    embedded_ray_cpus: int = Field(default=8, ge=1, le=1024)
    # Sweep controllers (one per dispatcher process) look for sweeps to advance this
    # often; a step holds its sweep's lease at most this long (it must outlive a step:
    # a GP ask over hundreds of trials takes seconds).
    sweep_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    sweep_step_lease_seconds: float = Field(default=60.0, gt=0)
    # Warm pool (workers.warm_pool): idle actors with torch imported that a
    # dispatcher keeps for the next CPU gangs, so a job starts without process
    # start-up; 0 turns it off (then every gang's actors are its own, named ones).
    warm_pool_size: int = Field(default=0, ge=0, le=256)
    warm_pool_idle_seconds: float = Field(default=300.0, gt=0)
    default_max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=20)

    max_request_bytes: int = Field(default=1_000_000, ge=1024)
    max_dataset_bytes: int = Field(default=50_000_000, ge=1024)

    bootstrap_admin_token: SecretStr | None = None

    @model_validator(mode="after")
    def _lease_outlives_a_missed_heartbeat(self) -> Self:
        # One late or failed beat (a slow transaction, a database hiccup) must not
        # cost the lease, or a healthy job is reaped and run twice.
        if self.lease_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                f"LAGTRAIN_LEASE_SECONDS ({self.lease_seconds:g}) must be at least twice "
                f"LAGTRAIN_HEARTBEAT_SECONDS ({self.heartbeat_seconds:g}): a lease must "
                "survive one missed heartbeat"
            )
        return self
