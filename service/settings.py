"""Process settings: one object per process, built once and passed in (DESIGN §8)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from service.schemas.common import error_message
from service.schemas.cost import CostLimits
from service.schemas.datasets import UploadLimits
from service.schemas.defaults import DEFAULT_MAX_ATTEMPTS, DEFAULT_STORE_OUTAGE_SECONDS
from service.schemas.quota import QUOTA_MOST, QuotaDefaults

GIB = 1 << 30
MIB = 1 << 20
MIN_BOOTSTRAP_TOKEN_CHARS = 32
_QUOTA = QuotaDefaults()


# The TCP port range, for the setting and the `server --port` option alike.
MAX_PORT = 65535
# The longest any duration setting may be: 30 days. Beyond it a value meant as "for
# ever" (or inf) overflowed a timedelta in the heartbeat or the claim, failing every
# job instead of refusing the setting at start.
MOST_SECONDS = 30 * 24 * 3600


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LAGTRAIN_", extra="ignore", allow_inf_nan=False)

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
    port: int = Field(default=8000, ge=1, le=MAX_PORT)
    # uvicorn worker processes of `lagtrain server` (each has its own connection pool
    # and SSE feeds); `server --embedded` always runs one, beside its dispatcher.
    web_workers: int = Field(default=1, ge=1, le=64)
    # With web_workers > 1: a worker whose event loop leaves the supervisor's ping
    # unanswered this long is hung (a blocking call on the loop, a stopped process);
    # the supervisor kills it and starts another (service/web_workers.py).
    web_worker_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # `server --embedded`: the submit route wakes the in-process dispatcher at once.
    # Off only to measure the polling baseline (benchmarks/embedded_wakeup.py).
    embedded_wakeup: bool = True
    # Database connections each server process keeps open (and as many more at peak).
    # At least the requests it serves at once: past the pool, every request opens
    # and closes a connection (a PostgreSQL backend each time).
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    # uvicorn's line per request on stderr. A busy API (hundreds of submits a second)
    # can turn it off: the audit log still records who did what (docs/operations.md).
    access_log: bool = True

    # A dispatcher renews its job's lease every heartbeat_seconds (and notices a cancel
    # then); a lease not renewed for lease_seconds is reaped and the job rerun.
    lease_seconds: float = Field(default=30.0, gt=0, le=MOST_SECONDS)
    heartbeat_seconds: float = Field(default=5.0, gt=0, le=MOST_SECONDS)
    poll_seconds: float = Field(default=1.0, gt=0, le=1.0)
    # How long each step of a claimed job's gang start may take (its placement group,
    # its actors' set-up, the resume) before the attempt fails, to be retried.
    gang_ready_seconds: float = Field(default=120.0, gt=0, le=MOST_SECONDS)
    # Logical CPUs of the local Ray that `server --embedded` starts. Ray's CPUs are
    # accounting units; more than the cores lets small RNN gangs share them.
    embedded_ray_cpus: int = Field(default=8, ge=1, le=1024)
    # Sweep controllers (one per dispatcher process) look for sweeps to advance this
    # often; a step holds its sweep's lease at most this long (it must outlive a step:
    # a GP ask over hundreds of trials takes seconds).
    sweep_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    sweep_step_lease_seconds: float = Field(default=60.0, gt=0, le=MOST_SECONDS)
    # Warm pool (workers.warm_pool): idle actors with torch imported that a
    # dispatcher keeps for the next CPU gangs, so a job starts without process
    # start-up; 0 turns it off (then every gang's actors are its own, named ones).
    warm_pool_size: int = Field(default=0, ge=0, le=256)
    warm_pool_idle_seconds: float = Field(default=300.0, gt=0, le=MOST_SECONDS)
    # Riding through store outages (docs/reliability.md): a running job keeps training
    # while its writes are retried; it gives up after this long, or once this many
    # events wait to be written. The same bound holds for an outage of the artifacts
    # location: a checkpoint write that fails (an OSError: NFS, a full disk) is retried
    # this long, the rounds waiting, before the attempt fails (workers.checkpoint_write).
    store_outage_seconds: float = Field(default=DEFAULT_STORE_OUTAGE_SECONDS, gt=0, le=MOST_SECONDS)
    store_buffer_events: int = Field(default=100_000, ge=1)
    # A queued job fails as unschedulable only above the largest cluster total seen
    # over this window, or above the operator's ceiling where set (workers/capacity.py).
    capacity_window_seconds: float = Field(default=600.0, gt=0, le=MOST_SECONDS)
    capacity_ceiling_cpus: float | None = Field(default=None, ge=0)
    capacity_ceiling_gpus: float | None = Field(default=None, ge=0)
    # A running job whose gang sends nothing (no round's record, no checkpoint) for
    # this long has stalled — a replica or the driver hung without dying, which Ray
    # does not see: the attempt fails (retryable) and the gang is killed, instead of
    # holding its CPUs/GPUs until max_job_hours. 0 turns the watchdog off. Generous:
    # it must outlast the slowest round plus an evaluation and a checkpoint.
    stall_seconds: float = Field(default=1800.0, ge=0, le=MOST_SECONDS)
    # SIGTERM to `lagtrain worker` drains it: running jobs checkpoint after their
    # current round and go back to the queue; the process exits within this bound.
    drain_seconds: float = Field(default=25.0, gt=0, le=600)
    # `lagtrain worker` waits this long for the Ray head (e.g. while it restarts).
    ray_connect_seconds: float = Field(default=300.0, ge=0, le=MOST_SECONDS)
    default_max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1, le=20)

    max_request_bytes: int = Field(default=1_000_000, ge=1024)
    max_dataset_bytes: int = Field(default=50_000_000, ge=1024)

    # At least MIN_BOOTSTRAP_TOKEN_CHARS characters: it is an admin's password.
    bootstrap_admin_token: SecretStr | None = None

    # ---- limits and quotas (docs/operations.md). The cost model's limits: a spec
    # whose estimated memory per replica or for the coordinator is above these is a
    # 422 at submit; the estimate is also each Ray bundle's `memory` reservation.
    max_replica_memory_bytes: int = Field(default=4 * GIB, ge=MIB)
    max_coordinator_memory_bytes: int = Field(default=8 * GIB, ge=MIB)
    max_vocabulary: int = Field(default=10_000, ge=2, description="char_lm distinct characters")
    max_csv_columns: int = Field(default=10_000, ge=2)
    # Per-user quota defaults (a user's own quota, set by an admin, overrides each).
    default_max_running_jobs: int = Field(
        default=_QUOTA.max_running_jobs, ge=0, le=QUOTA_MOST["max_running_jobs"]
    )
    default_max_queued_jobs: int = Field(
        default=_QUOTA.max_queued_jobs, ge=0, le=QUOTA_MOST["max_queued_jobs"]
    )
    default_max_cpus: float = Field(default=_QUOTA.max_cpus, ge=0, le=QUOTA_MOST["max_cpus"])
    default_max_gpus: float = Field(default=_QUOTA.max_gpus, ge=0, le=QUOTA_MOST["max_gpus"])
    default_max_storage_bytes: int = Field(
        default=_QUOTA.max_storage_bytes, ge=0, le=QUOTA_MOST["max_storage_bytes"]
    )
    default_max_job_hours: float = Field(
        default=_QUOTA.max_job_hours, gt=0, le=QUOTA_MOST["max_job_hours"]
    )
    # Fair share counts each user's jobs that run or finished within this window,
    # per unit of share weight (service.store.queue_order); 0: running jobs only.
    fair_share_window_seconds: float = Field(default=3600.0, ge=0, le=MOST_SECONDS)
    # The first job in the claim order that a dispatcher's cluster could run, once it
    # has waited this long for room, holds that cluster: it starts there first once it
    # fits, and another job only if it leaves free what it waits for
    # (service.store.claim_candidate); before, smaller jobs start past it. 0: nothing
    # ever passes a job waiting for room; the most (30 days): in effect never held.
    hold_room_after_seconds: float = Field(default=600.0, ge=0, le=MOST_SECONDS)
    # Checkpoint retention: the newest K of each job (and always its final one).
    checkpoints_keep: int = Field(default=5, ge=1)
    max_tokens_per_user: int = Field(default=20, ge=1)
    max_streams_per_user: int = Field(default=8, ge=1)
    # An open SSE stream re-checks its token (revoked, expired, user disabled) this often.
    stream_auth_recheck_seconds: float = Field(default=15.0, gt=0, le=30.0)

    def quota_defaults(self) -> QuotaDefaults:
        return QuotaDefaults(
            max_running_jobs=self.default_max_running_jobs,
            max_queued_jobs=self.default_max_queued_jobs,
            max_cpus=self.default_max_cpus,
            max_gpus=self.default_max_gpus,
            max_storage_bytes=self.default_max_storage_bytes,
            max_job_hours=self.default_max_job_hours,
        )

    def fair_share_window(self) -> timedelta:
        return timedelta(seconds=self.fair_share_window_seconds)

    def hold_room_after(self) -> timedelta:
        return timedelta(seconds=self.hold_room_after_seconds)

    def cost_limits(self) -> CostLimits:
        return CostLimits(
            replica_memory_bytes=self.max_replica_memory_bytes,
            coordinator_memory_bytes=self.max_coordinator_memory_bytes,
            vocabulary=self.max_vocabulary,
        )

    def upload_limits(self) -> UploadLimits:
        return UploadLimits(vocabulary=self.max_vocabulary, csv_columns=self.max_csv_columns)

    @field_validator("database_url")
    @classmethod
    def _database_url_parses(cls, value: str) -> str:
        examples = (
            "sqlite:///./.lagtrain/lagtrain.db or "
            "postgresql+psycopg://user:password@host:5432/lagtrain"
        )
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"not a database URL; e.g. {examples}") from None
        # The stores lagtrain is built and tested on, with the drivers it installs: any
        # other URL failed later, as a traceback of a missing module.
        if url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
            raise ValueError(
                f"lagtrain runs on SQLite or PostgreSQL through psycopg 3, not "
                f"{url.drivername!r}; e.g. {examples}"
            )
        return value

    @field_validator("bootstrap_admin_token", mode="before")
    @classmethod
    def _empty_bootstrap_token_is_unset(cls, value: object) -> object:
        # docker-compose.yml passes ${LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN:-}, empty where it
        # is not set (a GPU host that runs only `worker` need not hold the admin's
        # password): empty means "not configured", so a first start makes a token.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("bootstrap_admin_token")
    @classmethod
    def _bootstrap_token_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        check_bootstrap_token(value)
        return value

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


def check_bootstrap_token(value: SecretStr | None) -> None:
    if value is not None and len(value.get_secret_value()) < MIN_BOOTSTRAP_TOKEN_CHARS:
        raise ValueError(
            f"LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN must be at least {MIN_BOOTSTRAP_TOKEN_CHARS} "
            "characters (it is the admin's password); generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )


ENV_PREFIX = "LAGTRAIN_"
# Never echoed in an error: an admin's password, a URL that may carry one.
_SECRET_SETTINGS = frozenset({"bootstrap_admin_token", "database_url"})


def settings_problems(exc: ValidationError) -> list[str]:
    """One line per invalid setting of a failed `Settings()`, naming the environment
    variable it came from (pydantic names the field: `port`, not LAGTRAIN_PORT) and,
    unless it is a secret, the value it was given."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error_message(error)
        if not field:  # a check across settings: its message names them
            lines.append(message)
            continue
        name = ENV_PREFIX + field.upper() if field in Settings.model_fields else _aliases(field)
        if field not in _SECRET_SETTINGS and isinstance(error.get("input"), str):
            name = f"{name}={error['input']!r}"
        lines.append(message if message.startswith(name) else f"{name}: {message}")
    return lines


def _aliases(name: str) -> str:
    """The variables a setting read under aliases comes from (pydantic names the
    first, whichever was set): "RAY_AUTH_MODE or LAGTRAIN_RAY_AUTH_MODE"."""
    for info in Settings.model_fields.values():
        choices = info.validation_alias
        if isinstance(choices, AliasChoices) and name in choices.choices:
            return " or ".join(str(c) for c in choices.choices)
    return name
