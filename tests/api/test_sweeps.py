"""The sweep routes over the real app (SQLite and PostgreSQL): submit with an
Idempotency-Key, 422s that name the parameter (and store nothing), visibility,
cursor pages, trial jobs that are ordinary jobs showing their sweep, cancel, the
statuses each route declares in the OpenAPI document, and 429 for a budget the queue
quota has no room left for or a corner whose gang exceeds the CPU quota."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import func, select

from service import spec_yaml
from service.store.attempts import fail
from service.store.db import transaction
from service.store.jobs import fail_queued
from service.store.models import Job, Sweep
from tests.api.conftest import SMALL_SPEC, SMALL_SWEEP, Api, assert_json_error
from workers.sweeps.controller import SweepController


def counts(api: Api) -> tuple[int, int]:
    with api.sessions() as session:
        sweeps = session.scalar(select(func.count()).select_from(Sweep))
        jobs = session.scalar(select(func.count()).select_from(Job))
    return sweeps or 0, jobs or 0


def test_submit_answers_the_sweep_and_replays_with_the_same_key(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    key = {**alice, "Idempotency-Key": "sweep-1"}
    first = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=key)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["owner"] == "alice" and body["name"] == "small-sweep"
    assert body["status"] == "queued" and body["trials"] == [] and body["best"] == []
    assert body["spec"]["base"] == SMALL_SPEC, "the base is shown as it was sent"
    assert body["spec"]["startup_trials"] == 2  # filled in: a quarter of 3, at least 2
    again = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=key)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    other = api.client.post("/v1/sweeps", json={**SMALL_SWEEP, "trials": 4}, headers=key)
    assert "Idempotency-Key" in assert_json_error(other, 409)
    assert counts(api) == (1, 0)
    assert api.client.get(f"/v1/sweeps/{body['id']}", headers=alice).json() == body


def sweep_with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SMALL_SWEEP)
    spec.update(changes)
    return spec


def params(**ranges: dict[str, Any]) -> dict[str, Any]:
    return {path.replace("__", "."): r for path, r in ranges.items()}


BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "not a JobSpec field",
        sweep_with(parameters=params(optimizer__lrate={"type": "float", "low": 0.1, "high": 1})),
        "parameters.optimizer.lrate",
    ),
    (
        "a section, not a field",
        sweep_with(parameters=params(model={"type": "categorical", "choices": [1, 2]})),
        "parameters.model",
    ),
    (
        "empty range",
        sweep_with(parameters=params(optimizer__lr={"type": "float", "low": 0.1, "high": 0.01})),
        "parameters.optimizer.lr",
    ),
    (
        "log scale through zero",
        sweep_with(
            parameters=params(optimizer__lr={"type": "float", "low": 0, "high": 1, "log": True})
        ),
        "parameters.optimizer.lr",
    ),
    (
        "bound outside the field's range",
        sweep_with(parameters=params(optimizer__lr={"type": "float", "low": 1e-3, "high": 500})),
        "parameters.optimizer.lr",
    ),
    (
        "a float range on an integer field",
        sweep_with(parameters=params(model__hidden_size={"type": "float", "low": 8, "high": 64})),
        "parameters.model.hidden_size",
    ),
    (
        "a choice the field refuses",
        sweep_with(
            parameters=params(model__cell={"type": "categorical", "choices": ["gru", "tcn"]})
        ),
        "parameters.model.cell",
    ),
    (
        "base invalid at a corner: lag_ps needs smoothness constants",
        sweep_with(
            parameters=params(
                aggregation__strategy={"type": "categorical", "choices": ["dense", "lag_ps"]}
            )
        ),
        "parameters.aggregation.strategy",
    ),
    (
        "base invalid at a corner: more workers than the regression's dimension",
        sweep_with(
            base={"task": {"kind": "lag_paper_linreg"}},
            parameters=params(distributed__workers={"type": "int", "low": 2, "high": 64}),
            objectives=[{"metric": "optimality_gap", "direction": "minimize"}],
        ),
        "parameters.distributed.workers",
    ),
    (
        "base field wrong at a corner of another parameter",
        sweep_with(
            base={"task": {"kind": "sequence_classification", "dataset": "builtin:digits"}},
            parameters=params(
                task__kind={
                    "type": "categorical",
                    "choices": ["sequence_classification", "char_lm"],
                }
            ),
            objectives=[{"metric": "val_loss", "direction": "minimize"}],
        ),
        "base.task.dataset",
    ),
    (
        "an upload that is not yours",
        sweep_with(
            base={**SMALL_SPEC, "task": {"kind": "char_lm", "dataset": "upload:999"}},
            objectives=[{"metric": "val_loss", "direction": "minimize"}],
        ),
        "base.task.dataset",
    ),
    (
        "an objective the trials do not report",
        sweep_with(objectives=[{"metric": "val_accuracy", "direction": "maximize"}]),
        "objectives.0.metric",
    ),
    (
        "pruning with two objectives",
        sweep_with(
            objectives=[
                {"metric": "val_mse", "direction": "minimize"},
                {"metric": "bytes_up_total", "direction": "minimize"},
            ],
            pruner={"type": "median"},
        ),
        "pruner",
    ),
    (
        "an objective twice",
        sweep_with(
            objectives=[
                {"metric": "val_mse", "direction": "minimize"},
                {"metric": "val_mse", "direction": "maximize"},
            ]
        ),
        "objectives",
    ),
    (
        "a choice of upload that is not yours",
        sweep_with(
            base={**SMALL_SPEC, "task": {"kind": "char_lm"}},
            parameters={
                "task.dataset": {
                    "type": "categorical",
                    "choices": ["builtin:shakespeare", "upload:999"],
                }
            },
            objectives=[{"metric": "val_loss", "direction": "minimize"}],
        ),
        "parameters.task.dataset",
    ),
    (
        "a baseline as the objective",
        sweep_with(
            base={**SMALL_SPEC, "task": {"kind": "char_lm"}},
            objectives=[{"metric": "unigram_perplexity", "direction": "minimize"}],
        ),
        "objectives.0.metric",
    ),
    # SMALL_SPEC: 5 rounds, eval_every at its default (50): no intermediate objective.
    ("pruning with nothing to prune", sweep_with(pruner={"type": "median"}), "pruner"),
    ("no budget", sweep_with(trials=0), "trials"),
    ("unknown sampler", sweep_with(sampler="grid"), "sampler"),
    ("unknown field", sweep_with(colour="red"), "colour"),
]


@pytest.mark.parametrize(("case", "spec", "field"), BAD, ids=[c[0] for c in BAD])
def test_a_bad_sweep_is_422_naming_the_parameter_and_stores_nothing(
    api: Api, case: str, spec: dict[str, Any], field: str
) -> None:
    _uid, alice = api.create_user("alice")
    detail = assert_json_error(api.client.post("/v1/sweeps", json=spec, headers=alice), 422)
    # At the field's place (a model validator's error is at `body`, echoing it all).
    named = [e for e in detail if ".".join(str(p) for p in e["loc"][1:]).startswith(field)]
    assert named, (case, detail)
    # A validator's own message, without pydantic's "Value error, " before it.
    assert not any(e["msg"].startswith("Value error") for e in detail), detail
    assert counts(api) == (0, 0)


def test_a_pruner_that_could_prune_somewhere_in_the_space_is_accepted(api: Api) -> None:
    """Judged at the most favourable corner: warmup_rounds 40 is past every
    evaluation before the last at 40 rounds, but not at 60 (after 40); and a first
    rung right at the last evaluation that could prune (after 20 of 40 rounds)."""
    _uid, alice = api.create_user("alice")
    schedule = {"rounds": 40, "batch_size": 8, "eval_every": 20}
    searched_rounds = sweep_with(
        base={**SMALL_SPEC, "schedule": schedule},
        parameters={
            **SMALL_SWEEP["parameters"],
            "schedule.rounds": {"type": "int", "low": 40, "high": 60},
        },
        pruner={"type": "median", "warmup_rounds": 40},
    )
    at_the_edge = sweep_with(
        base={**SMALL_SPEC, "schedule": schedule},
        pruner={"type": "successive_halving", "min_rounds": 20, "reduction_factor": 2},
    )
    for sweep in (searched_rounds, at_the_edge):
        r = api.client.post("/v1/sweeps", json=sweep, headers=alice)
        assert r.status_code == 201, r.text
    refused = sweep_with(
        base={**SMALL_SPEC, "schedule": schedule},
        parameters=searched_rounds["parameters"],
        pruner={"type": "median", "warmup_rounds": 41},
    )
    detail = assert_json_error(api.client.post("/v1/sweeps", json=refused, headers=alice), 422)
    assert [e["loc"][1:] for e in detail] == [["pruner", "warmup_rounds"]], detail
    assert "after 40 rounds (at best in this space: schedule.rounds 60" in detail[0]["msg"]


def test_the_summary_figures_are_objectives_and_a_misspelt_one_is_422(api: Api) -> None:
    """uploads_saved_fraction and bytes_saved_fraction are in a finished trial's
    summary, not its final metrics (service.schemas.metric_names.SUMMARY_METRICS)."""
    _uid, alice = api.create_user("alice")
    objectives = [
        {"metric": "bytes_saved_fraction", "direction": "maximize"},
        {"metric": "uploads_saved_fraction", "direction": "maximize"},
    ]
    r = api.client.post("/v1/sweeps", json=sweep_with(objectives=objectives), headers=alice)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["objectives"] == objectives
    misspelt = [{"metric": "byte_saved_fraction", "direction": "maximize"}]
    detail = assert_json_error(
        api.client.post("/v1/sweeps", json=sweep_with(objectives=misspelt), headers=alice), 422
    )
    assert any("objectives" in str(e["loc"]) for e in detail), detail
    assert counts(api) == (1, 0)


def test_a_baseline_objective_is_422_saying_what_to_search_on(api: Api) -> None:
    """unigram_perplexity is reported by char_lm jobs, but measures the text: a 422
    naming val_perplexity; a space without char_lm jobs does not report it at all.
    The same for adding's chance_mse (SMALL_SPEC is an adding job)."""
    _uid, alice = api.create_user("alice")
    char_lm = {**SMALL_SPEC, "task": {"kind": "char_lm"}}
    baseline_of = "is a baseline that no trial's model changes; search on"
    for base, metric, says in (
        (char_lm, "unigram_perplexity", f"{baseline_of} 'val_perplexity'"),
        (SMALL_SPEC, "unigram_perplexity", "is not a metric of adding jobs"),
        (SMALL_SPEC, "chance_mse", f"{baseline_of} 'val_mse'"),
    ):
        objectives = [{"metric": metric, "direction": "minimize"}]
        sweep = sweep_with(base=base, objectives=objectives)
        detail = assert_json_error(api.client.post("/v1/sweeps", json=sweep, headers=alice), 422)
        at_field = [e["msg"] for e in detail if e["loc"][1:] == ["objectives", 0, "metric"]]
        assert len(at_field) == 1 and f"{metric!r} {says}" in at_field[0], detail


