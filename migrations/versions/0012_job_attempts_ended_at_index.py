"""Index job_attempts (ended_at): fair share counts each owner's runs that ended lately.

Why: the claim ordered owners by their running jobs per unit of share weight. On a
cluster where one gang fits at a time, every claim came just after the last job
ended, so every owner had 0 running, the weights tied and submit time decided: a
user with share 2 waited behind another's 19 queued jobs (a walkthrough, 2026-12-05),
which DESIGN §4's "least recent usage per user, weighted" rules out. Fair share now
counts each owner's runs: jobs that hold a lease, and attempts that ended within the
last LAGTRAIN_FAIR_SHARE_WINDOW_SECONDS (service.store.queue_order.recent_per_owner)
— attempts, not finished jobs, so a job that failed and went back to the queue keeps
the turn it used. The ended part is a range over ended_at, read at every claim and
every explain; this index serves it.

Rows: untouched; creating the index reads the table once. Downgrade drops it: the
queries stay right, a claim then reads every attempt to count the recent ones.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_job_attempts_ended_at", "job_attempts", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_job_attempts_ended_at", table_name="job_attempts")
