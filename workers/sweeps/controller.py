"""The sweep controller: a thread in every dispatcher process (`lagtrain worker`,
`lagtrain server --embedded`) that advances active sweeps one step at a time.

A step holds the sweep's step lease (service.store.sweep_steps): several controllers
may poll the same sweeps, and exactly one advances each at a time. Every step starts
from the rows alone, so a controller that restarts, or another that takes over an
expired lease, continues where the last one stopped:

1. observe (one transaction): results of finished trial jobs, new intermediate values;
2. decide (no transaction; Optuna may take seconds): what to prune, and up to
   `parallel` minus the open trials' worth of new points — as many as a third of the
   step lease allows, the lease renewed between asks (the rest at the next step);
3. record the decisions (one transaction): the asked points become pending trials,
   and the sweep's best trials are computed again;
4. submit (one transaction): each pending trial's job, then settle the sweep's status.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import replace

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import StaleLease
from service.schemas.gang import gang_totals
from service.schemas.resolve import SpecError
from service.schemas.sweep_space import trial_spec
from service.schemas.sweeps import SweepSpec
from service.settings import Settings
from service.store import sweep_steps, trial_jobs
from service.store.db import read_transaction, transaction
from service.store.models import SweepStatus, TrialState
from service.store.quotas import gang_over_quota
from service.store.spec_checks import spec_problems
from service.store.sweep_steps import SweepSnapshot
from service.store.sweeps import OPEN_TRIAL
from workers.loop_errors import LoopErrors, store_unreachable
from workers.sweeps import study
from workers.sweeps.idle_sweeps import IdleSweeps
from workers.sweeps.readable_spec import UnreadableSpecs
from workers.sweeps.step_lease import StepLease

log = logging.getLogger(__name__)


class SweepController:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        controller_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.id = controller_id or f"{socket.gethostname()}-sweeps-{uuid.uuid4().hex[:8]}"
        self.stop_event = threading.Event()
        self._failing: dict[int, LoopErrors] = {}  # sweeps whose last step raised
        self._unreadable = UnreadableSpecs()  # sweeps whose spec this controller cannot read
        self.idle = IdleSweeps(sessions)  # sweeps whose last step could only watch

    def run_forever(self) -> None:
        log.info("sweep controller %s started", self.id)
        errors = LoopErrors(log, f"sweep controller {self.id}: poll")
        while not self.stop_event.is_set():
            try:
                self.poll()
                errors.succeeded()
            except Exception as exc:
                # A database hiccup must not end the controller: try again next poll.
                errors.failed(exc)
            self.stop_event.wait(self.settings.sweep_poll_seconds)
        log.info("sweep controller %s stopped", self.id)

    def stop(self) -> None:
        self.stop_event.set()

    def poll(self) -> int:
        """One step of every active sweep whose step lease is free; returns how many
        sweeps this controller stepped."""
        # A read: no SQLite write lock every poll (each second, per controller).
        with read_transaction(self.sessions) as session:
            sweep_ids = sweep_steps.active_sweep_ids(session=session)
        for ended in set(self._failing) - set(sweep_ids):
            del self._failing[ended]
        self._unreadable.keep_only(sweep_ids)
        self.idle.keep_only(sweep_ids)
        stepped = 0
        for sweep_id in sweep_ids:
            if self.stop_event.is_set():
                break
            try:
                if self.idle.unchanged(sweep_id):
                    continue
                stepped_now = self.step(sweep_id)
                stepped += stepped_now
            except Exception as exc:
                self.idle.not_stepped(sweep_id)
                if store_unreachable(exc):
                    raise  # an outage: the loop's one story (run_forever)
                # One sweep whose step fails (a bug, a row this version mishandles)
                # must not hold up the sweeps after it, every user's: it is tried
                # again at the next poll, its failures told as a story of its own.
                self._failures_of(sweep_id).failed(exc)
            else:  # recovered only once a step ran (not for a lease held elsewhere)
                if stepped_now:
                    self.idle.stepped(sweep_id)
                else:
                    self.idle.not_stepped(sweep_id)
                if stepped_now and (failing := self._failing.pop(sweep_id, None)) is not None:
                    failing.succeeded()
        return stepped

    def _failures_of(self, sweep_id: int) -> LoopErrors:
        if sweep_id not in self._failing:
            self._failing[sweep_id] = LoopErrors(
                log, f"sweep controller {self.id}: sweep {sweep_id}'s step"
            )
        return self._failing[sweep_id]

    def step(self, sweep_id: int) -> bool:
        """Advance one sweep if its step lease is free; False if another controller
        holds it, the sweep is no longer active, or this controller cannot read its
        stored spec."""
        with transaction(self.sessions) as session:
            token = sweep_steps.take_step(
                session=session,
                sweep_id=sweep_id,
                controller_id=self.id,
                lease_seconds=self.settings.sweep_step_lease_seconds,
            )
        if token is None:
            return False
        lease = StepLease(
            self.sessions,
            sweep_id,
            token,
            lease_seconds=self.settings.sweep_step_lease_seconds,
            taken_at=time.monotonic(),
        )
        try:
            return self._step(sweep_id, lease)
        except StaleLease:
            log.warning("sweep %s: step lease lost; another controller continues", sweep_id)
            self.idle.not_stepped(sweep_id)  # what it acted on is unknown
            return True
        finally:
            with transaction(self.sessions) as session:
                sweep_steps.release_step(session=session, sweep_id=sweep_id, token=token)

    def _step(self, sweep_id: int, lease: StepLease) -> bool:
        """One step; False, with nothing written, if this controller cannot read the
        sweep's stored spec."""
        token = lease.token
        with transaction(self.sessions) as session:
            # Read before observe writes anything: a trial's result is read by the
            # spec's objectives, which a newer version may mean otherwise.
            sweep = sweep_steps.step_holder(session=session, sweep_id=sweep_id, token=token)
            spec = self._unreadable.spec_of(sweep_id, sweep.spec)
            if spec is None and sweep.status != SweepStatus.CANCELLING.value:
                return False
            snapshot = sweep_steps.observe(session=session, sweep_id=sweep_id, token=token)
        if spec is None:
            # Cancelling: only its end is left, which reads no spec but the stored
            # metric names, as the owner's cancel does (it stayed `cancelling` until a
            # controller of the newer version came; a review).
            self._wind_down(snapshot, token)
            return True
        stop = snapshot.why_stop_unstarted()
        if stop is not None:
            with transaction(self.sessions) as session:
                sweep_steps.fail_sweep(session=session, sweep_id=sweep_id, token=token, error=stop)
            return True
        self._decide_and_record(snapshot, spec, lease)
        self._submit(snapshot, spec, token)
        return True

    def _wind_down(self, snapshot: SweepSnapshot, token: str) -> None:
        """A cancelling sweep's step: its best trials written, then `cancelled` once
        no trial job holds resources (no pruning, no points: a cancelling sweep asks
        none)."""
        with transaction(self.sessions) as session:
            sweep_steps.record_decisions(
                session=session,
                sweep_id=snapshot.sweep_id,
                token=token,
                system_attrs={},
                prune=[],
                points=[],
                first_number=len(snapshot.trials),
            )
            sweep_steps.settle(session=session, sweep_id=snapshot.sweep_id, token=token)

    def _decide_and_record(
        self, snapshot: SweepSnapshot, spec: SweepSpec, lease: StepLease
    ) -> None:
        token = lease.token
        trials = list(snapshot.trials)
        decision = study.prune(spec, trials) if snapshot.status is SweepStatus.RUNNING else None
        if decision is not None and decision.prune:
            pruned = set(decision.prune)
            # Pruned trials are finished for the sampler; their jobs still hold slots.
            trials = [
                replace(t, state=TrialState.PRUNED) if t.number in pruned else t for t in trials
            ]
        points: list[dict[str, object]] = []
        # Not while the owner is disabled (the sweep waits), nor while every trial so
        # far failed before it started (the open ones finish, then the sweep stops).
        if snapshot.adds_trials and not snapshot.unstarted_streak():
            open_ = sum(1 for t in trials if t.state in OPEN_TRIAL or t.job_active)
            count = min(spec.parallel - open_, spec.trials - len(trials))
            if count > 0:
                # Observe and prune may have taken a quarter of the lease already.
                lease.renew_if_due()
                points = study.ask(spec, trials, count, go_on=lease.go_on)
        with transaction(self.sessions) as session:
            pruned_now = sweep_steps.record_decisions(
                session=session,
                sweep_id=snapshot.sweep_id,
                token=token,
                system_attrs=decision.system_attrs if decision else {},
                prune=decision.prune if decision else [],
                points=points,
                first_number=len(trials),
            )
        if pruned_now:
            log.info("sweep %s: pruned trials %s", snapshot.sweep_id, pruned_now)

    def _submit(self, snapshot: SweepSnapshot, spec: SweepSpec, token: str) -> None:
        label = spec.name or f"sweep-{snapshot.sweep_id}"
        with transaction(self.sessions) as session:
            sweep = sweep_steps.step_holder(
                session=session, sweep_id=snapshot.sweep_id, token=token
            )
            for trial in sweep_steps.pending_trials(session=session, sweep=sweep):
                try:
                    resolved = trial_spec(
                        snapshot.spec["base"],
                        trial.params,
                        name=f"{label} #{trial.number}",
                        max_attempts=self.settings.default_max_attempts,
                    )
                except (ValidationError, SpecError) as exc:
                    trial_jobs.fail_trial(
                        session=session, trial=trial, error=f"invalid point: {exc}"[:500]
                    )
                    continue
                # What a job submit checks in the store: the sweep's submit checked the
                # corners of its space only. Its upload cannot be deleted in between:
                # this step holds the sweep's row lock, every end of a sweep takes it,
                # and a delete refuses while the sweep is unfinished.
                problems = spec_problems(
                    session=session,
                    spec=resolved,
                    owner_id=sweep.owner_id,
                    limits=self.settings.cost_limits(),
                )
                if problems:
                    error = "; ".join(f"{field}: {message}" for field, message in problems)
                    trial_jobs.fail_trial(
                        session=session, trial=trial, error=f"invalid point: {error}"[:500]
                    )
                    continue
                # Queued, a gang over the owner's CPU/GPU quota would never start and
                # hold a queue slot for good (a review: the quota lowered since).
                cpus, gpus = gang_totals(resolved)
                if why := gang_over_quota(
                    session=session,
                    user_id=sweep.owner_id,
                    defaults=self.settings.quota_defaults(),
                    cpus=cpus,
                    gpus=gpus,
                ):
                    trial_jobs.fail_trial(
                        session=session, trial=trial, error=f"invalid point: {why}"[:500]
                    )
                    continue
                job = trial_jobs.submit_trial(
                    session=session,
                    sweep=sweep,
                    trial=trial,
                    spec=resolved,
                    quota_defaults=self.settings.quota_defaults(),
                )
                if job is None:  # no room in the owner's queue or storage quota: nor for the rest
                    break
            sweep_steps.settle(session=session, sweep_id=snapshot.sweep_id, token=token)