def test_another_users_sweep_is_404_and_admins_see_every_sweep(api: Api) -> None:
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    sweep_id = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    assert_json_error(api.client.get(f"/v1/sweeps/{sweep_id}", headers=bob), 404)
    assert_json_error(api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=bob), 404)
    assert api.client.get("/v1/sweeps", headers=bob).json()["data"] == []
    seen = api.client.get("/v1/sweeps?owner=alice", headers=api.admin).json()["data"]
    assert [s["id"] for s in seen] == [sweep_id]
    assert api.client.get(f"/v1/sweeps/{sweep_id}", headers=api.admin).status_code == 200


def test_sweeps_list_newest_first_in_cursor_pages(api: Api) -> None:
    _a, alice = api.create_user("alice")
    ids = [
        api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"] for _ in "abc"
    ]
    first = api.client.get("/v1/sweeps?limit=2", headers=alice).json()
    assert [s["id"] for s in first["data"]] == ids[:0:-1]
    rest = api.client.get(f"/v1/sweeps?limit=2&cursor={first['next_cursor']}", headers=alice)
    assert [s["id"] for s in rest.json()["data"]] == [ids[0]]
    assert rest.json()["next_cursor"] is None
    full = api.client.get("/v1/sweeps?limit=3", headers=alice).json()
    assert len(full["data"]) == 3 and full["next_cursor"] is None  # exactly full: the last
    queued = api.client.get("/v1/sweeps?status=succeeded", headers=alice).json()
    assert queued["data"] == []


