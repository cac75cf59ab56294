"""SQLite: ids that users or the audit log see are never handed out again
(AUTOINCREMENT on users, api_tokens, jobs, sweeps, datasets, checkpoints and
audit_events). A no-op on PostgreSQL.

Why: a SQLite `INTEGER PRIMARY KEY` without AUTOINCREMENT takes max(id) + 1, so the
id of a deleted newest row comes back: after `DELETE /v1/datasets/4` the next upload,
maybe another user's, is `upload:4` again, an old job's spec naming `upload:4` points
at other data on re-run, and `GET /v1/audit?target=dataset:4` mixes two objects.
Datasets and checkpoints (retention, `DELETE /v1/jobs/{id}/checkpoints`) are deleted
today; users, tokens, jobs, sweeps and audit events are not, but their ids are shown
(responses, audit targets, list cursors and the audit feed's next_after_id), so they
get the same guarantee now, before a delete is added to the code (or a row is
deleted by hand, or by a cascade). PostgreSQL's sequences never reuse a value, so
both stores now agree. Tables whose ids stay internal (job_attempts, job_events,
metrics, sweep_trials) keep the plain rowid: metrics and events are written every
round, and AUTOINCREMENT costs a sqlite_sequence write per insert.

SQLite cannot add AUTOINCREMENT in place, so batch mode rebuilds each table (create
the copy, copy the rows with their ids, drop, rename), with foreign keys off around
it (migrations/env.py) so that dropping `jobs` or `users` cascades into nothing.
Indexes, unique, CHECK and foreign-key constraints are reflected and recreated.
Copying the rows with their ids sets sqlite_sequence to each table's current max id,
so every later id is above every id in use. What happened before this revision
is not recorded anywhere: if the newest rows were deleted before the upgrade, their
ids can still come back once, and an id reused before it stays as it is. The
primary key loses its pk_<table> name on SQLite (AUTOINCREMENT is declared on the
column, which carries no constraint name; nothing refers to it). The upgrade copies
these seven tables once (jobs, with its specs, is the largest).

Downgrade rebuilds the tables without AUTOINCREMENT and with the named key again,
keeping every row; ids are then reusable again, as before 0008.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Written out, not imported: a migration keeps meaning what it meant when written.
TABLES = ("users", "api_tokens", "jobs", "sweeps", "datasets", "checkpoints", "audit_events")


def _sqlite() -> bool:
    # The context's dialect: `alembic upgrade --sql` (PostgreSQL) has no connection.
    return bool(op.get_context().dialect.name == "sqlite")


def upgrade() -> None:
    if not _sqlite():
        return  # PostgreSQL: sequences never reuse ids; nothing to change.
    for table in TABLES:
        # The copy is created as `id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT`; the
        # rows go across with their ids, which sets the table's sqlite_sequence.
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    if not _sqlite():
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ) as batch:
            # The key as 0001 (0007 for audit_events) named it.
            batch.create_primary_key(op.f(f"pk_{table}"), ["id"])
