"""metrics.uploaded: the replicas whose upload the coordinator used in that round.

Why: DESIGN §11 adds `"uploaded": [ranks]` to every metric record (the dashboard's
upload raster draws it; an empty list means every replica skipped). It is a list,
not a number, so it cannot live in `values` (name -> number). Nullable: records
stored before this revision keep NULL, which the API shows as null ("not recorded"),
never as an empty list (which would claim every replica skipped). Adding a nullable
column needs no table rebuild on SQLite, but batch mode keeps both backends on one
code path; downgrade drops the column.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.add_column(sa.Column("uploaded", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("metrics") as batch:
        batch.drop_column("uploaded")
