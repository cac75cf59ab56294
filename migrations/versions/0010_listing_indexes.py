"""Indexes for the listings' filters: jobs (status, id) and audit_events (action, id),
(target, id), (actor_id, id).

Why: on a lab-sized copy (20 000 jobs, 1 000 000 audit rows) an admin's
`GET /v1/jobs?status=succeeded` read and sorted every succeeded job on SQLite
(ix_jobs_status_priority_created finds them, then a temporary B-tree orders them by
id: 51 ms, 242 ms under load; with (status, id) the page is read in order, 0.1 ms);
the audit log had only its primary key, so `?target=job:42`, `?action=user.disabled`
and `?actor_id=7` scanned the whole table (98 to 284 ms median at a million rows, p95
about a second; with these indexes well under a millisecond). Each index ends in id
because every listing pages by id (newest first or oldest first). A prefix filter
(`?action=job.`) still reads the log in id order: its LIKE uses no index on either
database, and a range (`>= 'job.' AND < 'job/'`) would depend on PostgreSQL's
collation, which a lab's database may not have as C.

Rows: untouched. Creating the indexes reads each table once. Nothing else changes:
the queries are the same, the planner picks the new indexes.

Downgrade drops the four indexes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_jobs_status_id": ("jobs", ["status", "id"]),
    "ix_audit_events_action_id": ("audit_events", ["action", "id"]),
    "ix_audit_events_target_id": ("audit_events", ["target", "id"]),
    "ix_audit_events_actor_id_id": ("audit_events", ["actor_id", "id"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
