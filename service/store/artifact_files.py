"""The files in the artifacts location that rows name: every upload's and every
checkpoint's. A file no row names is an orphan (service.orphan_files)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.store.models import Checkpoint, Dataset


def named_uris(*, session: Session) -> list[str]:
    """Every dataset's and checkpoint's file URI. Read whole: a row per upload and per
    kept checkpoint (retention keeps a few a job) is strings enough for a lab's
    lifetime, and on PostgreSQL a read transaction has no block for a server cursor."""
    return [
        *session.scalars(select(Dataset.uri)),
        *session.scalars(select(Checkpoint.uri)),
    ]
