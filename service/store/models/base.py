"""The store's foundations: the declarative base and its naming convention, id and
UTC datetime column types, the job statuses (defined with the API's schema) and which
hold a lease, and helpers every model module shares."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    Table,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Re-exported: the store's code and its tests know them as the models'.
from service.schemas.jobs import TERMINAL as TERMINAL
from service.schemas.jobs import JobStatus as JobStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Integer primary keys that autoincrement on both SQLite (INTEGER) and PostgreSQL.
IdType = BigInteger().with_variant(Integer(), "sqlite")

# Table options of every table whose ids users or the audit log see (a job, sweep,
# dataset, checkpoint, user, token or audit event id): such an id is never handed
# out again once its row is deleted. PostgreSQL's sequences never reuse a value; a
# SQLite `INTEGER PRIMARY KEY` takes max(id) + 1, so deleting the newest upload would
# give its id to the next one (`upload:4` in an old spec, `dataset:4` in the audit
# log, naming another object). AUTOINCREMENT keeps the highest id ever used in
# sqlite_sequence instead (migration 0008). Tables whose ids stay internal (attempts,
# events, metrics, trials) keep the cheaper plain rowid.
IDS_NEVER_REUSED: dict[str, Any] = {"sqlite_autoincrement": True}


def utcnow() -> datetime:
    return datetime.now(UTC)


# A dispatcher holds the job's lease (and an open attempt row) in these.
ACTIVE: frozenset[JobStatus] = frozenset({JobStatus.RUNNING, JobStatus.CANCELLING})


def json_safe(value: Any) -> Any:
    """`value` with every NaN/inf float (at any depth of dicts and lists) made null:
    PostgreSQL's json type rejects them, and a diverged run produces them. Every
    measured value the store keeps in a JSON column (metric values, the run summary)
    goes through here."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends. SQLite keeps naive text, so values are
    converted to UTC on the way in (keeping text comparisons in SQL correct) and
    marked UTC on the way out; naive input is refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, datetime: UtcDateTime()}


def table_of(model: type[Base]) -> Table:
    """The model's Core table, typed as one (for single-statement UPDATE/INSERT)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
