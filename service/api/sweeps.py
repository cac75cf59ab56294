"""Submitting, listing, reading and cancelling sweeps (DESIGN §11). A sweep is
checked whole at submit (paths, bounds, the base at every corner, objectives,
uploads): what is accepted can run. Its trials are submitted later, as ordinary
jobs, by a sweep controller in a dispatcher process."""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from service.api.deps import (
    MAX_ID,
    AppSettings,
    Cursor,
    Limit,
    Sessions,
    decode_cursor,
    next_cursor,
)
from service.api.job_filters import FinishedBeforeFilter, OwnerFilter
from service.api.jobs import IdempotencyKey
from service.api.responses import errors
from service.api.user_refs import owner_filter_id
from service.auth import CurrentUser, TokenCheckedFirst
from service.schemas.audit import AuditAction
from service.schemas.common import Page, request_sha256
from service.schemas.cost import CostLimits
from service.schemas.gang import gang_totals
from service.schemas.jobs import JobStatus
from service.schemas.resolved import ResolvedSpec
from service.schemas.sweep_checks import Loc
from service.schemas.sweep_errors import value_at
from service.schemas.sweep_space import SweepSpecError, check_sweep
from service.schemas.sweeps import PRUNED, SweepOut, SweepSpec, TrialOut
from service.store.audit import record
from service.store.db import read_transaction, transaction
from service.store.models import Sweep, TrialState
from service.store.quotas import check_can_submit, lock_owner
from service.store.spec_checks import spec_problems
from service.store.sweep_listing import TrialRow, list_sweeps, trials_of
from service.store.sweeps import (
    create_sweep,
    get_visible_sweep,
    request_cancel,
    sweep_for_key,
    trials_to_come,
)
from service.store.users import user_names

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"], route_class=TokenCheckedFirst)

SweepId = Annotated[int, Path(ge=1, le=MAX_ID, description="sweep id")]


def _trial_out(row: TrialRow) -> TrialOut:
    trial = row.trial
    shown: Any
    if trial.state == TrialState.PRUNED.value:
        shown = PRUNED
    elif trial.state == TrialState.FAILED.value:
        # Also when its job succeeded: without a finite objective (a diverged loss is
        # stored as null) the trial failed, and the sweep counts it so.
        shown = "failed"
    elif row.job_status is not None:
        shown = row.job_status
    else:
        # No job: pending, or finished without one (an invalid point, a cancel).
        shown = {TrialState.FAILED.value: "failed", TrialState.CANCELLED.value: "cancelled"}.get(
            trial.state, "pending"
        )
    return TrialOut(
        number=trial.number,
        job_id=trial.job_id,
        status=shown,
        params=trial.params,
        values=trial.values,
        error=trial.error,
    )


def _sweep_outs(session: Session, sweeps: list[Sweep]) -> list[SweepOut]:
    trials = trials_of(session=session, sweep_ids=[s.id for s in sweeps])
    names = user_names(session=session, user_ids={s.owner_id for s in sweeps})
    return [
        SweepOut(
            id=s.id,
            owner=names[s.owner_id],
            name=s.name,
            status=s.status,
            spec=s.spec,
            created_at=s.created_at,
            finished_at=s.finished_at,
            error=s.error,
            trials=[_trial_out(row) for row in trials[s.id]],
            best=list(s.best),
        )
        for s in sweeps
    ]


def _errors(problems: list[tuple[Loc, str]], spec: SweepSpec) -> RequestValidationError:
    """A 422 in FastAPI's list form, each problem at its place in the request body."""
    body = spec.model_dump(mode="json")
    return RequestValidationError(
        [
            {
                "type": "value_error",
                "loc": ("body", *loc),
                "msg": message,
                "input": value_at(body, loc),
            }
            for loc, message in problems
        ]
    )


