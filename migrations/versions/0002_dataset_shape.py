"""datasets.shape: a small JSON summary of each upload, taken when it is uploaded.

Why: a spec that does not fit its uploaded dataset (a CSV width that seq_len does not
divide, labels that are not non-negative integers, too few rows or characters for
the workers) must be a 422 at submit, never a failure on a worker. Submit checks the
spec against this summary (service.schemas.data_limits.check_data) without reading
the file: CSV {"rows", "columns", "integer_labels", "classes"}, text {"chars",
"distinct_chars", "two_distinct_within"}. Nullable: rows uploaded before this
revision keep NULL and are not checked at submit. Batch mode so that SQLite can
alter the table; downgrade drops the column.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("shape", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("shape")
