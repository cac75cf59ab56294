"""Store tests start from empty tables and share a few builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedSpec
from service.store.db import transaction
from service.store.jobs import enqueue
from service.store.models import Job, User, utcnow

MakeUser = Callable[..., int]
Submit = Callable[..., int]


@pytest.fixture(autouse=True)
def _empty_tables(clean_db: None) -> None:
    """Every store test starts from empty tables."""


def minimal_spec(**overrides: Any) -> ResolvedSpec:
    data: dict[str, Any] = {
        "task": {"kind": "adding"},
        "distributed": {"workers": 1, "cpus_per_worker": 1},
        "schedule": {"rounds": 10},
    }
    data.update(overrides)
    return resolve(data)


@pytest.fixture
def make_user(session_factory: sessionmaker[Session]) -> MakeUser:
    """make_user(name, share_weight=1.0, max_running_jobs=None) -> user id."""

    def make(name: str, *, share_weight: float = 1.0, max_running_jobs: int | None = None) -> int:
        with transaction(session_factory) as session:
            user = User(
                name=name,
                role="user",
                share_weight=share_weight,
                max_running_jobs=max_running_jobs,
                created_at=utcnow(),
            )
            session.add(user)
            session.flush()
            return user.id

    return make


@pytest.fixture
def submit(session_factory: sessionmaker[Session]) -> Submit:
    """submit(owner_id, max_attempts=3, **spec overrides) -> job id (committed)."""

    def sub(owner_id: int, *, max_attempts: int = 3, **spec: Any) -> int:
        with transaction(session_factory) as session:
            job, _created = enqueue(
                session=session,
                owner_id=owner_id,
                spec=minimal_spec(max_attempts=max_attempts, **spec),
            )
            return job.id

    return sub


def load_job(session_factory: sessionmaker[Session], job_id: int) -> Job:
    with session_factory() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    assert job is not None
    return job
