"""audit_events.actor: VARCHAR(120) → VARCHAR(200).

Why: the actor of work done for a user is written "sweep:<id> for <role>:<name>"
(a sweep's trial jobs, its prunes), and a user's name may have 100 characters: from
a name of about 96 characters and a five-digit sweep id (four for an admin) the text
passed 120. SQLite keeps it whole (it does not enforce lengths); PostgreSQL refused
the row, the sweep's whole step rolled back, and that sweep never got a trial (a
review). The longest actor now written is 136 characters ("sweep:" + a 19-digit id
+ " for admin:" + 100); 200 leaves room and matches `audit_events.target`.

Rows: untouched. PostgreSQL widens a VARCHAR in place (no rewrite). SQLite cannot
alter a column's type, so batch mode rebuilds the table (its rows copied with their
ids, AUTOINCREMENT kept, as 0008 made it; indexes recreated): one copy of the audit
log at upgrade. The copy would set the table's sqlite_sequence to its largest id in
use; the old value is put back, so an id deleted from the end never comes back.

Downgrade cuts actors longer than 120 characters to their first 120 (the actor_id
column still names the user), then narrows the column back.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _sqlite() -> bool:
    # The context's dialect: `alembic upgrade --sql` (PostgreSQL) has no connection.
    return bool(op.get_context().dialect.name == "sqlite")


def _actor_type(to: int, was: int) -> None:
    if not _sqlite():
        op.alter_column(
            "audit_events",
            "actor",
            type_=sa.String(to),
            existing_type=sa.String(was),
            existing_nullable=False,
        )
        return
    sequence = sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'")
    handed_out = op.get_bind().execute(sequence).scalar()
    with op.batch_alter_table(
        "audit_events", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.alter_column(
            "actor", type_=sa.String(to), existing_type=sa.String(was), existing_nullable=False
        )
    if handed_out is not None:
        op.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'audit_events'"))
        op.execute(
            sa.text(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('audit_events', :seq)"
            ).bindparams(seq=handed_out)
        )


def upgrade() -> None:
    _actor_type(200, 120)


def downgrade() -> None:
    op.execute("UPDATE audit_events SET actor = substr(actor, 1, 120) WHERE length(actor) > 120")
    _actor_type(120, 200)