def test_trials_are_ordinary_jobs_showing_their_sweep_and_cancel_stops_them(api: Api) -> None:
    _a, alice = api.create_user("alice")
    sweep_id = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    SweepController(api.settings, api.sessions).poll()
    sweep = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()
    assert sweep["status"] == "running"
    assert [(t["number"], t["status"]) for t in sweep["trials"]] == [(0, "queued"), (1, "queued")]
    jobs = api.client.get("/v1/jobs", headers=alice).json()["data"]
    assert {j["id"] for j in jobs} == {t["job_id"] for t in sweep["trials"]}
    for trial in sweep["trials"]:
        job = api.client.get(f"/v1/jobs/{trial['job_id']}", headers=alice).json()
        assert job["sweep_id"] == sweep_id and job["owner"] == "alice"
        assert job["spec"]["optimizer"]["lr"] == trial["params"]["optimizer.lr"]
    alone = api.client.get(f"/v1/jobs/{api.submit(alice)}", headers=alice).json()
    assert alone["sweep_id"] is None

    cancelled = api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=alice)
    assert cancelled.status_code == 202
    body = cancelled.json()
    # Queued trial jobs are cancelled at once, so the sweep is finished at once.
    assert body["status"] == "cancelled"
    assert [t["status"] for t in body["trials"]] == ["cancelled", "cancelled"]
    for trial in body["trials"]:
        job = api.client.get(f"/v1/jobs/{trial['job_id']}", headers=alice).json()
        assert job["status"] == "cancelled"
    again = api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=alice)
    assert again.status_code == 202 and again.json()["status"] == "cancelled"


