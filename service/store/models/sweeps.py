"""The tables of hyper-parameter sweeps and their trials."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.store.models.base import IDS_NEVER_REUSED, Base, IdType, JobStatus

# A sweep's statuses are a job's (DESIGN §11): queued until its first trial job is
# submitted, cancelling until every trial job of a cancelled sweep has stopped.
SweepStatus = JobStatus


class TrialState(StrEnum):
    """Where a sweep trial stands. `pending`: its point is asked and stored, its job not
    submitted yet; `running`: its job is submitted and not finished. The other four
    are finished (they count against the budget and the sampler learns from them)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _in(values: type[StrEnum]) -> str:
    return "(" + ", ".join(f"'{v.value}'" for v in values) + ")"


class Sweep(Base):
    __tablename__ = "sweeps"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_sweeps_owner_idempotency_key"),
        Index("ix_sweeps_owner_id_id", "owner_id", "id"),
        Index("ix_sweeps_status", "status"),
        CheckConstraint(f"status IN {_in(SweepStatus)}", name="status"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    # Trial numbers of the best trial, or of the Pareto front (several objectives).
    best: Mapped[list[int]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # The step lease: one controller at a time advances the sweep, and every write of
    # a step presents step_token (fencing, as for a job's attempt).
    step_token: Mapped[str | None] = mapped_column(String(64))
    step_expires_at: Mapped[datetime | None]
    controller_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class SweepTrial(Base):
    __tablename__ = "sweep_trials"
    __table_args__ = (
        UniqueConstraint("sweep_id", "number", name="uq_sweep_trials_sweep_id_number"),
        CheckConstraint(f"state IN {_in(TrialState)}", name="state"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]]
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), unique=True
    )
    values: Mapped[list[float] | None] = mapped_column(JSON)
    # The first objective at the job's evaluation rounds {round: value} (a metric
    # record's 0-based round; the pruner counts round + 1, rounds done), for pruning;
    # metric_seq is the last metric record read into it.
    intermediate: Mapped[dict[str, Any]]
    metric_seq: Mapped[int] = mapped_column(Integer, default=0)
    # Optuna's per-trial system attributes (successive halving keeps its rungs there).
    system_attrs: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
