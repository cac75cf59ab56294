"""The tables of users, tokens, jobs (attempts, events, metrics, checkpoints),
datasets, the audit log and dispatchers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.store.models.base import IDS_NEVER_REUSED, Base, IdType, JobStatus


class User(Base):
    __tablename__ = "users"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # "user" | "admin"
    share_weight: Mapped[float] = mapped_column(Float, default=1.0)
    # Quotas (migration 0007): NULL = the server's default (settings).
    max_running_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer)
    max_cpus: Mapped[float | None] = mapped_column(Float)
    max_gpus: Mapped[float | None] = mapped_column(Float)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_job_hours: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]
    # Set by an admin: every token of the user is refused while set.
    disabled_at: Mapped[datetime | None]


# One user per name whatever its case (migration 0009): "Alice" is alice. Names are
# ASCII (USER_NAME_PATTERN), so lower() folds alike on SQLite and PostgreSQL.
Index("uq_users_name_folded", func.lower(User.name), unique=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # NULL = never


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_status_priority_created", "status", "priority", "created_at"),
        Index("ix_jobs_owner_id_id", "owner_id", "id"),
        # An admin's status filter, newest first (migration 0010).
        Index("ix_jobs_status_id", "status", "id"),
        # The claim counts each owner's running jobs (quota and fair share).
        Index("ix_jobs_owner_id_status", "owner_id", "status"),
        # ck_jobs_status (migration 0003): only the lifecycle writes status, and the
        # database refuses anything outside the six, whoever writes.
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s.value}'" for s in JobStatus) + ")", name="status"
        ),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]]
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # The sweep whose trial this job is (migration 0006); NULL for a job submitted alone.
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), index=True
    )
    # Gang size in Ray logical resources, for the claim's "fits" test.
    cpus_required: Mapped[float] = mapped_column(Float)
    gpus_required: Mapped[float] = mapped_column(Float, default=0.0)
    # One replica's bundle (service.schemas.gang), for the per-node fit
    # (service.schemas.node_fit). NULL (judged by what else is known): jobs finished
    # before migration 0014, specs without the fields, and rows an older release
    # wrote during a rolling upgrade.
    replica_cpus: Mapped[float | None] = mapped_column(Float)
    replica_gpus: Mapped[float | None] = mapped_column(Float)
    # The cost model's estimate (service.schemas.cost), reserved as each Ray bundle's
    # memory; NULL for jobs submitted before migration 0007.
    replica_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    coordinator_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    # The current attempt's lease; every write after claim must present lease_token.
    lease_token: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    dispatcher_id: Mapped[str | None] = mapped_column(String(100))
    progress_round: Mapped[int] = mapped_column(Integer, default=0)
    progress_rounds: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobAttempt(Base):
    __tablename__ = "job_attempts"
    __table_args__ = (
        UniqueConstraint("job_id", "number", name="uq_job_attempts_job_id_number"),
        # Fair share counts each owner's runs that ended lately (migration 0012).
        Index("ix_job_attempts_ended_at", "ended_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    fencing_token: Mapped[str] = mapped_column(String(64), unique=True)
    dispatcher_id: Mapped[str] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime]
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)


class JobEvent(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)


class Metric(Base):
    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="uq_metrics_job_id_seq"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime]
    values: Mapped[dict[str, Any]]
    # Ranks whose upload the round used (DESIGN §11); NULL before migration 0004.
    uploaded: Mapped[list[int] | None] = mapped_column(JSON)


class AuditEvent(Base):
    """Who did what (DESIGN §11). actor_id is no foreign key: the log outlives users."""

    __tablename__ = "audit_events"
    # The listing's filters, each paged by id (migration 0010).
    __table_args__ = (
        Index("ix_audit_events_action_id", "action", "id"),
        Index("ix_audit_events_target_id", "target", "id"),
        Index("ix_audit_events_actor_id_id", "actor_id", "id"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    # "sweep:<id> for <role>:<name>" reaches 136 characters (migration 0013).
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]]


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(8))  # "text" | "csv"
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    # Summary taken at upload (service.schemas.data_limits.CsvShape / TextShape) that
    # submit checks specs against; NULL for rows uploaded before 0002 (not checked).
    shape: Mapped[dict[str, Any] | None]


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (
        UniqueConstraint("job_id", "round", name="uq_checkpoints_job_id_round"),
        # A job's checkpoints, and the storage quota's sum read from the index alone
        # (service.store.stored_bytes; migration 0015).
        Index("ix_checkpoints_job_id_bytes", "job_id", "bytes"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    round: Mapped[int] = mapped_column(Integer)
    # The metric seq written up to this checkpoint: a resumed attempt continues after it.
    seq: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class Dispatcher(Base):
    __tablename__ = "dispatchers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    # Set when the dispatcher exited cleanly (migration 0011); NULL while it runs, and
    # for one that died without saying so (judged by last_seen_at alone).
    stopped_at: Mapped[datetime | None]
    resources: Mapped[dict[str, Any]]
