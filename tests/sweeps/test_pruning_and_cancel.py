"""Pruning and cancelling a sweep, against the real store (SQLite and PostgreSQL): the
pruner stops a trial whose intermediate objective is worse than the finished trials'
at the same round (its job cancelled with the reason "pruned", the trial finished),
a good trial runs on, and a cancelled sweep stops every trial and asks no more."""

from __future__ import annotations

from sqlalchemy import select

from service.store import sweep_steps
from service.store import sweeps as store_sweeps
from service.store.attempts import ClaimedJob
from service.store.db import transaction
from service.store.models import AuditEvent, JobEvent, Sweep, SweepStatus
from tests.sweeps.conftest import Lab
from workers.sweeps.controller import SweepController

MEDIAN = {"type": "median", "startup_trials": 1}


def events(lab: Lab, job_id: int) -> list[tuple[str | None, str, str | None, str]]:
    with lab.sessions() as session:
        rows = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        )
        return [(e.from_status, e.to_status, e.reason, e.actor) for e in rows]


def gap_curve(scale: float) -> dict[int, dict[str, float]]:
    """optimality_gap at the evaluation rounds (eval_every 10 of 40 rounds)."""
    return {r: {"optimality_gap": scale / (r + 1)} for r in (9, 19, 29, 39)}


def _first_trial_done(lab: Lab, *, trials: int) -> tuple[int, SweepController, ClaimedJob]:
    """A median-pruned sweep, one trial at a time, whose first trial reported every
    evaluation and succeeded, and a step since (the next trial asked): the sweep, its
    controller and the first trial's claim."""
    sweep_id = lab.submit(trials=trials, parallel=1, pruner=MEDIAN)
    controller = lab.controller()
    controller.poll()
    (first,) = lab.claim_all()
    lab.report(first.job_id, gap_curve(1.0))
    lab.succeed(first.job_id, {"optimality_gap": 1.0 / 40})
    controller.poll()
    return sweep_id, controller, first


def test_the_pruner_cancels_a_bad_trial_and_spares_a_good_one(lab: Lab) -> None:
    sweep_id, controller, first = _first_trial_done(lab, trials=3)

    (bad,) = lab.claim_all()
    lab.report(bad.job_id, {r: v for r, v in gap_curve(5.0).items() if r <= 19})
    controller.poll()
    trials = lab.trials(sweep_id)
    assert [t.state for t in trials] == ["complete", "pruned"]
    assert trials[1].intermediate == {"9": 0.5, "19": 0.25}
    # Cancelled through the jobs' own cancel path, which writes the event.
    assert events(lab, bad.job_id)[-1] == ("running", "cancelling", "pruned", f"sweep:{sweep_id}")
    # The audit log names the sweep acting for its owner, as for the trials it submits.
    with lab.sessions() as session:
        audit = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(a.actor, a.action, a.target) for a in audit] == [
        (f"sweep:{sweep_id} for user:ada", "job.submitted", f"job:{first.job_id}"),
        (f"sweep:{sweep_id} for user:ada", "job.submitted", f"job:{bad.job_id}"),
        (f"sweep:{sweep_id} for user:ada", "job.cancelled", f"job:{bad.job_id}"),
    ]
    assert audit[-1].detail["reason"] == "pruned" and audit[-1].actor_id == lab.owner_id
    # The pruned trial is finished, but its job holds the only slot until it stops.
    controller.poll()
    assert len(lab.trials(sweep_id)) == 2
    lab.acknowledge_cancel(bad.job_id)
    controller.poll()
    assert len(lab.trials(sweep_id)) == 3
    # The pruned job keeps the summary of its 20 rounds, objective included; the
    # trial reads none of it (only a succeeded job's summary is a result).
    pruned = lab.jobs(sweep_id)[1]
    assert pruned.status == "cancelled" and pruned.summary is not None
    assert pruned.summary["rounds_completed"] == 20
    assert pruned.summary["final_metrics"]["optimality_gap"] == 0.25
    assert lab.trials(sweep_id)[1].state == "pruned" and lab.trials(sweep_id)[1].values is None

    (good,) = lab.claim_all()
    lab.report(good.job_id, {r: v for r, v in gap_curve(0.5).items() if r <= 19})
    controller.poll()
    assert lab.trials(sweep_id)[2].state == "running"
    lab.report(good.job_id, gap_curve(0.5))
    lab.succeed(good.job_id, {"optimality_gap": 0.5 / 40})
    controller.poll()
    trials = lab.trials(sweep_id)
    assert [t.state for t in trials] == ["complete", "pruned", "complete"]
    assert trials[1].values is None
    sweep = lab.sweep(sweep_id)
    assert sweep.status == "succeeded" and sweep.best == [2]


