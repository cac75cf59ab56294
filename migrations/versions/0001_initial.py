"""Initial schema: users, tokens, jobs and everything a job owns, dispatchers.

Why: lagtrain's store (DESIGN §3-4) starts with these tables, written out by hand to
match service/store/models.py exactly (tests/migrations compares them):

- users: who may submit; share_weight and max_running_jobs drive fair share and quota.
- api_tokens: bearer tokens, stored only as SHA-256, revocable one by one.
- jobs: one row per submitted JobSpec; status is written only by the lifecycle
  module; lease_token/lease_expires_at are the current attempt's fencing lease;
  cpus_required/gpus_required let the single-statement claim test that the gang
  fits; (owner_id, idempotency_key) makes submissions idempotent.
- job_attempts: one row per claim, with its fencing token and how it ended (a lost
  lease, a failure, success), so retries are auditable.
- job_events: the append-only status history (who, when, from, to, why) that the
  SSE stream and `explain` read.
- metrics: per-round metric records; (job_id, seq) is unique so a re-sent batch is
  idempotent and seq never repeats across attempts.
- datasets: user uploads referenced from specs as upload:<id>.
- checkpoints: one per (job, round), with the metric seq it covers, so a requeued
  attempt resumes from the newest one.
- dispatchers: the workers that claim jobs and the Ray resources they see
  (/v1/cluster).

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Must match service.store.models: BIGINT ids on PostgreSQL, INTEGER (rowid) on SQLite.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("share_weight", sa.Float(), nullable=False),
        sa.Column("max_running_jobs", sa.Integer(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", ID, primary_key=True),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        _ts("last_used_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_api_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("token_sha256", name="uq_api_tokens_token_sha256"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])

    op.create_table(
        "jobs",
        sa.Column("id", ID, primary_key=True),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("cpus_required", sa.Float(), nullable=False),
        sa.Column("gpus_required", sa.Float(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_sha256", sa.String(64), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(64), nullable=True),
        _ts("lease_expires_at", nullable=True),
        sa.Column("dispatcher_id", sa.String(100), nullable=True),
        sa.Column("progress_round", sa.Integer(), nullable=False),
        sa.Column("progress_rounds", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_jobs_owner_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
    )
    # The claim scans queued jobs in (priority, submit time) order.
    op.create_index("ix_jobs_status_priority_created", "jobs", ["status", "priority", "created_at"])
    # A user's job list, newest first, paged by id.
    op.create_index("ix_jobs_owner_id_id", "jobs", ["owner_id", "id"])
    # The claim counts each owner's running jobs (quota and fair share).
    op.create_index("ix_jobs_owner_id_status", "jobs", ["owner_id", "status"])

    op.create_table(
        "job_attempts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("fencing_token", sa.String(64), nullable=False),
        sa.Column("dispatcher_id", sa.String(100), nullable=False),
        _ts("lease_expires_at"),
        _ts("started_at"),
        _ts("ended_at", nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_attempts"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_attempts_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "number", name="uq_job_attempts_job_id_number"),
        sa.UniqueConstraint("fencing_token", name="uq_job_attempts_fencing_token"),
    )
    op.create_index("ix_job_attempts_job_id", "job_attempts", ["job_id"])

    op.create_table(
        "job_events",
        sa.Column("id", ID, primary_key=True),
        sa.Column("job_id", ID, nullable=False),
        _ts("at"),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_job_events_job_id_jobs", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_job_events_job_id", "job_events", ["job_id"])

    op.create_table(
        "metrics",
        sa.Column("id", ID, primary_key=True),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        _ts("time"),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_metrics"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_metrics_job_id_jobs", ondelete="CASCADE"
        ),
        # Also the index for reading a job's metrics in seq order.
        sa.UniqueConstraint("job_id", "seq", name="uq_metrics_job_id_seq"),
    )

    op.create_table(
        "datasets",
        sa.Column("id", ID, primary_key=True),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_datasets_owner_id_users", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_datasets_owner_id", "datasets", ["owner_id"])

    op.create_table(
        "checkpoints",
        sa.Column("id", ID, primary_key=True),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_checkpoints"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_checkpoints_job_id_jobs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "round", name="uq_checkpoints_job_id_round"),
    )
    op.create_index("ix_checkpoints_job_id", "checkpoints", ["job_id"])

    op.create_table(
        "dispatchers",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        _ts("started_at"),
        _ts("last_seen_at"),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dispatchers"),
    )


def downgrade() -> None:
    # Reverse dependency order; dropping a table drops its indexes. All data is lost.
    for table in (
        "dispatchers",
        "checkpoints",
        "datasets",
        "metrics",
        "job_events",
        "job_attempts",
        "jobs",
        "api_tokens",
        "users",
    ):
        op.drop_table(table)
