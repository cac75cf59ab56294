"""Shapes shared by every API response: UTC timestamps and cursor pages; and the
canonical digest of a request body that an Idempotency-Key is held to."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, Field


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; the store only
    # ever writes UTC, so naive means UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        default=None, description="pass as ?cursor= for the next page; null on the last page"
    )


def request_sha256(body: BaseModel) -> str:
    """The digest an Idempotency-Key's retry must match: the validated body without
    the fields that equal their schema default, keys sorted. Bodies that mean the
    same hash the same (an omitted field, `{}` or an explicit default), and a field
    added to the schema later, or a default moved from a value to null, leaves the
    digest of a request that did not set it unchanged — a retry that spans a server
    upgrade is still the same request."""
    canonical = json.dumps(
        body.model_dump(mode="json", exclude_defaults=True), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
