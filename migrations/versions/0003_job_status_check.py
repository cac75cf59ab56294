"""jobs.status: a CHECK constraint (ck_jobs_status) allowing only the six statuses.

Why: DESIGN §3 names six statuses, and service.store.lifecycle.transition is the only
code that writes jobs.status; the constraint makes the database refuse anything else
whoever writes (a hand-made UPDATE, a future bug), so the API, the claim and the
reaper never meet a status they do not know. Existing rows are untouched: the store
has only ever written these six (an upgrade over a row with another value fails
rather than guess). SQLite cannot add a constraint to a table in place, so batch
mode rebuilds `jobs`, copying its rows; migrations/env.py turns SQLite's foreign keys
off around migrations, so dropping the old table does not cascade into the tables
that reference jobs (attempts, events, metrics, checkpoints). PostgreSQL adds and
drops the constraint in place. Downgrade removes the constraint and keeps every row.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Written out, not imported: a migration keeps meaning what it meant when written.
STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.create_check_constraint(
            op.f("ck_jobs_status"), "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")"
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_status"), type_="check")
