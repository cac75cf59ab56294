"""Shared-lab safety: per-user quotas and disabling, token expiry, each job's
memory estimate, and the audit log (issue 8, DESIGN §11).

Why: one column per problem the audit found (issue 8):
- users.disabled_at: an admin locks a user out at once (every token refused);
  NULL = enabled.
- users.max_queued_jobs, max_cpus, max_gpus, max_storage_bytes, max_job_hours: the
  quotas besides max_running_jobs. NULL means "the server's default" (settings), so
  changing a default reaches every user who has no quota of their own. The meaning
  of a NULL max_running_jobs changes the same way: it was "unlimited" and is now the
  server's (finite) default; an admin who wants a higher cap sets one.
- api_tokens.expires_at: tokens may be issued for n days; NULL = no expiry (tokens
  issued before this revision keep working).
- jobs.replica_memory_bytes, jobs.coordinator_memory_bytes: the cost model's
  estimate at submit, which the dispatcher reserves as each Ray bundle's `memory`.
  NULL for jobs submitted before (they reserve no memory, as before).
- audit_events: who did what (users, tokens, quotas, jobs, datasets). actor_id is
  not a foreign key: the log outlives the users it names.

Adding nullable columns needs no table rebuild; batch mode keeps both backends on
one code path. Downgrade drops them (quotas and the audit log are lost).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("max_queued_jobs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_cpus", sa.Float(), nullable=True))
        batch.add_column(sa.Column("max_gpus", sa.Float(), nullable=True))
        batch.add_column(sa.Column("max_storage_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("max_job_hours", sa.Float(), nullable=True))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("replica_memory_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("coordinator_memory_bytes", sa.BigInteger(), nullable=True))
    op.create_table(
        "audit_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )


def downgrade() -> None:
    op.drop_table("audit_events")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("coordinator_memory_bytes")
        batch.drop_column("replica_memory_bytes")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("users") as batch:
        for column in (
            "max_job_hours",
            "max_storage_bytes",
            "max_gpus",
            "max_cpus",
            "max_queued_jobs",
            "disabled_at",
        ):
            batch.drop_column(column)
