"""Index jobs (finished_at): fair share counts the jobs each owner ran lately.

Why: the claim ordered owners by their running jobs per unit of share weight. On a
cluster where one gang fits at a time, every claim came just after the last job
ended, so every owner had 0 running, the weights tied and submit time decided: a
user with share 2 waited behind another's 19 queued jobs (a walkthrough, 2026-12-05),
which DESIGN §4's "least recent usage per user, weighted" rules out. Fair share now
counts each owner's jobs that hold a lease or finished within the last
LAGTRAIN_FAIR_SHARE_WINDOW_SECONDS (service.store.queue_order.recent_per_owner). The
finished part is a range over finished_at, read at every claim and every explain;
this index serves it (and `?finished_before=` listings, which filtered finished_at
after walking another index).

Rows: untouched; creating the index reads the table once. Downgrade drops it: the
queries stay right, a claim then reads every job to count the recent ones.

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
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_finished_at", table_name="jobs")