def test_a_trial_whose_job_succeeded_without_its_objective_shows_failed(api: Api) -> None:
    """A job that ends succeeded with no finite objective (a diverged loss is stored as
    null) fails its trial: the trial and the sweep say failed, not the job's status."""
    _a, alice = api.create_user("alice")
    body = sweep_with(trials=1, parallel=1)
    sweep_id = api.client.post("/v1/sweeps", json=body, headers=alice).json()["id"]
    controller = SweepController(api.settings, api.sessions)
    controller.poll()
    api.finish(api.claim())  # its summary has no val_mse
    controller.poll()
    sweep = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()
    (trial,) = sweep["trials"]
    job = api.client.get(f"/v1/jobs/{trial['job_id']}", headers=alice).json()
    assert job["status"] == "succeeded"
    assert trial["status"] == "failed" and trial["values"] is None
    assert trial["error"] == "the job's final metrics have no finite val_mse"
    assert sweep["status"] == "failed" and sweep["error"] == "no trial completed: 1 failed"


def test_a_trial_whose_job_is_cancelled_counts_against_the_budget(api: Api) -> None:
    """Cancelling one trial's job ends that trial; the sweep goes on, and the
    cancelled trial is spent like a failed or pruned one (no replacement)."""
    _a, alice = api.create_user("alice")
    body = sweep_with(trials=2, parallel=1)
    sweep_id = api.client.post("/v1/sweeps", json=body, headers=alice).json()["id"]
    controller = SweepController(api.settings, api.sessions)
    controller.poll()
    (first,) = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()["trials"]
    api.client.post(f"/v1/jobs/{first['job_id']}/cancel", headers=alice)
    controller.poll()
    trials = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()["trials"]
    assert [(t["number"], t["status"]) for t in trials] == [(0, "cancelled"), (1, "queued")]
    api.finish(api.claim())  # no val_mse: the last trial fails
    controller.poll()
    sweep = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()
    assert [t["status"] for t in sweep["trials"]] == ["cancelled", "failed"]
    assert sweep["status"] == "failed", "the budget of 2 is spent"