def test_successive_halving_keeps_its_rungs_across_steps(lab: Lab) -> None:
    sweep_id = lab.submit(
        trials=2,
        parallel=1,
        pruner={"type": "successive_halving", "min_rounds": 10, "reduction_factor": 2},
    )
    controller = lab.controller()
    controller.poll()
    (first,) = lab.claim_all()
    lab.report(first.job_id, {r: v for r, v in gap_curve(1.0).items() if r <= 9})
    controller.poll()
    # The first trial reached rung 0 after its 10 rounds (min_rounds) and, alone
    # there, was promoted; the rung is in lagtrain's row, where the next step's
    # rebuilt study finds it.
    (trial,) = lab.trials(sweep_id)
    assert trial.state == "running"
    assert trial.system_attrs == {"completed_rung_0": 0.1}
    lab.report(first.job_id, gap_curve(1.0))
    lab.succeed(first.job_id, {"optimality_gap": 1.0 / 40})
    controller.poll()
    (second,) = lab.claim_all()
    lab.report(second.job_id, {r: v for r, v in gap_curve(3.0).items() if r <= 9})
    controller.poll()
    assert [t.state for t in lab.trials(sweep_id)] == ["complete", "pruned"]


def test_cancel_stops_every_trial_and_asks_no_more(lab: Lab) -> None:
    sweep_id = lab.submit(trials=6, parallel=3)
    controller = lab.controller()
    controller.poll()
    queued = [j.id for j in lab.jobs(sweep_id)]
    assert len(queued) == 3
    running = queued[0]
    lab.claimed.clear()
    # The stand-in dispatcher takes one job; the other two stay queued.
    from service.store import attempts

    with transaction(lab.sessions) as session:
        claimed = attempts.claim_next(
            session=session, dispatcher_id="d", lease_seconds=600, free_cpus=1.6, free_gpus=0
        )
    assert claimed is not None and claimed.job_id == running
    lab.claimed[running] = claimed
    lab.report(running, gap_curve(1.0))  # all 40 rounds: only the final status is missing

    with transaction(lab.sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        store_sweeps.request_cancel(session=session, sweep=sweep, actor="user:1")
    statuses = {j.id: j.status for j in lab.jobs(sweep_id)}
    assert statuses == {queued[0]: "cancelling", queued[1]: "cancelled", queued[2]: "cancelled"}
    assert lab.sweep(sweep_id).status == "cancelling"
    assert events(lab, queued[1])[-1][2] == f"sweep {sweep_id} cancelled by user:1"

    controller.poll()
    assert len(lab.trials(sweep_id)) == 3, "a cancelled sweep asks for no new trial"
    assert lab.sweep(sweep_id).status == "cancelling"
    lab.acknowledge_cancel(running)
    controller.poll()
    sweep = lab.sweep(sweep_id)
    assert sweep.status == "cancelled" and sweep.finished_at is not None
    assert [t.state for t in lab.trials(sweep_id)] == ["cancelled"] * 3
    assert lab.active_jobs(sweep_id) == []
    # Its job keeps a summary with the objective, but the cancelled trial has no value.
    stopped = lab.jobs(sweep_id)[0]
    assert stopped.summary is not None
    assert stopped.summary["final_metrics"]["optimality_gap"] == 1.0 / 40
    assert [t.values for t in lab.trials(sweep_id)] == [None] * 3
    # Cancelling again changes nothing.
    with transaction(lab.sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        assert store_sweeps.request_cancel(session=session, sweep=sweep, actor="u").status == (
            "cancelled"
        )


def test_cancelling_a_sweep_before_its_first_step_cancels_it_at_once(lab: Lab) -> None:
    sweep_id = lab.submit()
    with transaction(lab.sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None
        store_sweeps.request_cancel(session=session, sweep=sweep, actor="user:1")
    assert lab.sweep(sweep_id).status == "cancelled"
    assert lab.controller().poll() == 0
    assert lab.trials(sweep_id) == []


def test_two_objectives_give_the_pareto_front(lab: Lab) -> None:
    sweep_id = lab.submit(
        trials=4,
        parallel=4,
        objectives=[
            {"metric": "optimality_gap", "direction": "minimize"},
            {"metric": "bytes_up_total", "direction": "minimize"},
        ],
    )
    controller = lab.controller()
    controller.poll()
    lab.claim_all()
    results = [(0.1, 400.0), (0.2, 100.0), (0.3, 500.0), (0.05, 900.0)]
    for job, (gap, sent) in zip(lab.jobs(sweep_id), results, strict=True):
        lab.succeed(job.id, {"optimality_gap": gap, "bytes_up_total": sent})
    controller.poll()
    sweep = lab.sweep(sweep_id)
    assert sweep.status == "succeeded"
    # (0.3, 500) is worse than (0.1, 400) in both; the other three trade off.
    numbers = {t.job_id: t.number for t in lab.trials(sweep_id)}
    front = sorted(
        numbers[j.id] for j, r in zip(lab.jobs(sweep_id), results, strict=True) if r != (0.3, 500.0)
    )
    assert sweep.best == front
    assert [t.values for t in lab.trials(sweep_id)] == [list(r) for r in results]


def test_a_cancel_during_a_step_that_ends_the_sweep_stands(lab: Lab) -> None:
    """Every trial has finished when the cancel lands between a controller's
    take_step and its settle: the cancel ends the sweep at once, and settle (budget
    spent, a trial complete) tried cancelled -> succeeded and raised."""
    sweep_id = lab.submit(trials=2, parallel=2)
    lab.controller().poll()
    for claimed, gap in zip(lab.claim_all(), (0.1, 0.2), strict=True):
        lab.succeed(claimed.job_id, {"optimality_gap": gap})
    with transaction(lab.sessions) as session:
        token = sweep_steps.take_step(
            session=session, sweep_id=sweep_id, controller_id="c1", lease_seconds=600
        )
    assert token is not None
    lab.cancel(sweep_id)
    assert lab.sweep(sweep_id).status == "cancelled"
    with transaction(lab.sessions) as session:
        settled = sweep_steps.settle(session=session, sweep_id=sweep_id, token=token)
    assert settled is SweepStatus.CANCELLED
    assert lab.sweep(sweep_id).status == "cancelled"


def test_a_trial_whose_last_round_is_recorded_is_not_pruned(lab: Lab) -> None:
    """Its job has reported every round but not ended yet: pruned then, its job was
    cancelled, yet it succeeded (a cancelling job may), and the trial stayed pruned
    with no values. Its work is done: the pruner waits for the result."""
    sweep_id, controller, _first = _first_trial_done(lab, trials=2)
    (poor,) = lab.claim_all()
    lab.report(poor.job_id, gap_curve(5.0))  # worse at every evaluation, the last too
    controller.poll()
    assert [t.state for t in lab.trials(sweep_id)] == ["complete", "running"]
    assert lab.jobs(sweep_id)[1].status == "running"
    lab.succeed(poor.job_id, {"optimality_gap": 5.0 / 40})
    controller.poll()
    trials = lab.trials(sweep_id)
    assert [(t.state, t.values) for t in trials] == [
        ("complete", [1.0 / 40]),
        ("complete", [5.0 / 40]),
    ]
    assert lab.sweep(sweep_id).status == "succeeded"
