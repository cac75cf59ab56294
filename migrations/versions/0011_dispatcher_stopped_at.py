"""dispatchers.stopped_at: when a dispatcher exited cleanly.

Why: `GET /v1/cluster` judged a dispatcher alive by last_seen_at alone, so one
stopped by SIGTERM (its drain finished) or by a normal exit read `alive: true` until
its lease timeout (lease_seconds) passed: operators restarting dispatchers saw
ghosts, and explain and the cluster's resources counted the free CPUs of a
dispatcher that was gone. A dispatcher now stamps stopped_at (by the database's
clock) as it exits; a stopped one is not alive whatever its last_seen_at says.

Nullable: rows written before this revision, every running dispatcher and one that
died without saying so (killed, crashed, host lost) keep NULL and are judged by
last_seen_at as before. Adding a nullable column needs no table rebuild on SQLite,
but batch mode keeps both backends on one code path (as 0004).

Downgrade drops the column and with it every stopped_at recorded: a stopped
dispatcher then reads alive again until its lease timeout passes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dispatchers") as batch:
        batch.add_column(sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dispatchers") as batch:
        batch.drop_column("stopped_at")
