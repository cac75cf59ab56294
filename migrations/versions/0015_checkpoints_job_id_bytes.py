"""Index checkpoints (job_id, bytes) in place of checkpoints (job_id): the storage
quota's sum reads a user's checkpoints from the index alone.

Why: every submit and upload sums the bytes of the user's checkpoints (the storage
quota, service.store.stored_bytes). A query-plan review at a year's scale (202,100
jobs, 1,000,500 checkpoints, PostgreSQL) found that sum planned as a scan of every
checkpoint, ≈ 300 ms a submit. The sum now goes from the owner's jobs to their
checkpoints by job_id; through (job_id) alone it still read one heap page per
checkpoint, scattered over the table (a user's checkpoints are written among
everyone's): 73 ms for a user with 20,500 checkpoints. With the bytes in the index
it is an index-only scan: 13.5 ms (benchmarks/storage_standing.py,
docs/benchmarks.md).
The new index serves everything the old one did (the jobs' ON DELETE CASCADE, a
job's checkpoints), job_id being its first column, so the old one goes.

Rows: untouched; creating the index reads the table once. Downgrade puts
ix_checkpoints_job_id back and drops the new one: the sums stay right, and read the
heap again.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_checkpoints_job_id_bytes", "checkpoints", ["job_id", "bytes"])
    op.drop_index("ix_checkpoints_job_id", table_name="checkpoints")


def downgrade() -> None:
    op.create_index("ix_checkpoints_job_id", "checkpoints", ["job_id"])
    op.drop_index("ix_checkpoints_job_id_bytes", table_name="checkpoints")
