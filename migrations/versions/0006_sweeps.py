"""Sweeps: the `sweeps` and `sweep_trials` tables and `jobs.sweep_id`.

Why: DESIGN §11 makes a hyperparameter sweep a first-class object whose trials are
ordinary jobs. Its whole state lives in lagtrain's own tables so that any controller
(one per dispatcher process) can continue it after a restart, and Optuna's own RDB
storage never touches this database (its tables and its `alembic_version` would
collide with ours, STACK-NOTES):

- sweeps: the validated sweep spec, status (CHECK, the six job statuses), the best
  trial numbers (or Pareto front), and the step lease (step_token, step_expires_at,
  controller_id): one controller at a time advances a sweep, and every write of a
  step presents the token, as a dispatcher presents a job's fencing token.
  (owner_id, idempotency_key) makes submissions idempotent, as for jobs.
- sweep_trials: one row per asked point, written *before* its job is submitted (a
  crash in between leaves a `pending` trial that the next step submits, never a lost
  point or a second job); (sweep_id, number) is unique; job_id is unique; the
  objective values, the intermediate values the pruner reads and Optuna's per-trial
  system attributes.
- jobs.sweep_id: the sweep a trial job belongs to, shown read-only on the job.

On SQLite adding a foreign key column to `jobs` rebuilds the table (batch mode, with
foreign keys off around it: migrations/env.py). Downgrade drops the column and both
tables (sweeps and their trials are lost; the trial jobs stay as plain jobs).

There is no 0005: this revision was written beside another issue's, which was to be
0005 and needed no migration in the end; 0006 follows 0004 and nothing is missing.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Written out, not imported: a migration keeps meaning what it meant when written.
SWEEP_STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
TRIAL_STATES = ("pending", "running", "complete", "pruned", "failed", "cancelled")


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", ID, primary_key=True),
        sa.Column("owner_id", ID, nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("request_sha256", sa.String(64), nullable=True),
        sa.Column("best", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("step_token", sa.String(64), nullable=True),
        _ts("step_expires_at", nullable=True),
        sa.Column("controller_id", sa.String(100), nullable=True),
        _ts("created_at"),
        _ts("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sweeps"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_sweeps_owner_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_sweeps_owner_idempotency_key"),
        sa.CheckConstraint(f"status IN {_in(SWEEP_STATUSES)}", name=op.f("ck_sweeps_status")),
    )
    op.create_index("ix_sweeps_owner_id_id", "sweeps", ["owner_id", "id"])
    op.create_index("ix_sweeps_status", "sweeps", ["status"])

    op.create_table(
        "sweep_trials",
        sa.Column("id", ID, primary_key=True),
        sa.Column("sweep_id", ID, nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("job_id", ID, nullable=True),
        sa.Column("values", sa.JSON(), nullable=True),
        sa.Column("intermediate", sa.JSON(), nullable=False),
        sa.Column("metric_seq", sa.Integer(), nullable=False),
        sa.Column("system_attrs", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sweep_trials"),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweeps.id"], name="fk_sweep_trials_sweep_id_sweeps", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_sweep_trials_job_id_jobs", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("sweep_id", "number", name="uq_sweep_trials_sweep_id_number"),
        sa.UniqueConstraint("job_id", name="uq_sweep_trials_job_id"),
        sa.CheckConstraint(f"state IN {_in(TRIAL_STATES)}", name=op.f("ck_sweep_trials_state")),
    )

    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("sweep_id", ID, nullable=True))
        batch.create_foreign_key(
            "fk_jobs_sweep_id_sweeps", "sweeps", ["sweep_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_jobs_sweep_id", ["sweep_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_sweep_id")
        batch.drop_constraint("fk_jobs_sweep_id_sweeps", type_="foreignkey")
        batch.drop_column("sweep_id")
    op.drop_table("sweep_trials")
    op.drop_index("ix_sweeps_status", table_name="sweeps")
    op.drop_index("ix_sweeps_owner_id_id", table_name="sweeps")
    op.drop_table("sweeps")