def _corner_problems(
    session: Session,
    corners: list[ResolvedSpec],
    searched: Collection[str],
    owner_id: int,
    limits: CostLimits,
) -> list[tuple[Loc, str]]:
    """The store-side checks of each corner of the space (uploads, cost), each field
    named once: at `parameters.<path>` when the field is searched (a choice of
    `task.dataset` that is not the user's upload), else under `base`."""
    problems: dict[Loc, str] = {}
    for corner in corners:
        found = spec_problems(session=session, spec=corner, owner_id=owner_id, limits=limits)
        for field, message in found:
            if field in searched:
                problems.setdefault(("parameters", field), f"parameters.{field}: {message}")
            else:
                problems.setdefault(("base", *field.split(".")), f"base.{field}: {message}")
    return list(problems.items())


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepOut,
    responses={
        200: {"model": SweepOut, "description": "replay of an earlier request (Idempotency-Key)"},
        **errors(400, 401, 409, 413, 422, 429),
    },
)
def post_sweep(
    spec: SweepSpec,
    response: Response,
    principal: CurrentUser,
    sessions: Sessions,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> SweepOut:
    """Submit a sweep. 422 names the parameter (or base field) when a path is not a
    JobSpec field, a range is empty or invalid for its field, the base is invalid at
    a corner of the space, or an objective is not a metric the trials report."""
    try:
        checked = check_sweep(spec, default_max_attempts=settings.default_max_attempts)
    except SweepSpecError as exc:
        raise _errors(exc.problems, spec) from exc
    with transaction(sessions) as session:
        # The user's quota lock first: the corners' upload checks below then hold
        # against a concurrent delete of that upload (store.dataset_removal), and a
        # retry of an accepted submit is answered whatever the quota and whatever
        # became of its upload since (as for jobs), its key looked up with a
        # concurrent first use of it, and the trials a controller queues for it, seen.
        lock_owner(session=session, user_id=principal.user_id)
        sha = request_sha256(spec)
        replayed = (
            None
            if idempotency_key is None
            else sweep_for_key(
                session=session,
                owner_id=principal.user_id,
                idempotency_key=idempotency_key,
                request_sha256=sha,
            )
        )
        if replayed is None:
            limits = settings.cost_limits()
            problems = _corner_problems(
                session, checked.corners, spec.parameters.keys(), principal.user_id, limits
            )
            if problems:
                raise _errors(problems, spec)
            # After the 422 checks: a budget the queue quota could never hold, beside
            # what the user's other active sweeps may still queue, is a 429.
            totals = [gang_totals(corner) for corner in checked.corners]
            cpus, gpus = max(t[0] for t in totals), max(t[1] for t in totals)
            active, to_come = trials_to_come(session=session, owner_id=principal.user_id)
            check_can_submit(
                session=session,
                user_id=principal.user_id,
                defaults=settings.quota_defaults(),
                jobs=spec.trials + to_come,
                cpus=cpus,
                gpus=gpus,
                owner_locked=True,
                new=_budget_words(spec.trials, active, to_come),
            )
        sweep, created = (
            (replayed, False)
            if replayed is not None
            else create_sweep(
                session=session,
                owner_id=principal.user_id,
                spec=checked.stored,
                name=spec.name,
                idempotency_key=idempotency_key,
                request_sha256=sha,
            )
        )
        if created:  # its trial jobs are audited as they are submitted (job.submitted)
            record(
                session=session,
                actor=principal,
                action=AuditAction.SWEEP_SUBMITTED,
                target=f"sweep:{sweep.id}",
                detail={"name": sweep.name, "trials": spec.trials},
            )
        (out,) = _sweep_outs(session, [sweep])
    if not created:
        response.status_code = status.HTTP_200_OK
    return out


@router.get("", response_model=Page[SweepOut], responses=errors(401, 422))
def get_sweeps(
    principal: CurrentUser,
    sessions: Sessions,
    finished_before: FinishedBeforeFilter,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    owner: OwnerFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SweepOut]:
    before_id = decode_cursor(cursor)
    with read_transaction(sessions) as session:
        owner_id = owner_filter_id(session=session, viewer=principal, name=owner)
        sweeps = list_sweeps(
            session=session,
            viewer=principal,
            owner_id=owner_id,
            status=status_filter,
            finished_before=finished_before,
            limit=limit + 1,
            before_id=before_id,
        )
        outs = _sweep_outs(session, sweeps[:limit])
    return Page[SweepOut](data=outs, next_cursor=next_cursor([s.id for s in sweeps], limit))


@router.get("/{sweep_id}", response_model=SweepOut, responses=errors(401, 404, 422))
def get_sweep(sweep_id: SweepId, principal: CurrentUser, sessions: Sessions) -> SweepOut:
    with read_transaction(sessions) as session:
        sweep = get_visible_sweep(session=session, sweep_id=sweep_id, viewer=principal)
        (out,) = _sweep_outs(session, [sweep])
    return out


@router.post(
    "/{sweep_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepOut,
    responses=errors(401, 404, 422),
)
def cancel_sweep(sweep_id: SweepId, principal: CurrentUser, sessions: Sessions) -> SweepOut:
    """No new trials; queued trial jobs are cancelled at once, running ones stop
    within seconds (cancelling, then cancelled). A finished sweep is unchanged."""
    with transaction(sessions) as session:
        sweep = get_visible_sweep(session=session, sweep_id=sweep_id, viewer=principal)
        sweep = request_cancel(
            session=session,
            sweep=sweep,
            actor=f"user:{principal.user_id}",
            audit_actor=principal,
        )
        (out,) = _sweep_outs(session, [sweep])
    return out


def _budget_words(trials: int, active: int, to_come: int) -> str:
    if not to_come:
        return "new (the sweep's trial budget, `trials`)"
    sweeps = "sweep" if active == 1 else "sweeps"
    return (
        f"new (the sweep's {trials} `trials` and {to_come} that your {active} active "
        f"{sweeps} may still queue)"
    )
