"""jobs.replica_cpus, jobs.replica_gpus: one replica's bundle, for the per-node fit.

Why: Ray places each bundle of a gang on one node, and the claim, the dispatcher's
too-large rule and the submit's capacity check compared only the gang's summed CPUs
and GPUs with the cluster's. A job whose replicas each want more than any node has
(2 GPUs each on nodes of 1) passed them all, was claimed, and failed "could not
place the gang" once per attempt, `gang_ready_seconds` each, holding the queue up
(a review, 2026-12-06). The per-node rules (service.schemas.node_fit) need a
replica's CPUs and GPUs, which only the spec held; the claim reads them in SQL.

Rows: the two columns of every job that may still be claimed (queued, running or
cancelling: the reaper can put a running job back in the queue) are filled from its
spec (distributed.cpus_per_worker and gpus_per_worker) by one UPDATE, in SQL so that
`alembic upgrade --sql` writes it too. Finished jobs keep NULL: nothing reads their
bundles, and rewriting every row of a large table would hold each row's lock (and
grow the table) for the upgrade's length — 4.7 s and 218 → 322 MB for 100,000 jobs
on PostgreSQL, measured by a review. A spec without the fields leaves NULL too. NULL
is judged by what is known (the totals, the memory estimate), as before. The columns
stay nullable for that, and because an older API process still running during a
rolling upgrade inserts jobs without them.

Downgrade drops the two columns (both databases drop a column in place: SQLite
3.35+, so jobs' AUTOINCREMENT and sequence are untouched).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_COLUMNS = {"replica_cpus": "cpus_per_worker", "replica_gpus": "gpus_per_worker"}


def _spec_number(field: str) -> str:
    # The context's dialect: `alembic upgrade --sql` (PostgreSQL) has no connection.
    if op.get_context().dialect.name == "sqlite":
        return f"json_extract(spec, '$.distributed.{field}')"
    return f"CAST(spec -> 'distributed' ->> '{field}' AS DOUBLE PRECISION)"


def upgrade() -> None:
    for column in _COLUMNS:
        op.add_column("jobs", sa.Column(column, sa.Float(), nullable=True))
    assignments = ", ".join(f"{c} = {_spec_number(f)}" for c, f in _COLUMNS.items())
    op.execute(f"UPDATE jobs SET {assignments} WHERE status IN ('queued', 'running', 'cancelling')")


def downgrade() -> None:
    for column in _COLUMNS:
        op.execute(f"ALTER TABLE jobs DROP COLUMN {column}")
