"""Index jobs (sweep_id, id) in place of jobs (sweep_id): a sweep's trial jobs are
listed newest first from the index, whenever the sweep ran.

Why: `GET /v1/jobs?sweep_id=N` (the sweep page's jobs, an admin's look at a sweep)
reads the sweep's jobs ordered by id, newest first, 50 at a time. Through
(sweep_id) alone PostgreSQL has them in no id order, so it either reads every trial
and sorts, or walks the primary key backwards from the newest job and filters: the
planner takes the walk for an admin, expecting the trials spread over the jobs, and
for a sweep that ran months ago it read every job since. A query-plan review at a
year's scale (PostgreSQL, 200,000 jobs, a sweep of 5,000 trials among the year's
first 10,000 jobs): an admin's first page 51 ms, 0.06 ms from this index
(benchmarks/sweep_listing_cost.py, docs/benchmarks.md). SQLite's (sweep_id) index
already ended in the rowid (= id): there the new index is the same one under a new
name. The new index serves everything the old one did (the sweeps' ON DELETE SET
NULL, a sweep's jobs), sweep_id being its first column, so the old one goes.

Rows: untouched; creating the index reads the table once. Downgrade puts
ix_jobs_sweep_id back and drops the new one: the listings stay right, and an
admin's page of an old sweep walks the jobs again.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_sweep_id_id", "jobs", ["sweep_id", "id"])
    op.drop_index("ix_jobs_sweep_id", table_name="jobs")


def downgrade() -> None:
    op.create_index("ix_jobs_sweep_id", "jobs", ["sweep_id"])
    op.drop_index("ix_jobs_sweep_id_id", table_name="jobs")