def test_a_sweep_whose_trials_all_fail_before_starting_stops(api: Api) -> None:
    """A gang larger than the cluster fails every trial's job while queued: the sweep
    spent its whole budget that way (1000 failed jobs for `trials: 1000`). It now
    stops once its first 3 finished trials all failed unstarted and none is open: no
    new point is asked meanwhile, and the reason quotes the first trial's error."""
    _a, alice = api.create_user("alice")
    body = sweep_with(trials=10, parallel=2)
    sweep_id = api.client.post("/v1/sweeps", json=body, headers=alice).json()["id"]
    controller = SweepController(api.settings, api.sessions)

    def fail_queued_trials() -> None:
        with transaction(api.sessions) as session:
            for job_id in session.scalars(select(Job.id).where(Job.status == "queued")):
                fail_queued(session=session, job_id=job_id, actor="test", reason="too big")

    def sweep() -> dict[str, Any]:
        got: dict[str, Any] = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()
        return got

    controller.poll()  # trials 0 and 1 queued
    fail_queued_trials()
    controller.poll()  # 2 failed unstarted (< 3): trials 2 and 3 queued
    assert [t["status"] for t in sweep()["trials"]] == ["failed", "failed", "queued", "queued"]
    with transaction(api.sessions) as session:  # trial 2 fails, trial 3 is still queued
        job_id = sweep()["trials"][2]["job_id"]
        fail_queued(session=session, job_id=job_id, actor="test", reason="too big")
    controller.poll()  # 3 failed unstarted, one open: wait, ask nothing
    assert len(sweep()["trials"]) == 4 and sweep()["status"] == "running"
    fail_queued_trials()
    controller.poll()
    stopped = sweep()
    assert stopped["status"] == "failed" and len(stopped["trials"]) == 4
    assert stopped["error"] == (
        "stopped: the first 4 trials all failed before their jobs started, so the other 6 "
        "of the budget would too (trial 0: too big)"
    )


def test_trials_that_failed_after_starting_do_not_stop_a_sweep(api: Api) -> None:
    """Only trials whose jobs never started count: a point that fails while training
    (a diverging lr) says nothing of the next point."""
    _a, alice = api.create_user("alice")
    body = sweep_with(trials=5, parallel=1)
    sweep_id = api.client.post("/v1/sweeps", json=body, headers=alice).json()["id"]
    controller = SweepController(api.settings, api.sessions)
    for _ in range(4):
        controller.poll()
        claimed = api.claim()  # attempt 1: the job started
        with transaction(api.sessions) as session:
            fail(
                session=session,
                job_id=claimed.job_id,
                token=claimed.fencing_token,
                reason="diverged at round 3",
                retryable=False,
            )
    controller.poll()
    sweep = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()
    assert [t["status"] for t in sweep["trials"][:4]] == ["failed"] * 4
    assert sweep["status"] == "running" and len(sweep["trials"]) == 5


def test_a_sweep_searching_its_gang_is_not_stopped_by_unstarted_trials(api: Api) -> None:
    """With `distributed.*` searched, a gang too large for the cluster says nothing
    about the next point's, which may fit: the sweep goes on sampling."""
    _a, alice = api.create_user("alice")
    body = sweep_with(
        trials=6,
        parallel=2,
        parameters={"distributed.workers": {"type": "int", "low": 1, "high": 2}},
    )
    created = api.client.post("/v1/sweeps", json=body, headers=alice)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    controller = SweepController(api.settings, api.sessions)
    for _ in range(2):
        controller.poll()
        with transaction(api.sessions) as session:
            for job_id in session.scalars(select(Job.id).where(Job.status == "queued")):
                fail_queued(session=session, job_id=job_id, actor="test", reason="too big")
    controller.poll()
    sweep = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()
    assert sweep["status"] == "running" and len(sweep["trials"]) == 6


