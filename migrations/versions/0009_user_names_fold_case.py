"""users: one user per name whatever its case (a unique index on lower(name),
uq_users_name_folded).

Why: names were unique only as written, so an admin could create `Alice` beside
`alice`: two accounts, two quotas and two shares for what the lab sees as one person,
and `?owner=Alice` listed nobody's jobs while `alice` had many. A name now names one
user however it is typed: the index refuses a second `ALICE`, and the store looks
users up by the folded name. Names are ASCII (the API's pattern), so lower() folds
alike on SQLite and PostgreSQL. The old exact-case unique constraint stays (implied
by the new index, and dropping it would rebuild the table on SQLite).

Rows: untouched. A database that already holds two names differing only in case
cannot take the index; the upgrade stops before creating it (the transaction rolls
back: the database keeps the revision it had) and names the pairs, so the operator can rename one
(`UPDATE users SET name = 'alice-2' WHERE id = 7`) and upgrade again; nothing is
merged or renamed by guess. `alembic upgrade --sql` cannot look at rows and emits
the index alone.

Downgrade drops the index; names are then unique only as written, as before 0009.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

INDEX = "uq_users_name_folded"


def _names_differing_in_case_only() -> list[list[tuple[int, str]]]:
    rows = op.get_bind().execute(sa.text("SELECT id, name FROM users ORDER BY id")).all()
    by_folded: dict[str, list[tuple[int, str]]] = {}
    for user_id, name in rows:
        by_folded.setdefault(name.lower(), []).append((user_id, name))
    return [group for group in by_folded.values() if len(group) > 1]


def upgrade() -> None:
    if not op.get_context().as_sql:
        clashes = _names_differing_in_case_only()
        if clashes:
            from service.store.migrate import MigrationBlocked

            shown = "; ".join(
                " and ".join(f"{name!r} (id {user_id})" for user_id, name in group)
                for group in clashes
            )
            raise MigrationBlocked(
                f"migration 0009 makes user names unique whatever their case, but these "
                f"users differ only in case: {shown}. Rename all but one of each "
                f"(UPDATE users SET name = '<new name>' WHERE id = <id>) and upgrade again; "
                f"nothing was changed"
            )
    op.create_index(INDEX, "users", [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="users")
