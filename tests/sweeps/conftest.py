"""Sweep tests: the real store (a migrated SQLite file and PostgreSQL) and real
controllers stepped by the test. Trial jobs are run by a stand-in dispatcher that
claims them and writes their metrics and final status through the store's own
dispatcher functions (the deliberate seam: what a job reports is the test's choice,
so the sampler's and pruner's inputs are exact)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.schemas.sweep_space import check_sweep
from service.schemas.sweeps import SweepSpec
from service.settings import Settings
from service.store import attempts
from service.store.attempts import ClaimedJob
from service.store.db import transaction
from service.store.metrics import MetricIn, append_metrics
from service.store.models import Job, JobStatus, Sweep, SweepTrial
from service.store.sweeps import create_sweep, request_cancel
from service.store.users import create_user
from workers.job_outcome import Progress, summary
from workers.sweeps.controller import SweepController

BASE: dict[str, Any] = {
    "task": {"kind": "lag_paper_linreg"},
    "distributed": {"workers": 1, "cpus_per_worker": 0.5},
    "schedule": {"rounds": 40, "eval_every": 10},
}


def sweep_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "s",
        "base": BASE,
        "parameters": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 0.5, "log": True}},
        "objectives": [{"metric": "optimality_gap", "direction": "minimize"}],
        "trials": 4,
        "parallel": 2,
        "sampler": "random",
        "seed": 0,
    }
    spec.update(overrides)
    return spec


@dataclass
class Lab:
    """A user, their sweeps, controllers, and a stand-in dispatcher for the trials."""

    sessions: sessionmaker[Session]
    settings: Settings
    owner_id: int
    claimed: dict[int, ClaimedJob] = field(default_factory=dict)

    def submit(self, **overrides: Any) -> int:
        checked = check_sweep(SweepSpec.model_validate(sweep_spec(**overrides)))
        with transaction(self.sessions) as session:
            sweep, _ = create_sweep(
                session=session, owner_id=self.owner_id, spec=checked.stored, name="s"
            )
            return sweep.id

    def cancel(self, sweep_id: int) -> None:
        """As the owner's POST /v1/sweeps/{id}/cancel does, in the store."""
        with transaction(self.sessions) as session:
            sweep = session.get(Sweep, sweep_id)
            assert sweep is not None
            request_cancel(session=session, sweep=sweep, actor="user:1")

    def controller(self, name: str = "c1", **settings: Any) -> SweepController:
        fast = self.settings.model_copy(update=settings)
        return SweepController(fast, self.sessions, controller_id=name)

    def sweep(self, sweep_id: int) -> Sweep:
        with self.sessions() as session:
            sweep = session.get(Sweep, sweep_id)
            assert sweep is not None
            return sweep

    def trials(self, sweep_id: int) -> list[SweepTrial]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(SweepTrial)
                    .where(SweepTrial.sweep_id == sweep_id)
                    .order_by(SweepTrial.number)
                )
            )

    def jobs(self, sweep_id: int) -> list[Job]:
        with self.sessions() as session:
            return list(
                session.scalars(select(Job).where(Job.sweep_id == sweep_id).order_by(Job.id))
            )

    def active_jobs(self, sweep_id: int) -> list[Job]:
        done = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
        return [j for j in self.jobs(sweep_id) if j.status not in done]

    def claim_all(self) -> list[ClaimedJob]:
        """Claim every queued job (as a dispatcher with room for all of them)."""
        new: list[ClaimedJob] = []
        while True:
            with transaction(self.sessions) as session:
                claimed = attempts.claim_next(
                    session=session,
                    dispatcher_id="stand-in",
                    lease_seconds=600,
                    free_cpus=1000,
                    free_gpus=0,
                )
            if claimed is None:
                return new
            self.claimed[claimed.job_id] = claimed
            new.append(claimed)

    def report(self, job_id: int, by_round: Mapping[int, Mapping[str, float]]) -> None:
        """Metric records for rounds 0..max(by_round) (values at the given rounds)."""
        claimed = self.claimed[job_id]
        with transaction(self.sessions) as session:
            job = session.get(Job, job_id)
            assert job is not None
            start = job.last_seq
            last = max(by_round)
            append_metrics(
                session=session,
                job_id=job_id,
                token=claimed.fencing_token,
                attempt=claimed.attempt,
                records=[
                    MetricIn(
                        seq=r + 1,
                        round=r,
                        values={"train_loss": 1.0, **by_round.get(r, {})},
                        uploaded=[0],
                    )
                    for r in range(start, last + 1)
                ],
            )

    def succeed(self, job_id: int, final: Mapping[str, float], **figures: float) -> None:
        """`figures`: summary figures beside the final metrics (bytes_saved_fraction)."""
        claimed = self.claimed[job_id]
        with transaction(self.sessions) as session:
            attempts.finish(
                session=session,
                job_id=job_id,
                token=claimed.fencing_token,
                summary={
                    "final_metrics": dict(final),
                    "uploads_saved_fraction": 0.5,
                    **figures,
                },
            )

    def fail(self, job_id: int, reason: str) -> None:
        claimed = self.claimed[job_id]
        with transaction(self.sessions) as session:
            attempts.fail(
                session=session,
                job_id=job_id,
                token=claimed.fencing_token,
                reason=reason,
                retryable=False,
            )

    def acknowledge_cancel(self, job_id: int) -> None:
        """As the dispatcher does: with the summary of the rounds reported (a job that
        ran rounds keeps one however it ends; None if it ran none)."""
        claimed = self.claimed[job_id]
        with transaction(self.sessions) as session:
            ran = summary(
                session,
                job_id=job_id,
                rounds=int(claimed.spec["schedule"]["rounds"]),
                progress=Progress(),  # read from the stored records
                attempt=claimed.attempt,
                wall_s=1.0,
            )
            attempts.acknowledge_cancel(
                session=session, job_id=job_id, token=claimed.fencing_token, summary=ran
            )


@pytest.fixture
def lab(
    session_factory: sessionmaker[Session], settings: Settings, clean_db: None
) -> Iterator[Lab]:
    """A user in empty tables (every lab test starts from empty tables)."""
    with transaction(session_factory) as session:
        user, _, _ = create_user(session=session, name="ada", role="user")
        owner_id = user.id
    yield Lab(sessions=session_factory, settings=settings, owner_id=owner_id)