def test_a_sweep_its_trial_jobs_and_its_cancel_are_in_the_audit_log(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    key = {**alice, "Idempotency-Key": "audited"}
    sweep_id = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=key).json()["id"]
    assert api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=key).status_code == 200
    SweepController(api.settings, api.sessions).poll()  # submits trials 0 and 1
    running = api.claim().job_id
    for _ in range(2):  # an admin cancels; repeating it changes (and audits) nothing
        assert api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=api.admin).is_success
    trials = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()["trials"]
    jobs = [t["job_id"] for t in trials]
    events = api.client.get("/v1/audit", params={"limit": 500}, headers=api.admin).json()["data"]
    events = [e for e in events if e["action"] != "user.created"]
    by_sweep = f"sweep:{sweep_id} for user:alice"
    assert [(e["actor"], e["action"], e["target"]) for e in events] == [
        ("user:alice", "sweep.submitted", f"sweep:{sweep_id}"),
        (by_sweep, "job.submitted", f"job:{jobs[0]}"),
        (by_sweep, "job.submitted", f"job:{jobs[1]}"),
        ("admin:admin", "sweep.cancelled", f"sweep:{sweep_id}"),
        ("admin:admin", "job.cancelled", f"job:{jobs[0]}"),
        ("admin:admin", "job.cancelled", f"job:{jobs[1]}"),
    ]
    assert events[0]["detail"] == {"name": "small-sweep", "trials": 3}
    assert events[1]["detail"] == {"name": "small-sweep #0", "sweep_id": sweep_id}
    assert events[3]["detail"] == {"owner_id": alice_id, "was": "running"}
    cancels = {e["target"]: e["detail"] for e in events[4:]}
    for job_id in jobs:
        detail = cancels[f"job:{job_id}"]
        assert detail["sweep_id"] == sweep_id and detail["owner_id"] == alice_id
        assert detail["was"] == ("running" if job_id == running else "queued")
        # Who asked, by name as in the actor column (stored as user:<id>), and so in
        # the job's own history.
        assert detail["reason"] == f"sweep {sweep_id} cancelled by user:admin"
        history = api.client.get(f"/v1/jobs/{job_id}/history", headers=alice).json()["data"]
        assert history[-1]["reason"] == f"sweep {sweep_id} cancelled by user:admin", history


def test_each_sweep_route_declares_its_error_statuses(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    declared = {
        ("post", "/v1/sweeps"): {"200", "201", "400", "401", "409", "413", "422", "429", "503"},
        ("get", "/v1/sweeps"): {"200", "401", "422", "503"},
        ("get", "/v1/sweeps/{sweep_id}"): {"200", "401", "404", "422", "503"},
        ("post", "/v1/sweeps/{sweep_id}/cancel"): {"202", "401", "404", "422", "503"},
    }
    for (method, path), statuses in declared.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (method, path, set(responses))
        for code in statuses - {"200", "201", "202", "422"}:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorOut"}


def test_the_example_sweeps_are_accepted(api: Api) -> None:
    from tests.api.conftest import REPO_EXAMPLES

    _a, alice = api.create_user("alice")
    files = sorted(REPO_EXAMPLES.glob("sweep-*.yaml"))
    assert files
    for path in files:
        r = api.client.post("/v1/sweeps", json=spec_yaml.load(path.read_text()), headers=alice)
        assert r.status_code == 201, (path.name, r.text)


def set_quota(api: Api, user_id: int, **quota: Any) -> None:
    r = api.client.patch(f"/v1/users/{user_id}", json={"quota": quota}, headers=api.admin)
    assert r.status_code == 200, r.text


def test_a_budget_over_what_the_queue_quota_has_left_is_429(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    set_quota(api, alice_id, max_queued_jobs=4)
    held = [api.submit(alice), api.submit(alice)]
    # 2 queued + a budget of 3 > 4, although the budget alone would fit.
    r = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    assert assert_json_error(r, 429) == (
        "max_queued_jobs: 2 queued + 3 new (the sweep's trial budget, `trials`) exceeds "
        "the quota of 4"
    )
    assert counts(api) == (0, 2)
    api.client.post(f"/v1/jobs/{held[0]}/cancel", headers=alice)
    assert api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).status_code == 201


def test_a_corner_whose_gang_exceeds_the_cpu_quota_is_429(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    set_quota(api, alice_id, max_cpus=4)
    # 1 CPU per replica: the base (1 replica) fits, the corner with 6 replicas never could.
    wide = sweep_with(parameters=params(distributed__workers={"type": "int", "low": 1, "high": 6}))
    r = api.client.post("/v1/sweeps", json=wide, headers=alice)
    assert "max_cpus" in assert_json_error(r, 429)
    assert counts(api) == (0, 0)
    narrow = sweep_with(
        parameters=params(distributed__workers={"type": "int", "low": 1, "high": 3})
    )
    assert api.client.post("/v1/sweeps", json=narrow, headers=alice).status_code == 201
