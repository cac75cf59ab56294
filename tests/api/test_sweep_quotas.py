"""A sweep's trials are held to what a job submit is held to (SQLite and PostgreSQL):
the owner's max_queued_jobs when the controller queues them (several sweeps accepted
at once cannot overfill the queue), and the store's spec checks at each trial's own
point (the sweep's submit checks only the corners of its space). A retry of an
accepted sweep is answered whatever the quota, as a job's is."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select

from service.store.db import transaction
from service.store.models import SweepTrial
from service.store.trial_jobs import fail_trial
from tests.api.conftest import SMALL_SWEEP, Api
from workers.sweeps.controller import SweepController


def set_quota(api: Api, user_id: int, **quota: Any) -> None:
    r = api.client.patch(f"/v1/users/{user_id}", json={"quota": quota}, headers=api.admin)
    assert r.status_code == 200, r.text


def queued(api: Api, headers: dict[str, str]) -> int:
    usage = api.client.get("/v1/users/me", headers=headers).json()["usage"]
    count: int = usage["queued_jobs"]
    return count


def test_trials_wait_for_room_in_the_owners_queue_quota(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    set_quota(api, alice_id, max_queued_jobs=6)
    # Both budgets (3 trials, 2 at a time) fit; then an admin lowers the quota.
    ids = [
        api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"] for _ in "ab"
    ]
    set_quota(api, alice_id, max_queued_jobs=3)
    controller = SweepController(api.settings, api.sessions)
    controller.poll()
    assert queued(api, alice) == 3  # not 4: the fourth trial waits
    trials = [api.client.get(f"/v1/sweeps/{i}", headers=alice).json()["trials"] for i in ids]
    waiting = [t for ts in trials for t in ts if t["status"] == "pending"]
    assert len(waiting) == 1 and waiting[0]["job_id"] is None
    assert waiting[0]["error"] == (
        "waiting for room in the owner's quota: "
        "max_queued_jobs: 3 queued + 1 new exceeds the quota of 3"
    )
    controller.poll()  # still no room: still waiting, nothing queued over the quota
    assert queued(api, alice) == 3

    api.claim()  # one trial job starts running: one place in the queue
    controller.poll()
    assert queued(api, alice) == 3
    trials = [api.client.get(f"/v1/sweeps/{i}", headers=alice).json()["trials"] for i in ids]
    assert [len(ts) for ts in trials] == [2, 2]
    assert all(t["job_id"] is not None and t["error"] is None for ts in trials for t in ts)


def test_a_retry_of_an_accepted_sweep_is_answered_whatever_the_quota(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    set_quota(api, alice_id, max_queued_jobs=4)
    key = {**alice, "Idempotency-Key": "retried"}
    first = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=key)
    assert first.status_code == 201, first.text
    SweepController(api.settings, api.sessions).poll()  # 2 trial jobs queued
    api.submit(alice)  # 3 queued: a new budget of 3 would not fit
    again = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    fresh = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    assert fresh.status_code == 429 and "max_queued_jobs" in fresh.text


def test_active_sweeps_budgets_count_against_a_new_sweep(api: Api) -> None:
    """Sweeps waiting for room were accepted without limit (60 of them under a quota
    of 2, each costing every controller poll): a new budget is now held to the queue
    plus what the user's active sweeps may still queue. Finished sweeps, and trials
    whose jobs were queued (counted as queued jobs), count once."""
    alice_id, alice = api.create_user("alice")
    set_quota(api, alice_id, max_queued_jobs=7)
    first = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    second = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    assert first.status_code == second.status_code == 201, second.text
    third = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    assert third.status_code == 429
    assert third.json()["detail"] == (
        "max_queued_jobs: 0 queued + 9 new (the sweep's 3 `trials` and 6 that your 2 "
        "active sweeps may still queue) exceeds the quota of 7"
    )
    SweepController(api.settings, api.sessions).poll()  # 2 + 2 trial jobs queued
    assert queued(api, alice) == 4
    again = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    detail = again.json()["detail"]
    assert "4 queued + 5 new" in detail and "2 that your 2" in detail
    cancel = api.client.post(f"/v1/sweeps/{first.json()['id']}/cancel", headers=alice)
    assert cancel.status_code == 202, cancel.text
    fits = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    assert fits.status_code == 201, fits.text  # 2 queued (the second's) + 1 + 3 <= 7


def test_a_trial_that_ended_without_a_job_is_spent_not_still_to_come(api: Api) -> None:
    """An invalid point fails its trial with no job: it used its place in the budget,
    so it is not counted as a trial the sweep may still queue."""
    alice_id, alice = api.create_user("alice")
    set_quota(api, alice_id, max_queued_jobs=7)
    for _ in "ab":
        assert api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).status_code == 201
    set_quota(api, alice_id, max_queued_jobs=3)
    SweepController(api.settings, api.sessions).poll()  # 3 queued, 1 pending
    with transaction(api.sessions) as session:
        [pending] = session.scalars(select(SweepTrial).where(SweepTrial.state == "pending"))
        fail_trial(session=session, trial=pending, error="invalid point: task.seq_len: …")
    set_quota(api, alice_id, max_queued_jobs=7)
    refused = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    assert refused.status_code == 429, refused.text
    assert refused.json()["detail"].startswith(
        "max_queued_jobs: 3 queued + 5 new (the sweep's 3 `trials` and 2 that your 2 active"
    ), refused.json()


def _csv_of_64_values(rows: int) -> bytes:
    return "".join(
        f"{r % 2}," + ",".join("0.5" for _ in range(64)) + "\n" for r in range(rows)
    ).encode()


def test_a_point_that_does_not_fit_the_upload_fails_its_trial_and_queues_no_job(api: Api) -> None:
    _alice_id, alice = api.create_user("alice")
    r = api.client.post(
        "/v1/datasets", files={"file": ("rows.csv", _csv_of_64_values(40))}, headers=alice
    )
    assert r.status_code == 201, r.text
    ref = r.json()["ref"]
    # seq_len must divide the 64 values of a row: the corners 8 and 16 do, 9..15 do not.
    sweep = copy.deepcopy(SMALL_SWEEP)
    sweep.update(
        base={
            "task": {"kind": "sequence_classification", "dataset": ref},
            "model": {"cell": "rnn", "hidden_size": 4},
            "schedule": {"rounds": 2},
        },
        parameters={"task.seq_len": {"type": "int", "low": 8, "high": 16}},
        objectives=[{"metric": "val_accuracy", "direction": "maximize"}],
        trials=6,
        parallel=6,
        seed=3,
    )
    created = api.client.post("/v1/sweeps", json=sweep, headers=alice)
    assert created.status_code == 201, created.text
    SweepController(api.settings, api.sessions).poll()
    trials = api.client.get(f"/v1/sweeps/{created.json()['id']}", headers=alice).json()["trials"]
    assert len(trials) == 6
    fits = [t for t in trials if 64 % t["params"]["task.seq_len"] == 0]
    misfits = [t for t in trials if 64 % t["params"]["task.seq_len"] != 0]
    assert misfits, "the seed must draw a point between the corners"
    for trial in misfits:
        assert trial["status"] == "failed" and trial["job_id"] is None, trial
        assert trial["error"].startswith("invalid point: task.seq_len: "), trial["error"]
    for trial in fits:
        assert trial["status"] == "queued" and trial["job_id"] is not None, trial
    assert queued(api, alice) == len(fits)


def test_trials_wait_while_the_owner_is_over_the_storage_quota(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    text = b"abcdefghij " * 6000  # 66 kB
    r = api.client.post("/v1/datasets", files={"file": ("t.txt", text)}, headers=alice)
    assert r.status_code == 201, r.text
    sweep_id = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice).json()["id"]
    # Then over it before the trials are queued (in a long sweep, its own trials'
    # checkpoints count too): here an admin lowers the quota below the use.
    set_quota(api, alice_id, max_storage_bytes=50_000)
    controller = SweepController(api.settings, api.sessions)
    controller.poll()
    trials = api.client.get(f"/v1/sweeps/{sweep_id}", headers=alice).json()["trials"]
    assert [(t["status"], t["job_id"]) for t in trials] == [("pending", None)] * 2
    assert trials[0]["error"] == (
        "waiting for room in the owner's quota: "
        "max_storage_bytes: 66,000 bytes stored exceeds the quota of 50,000; deleting "
        "finished jobs' checkpoints, finished jobs or uploads frees it"
    )
    assert trials[1]["error"] is None  # not tried: the first found no room
    assert queued(api, alice) == 0

    # Cancelled while waiting: the trials are cancelled and no longer say they wait.
    cancelled = api.client.post(f"/v1/sweeps/{sweep_id}/cancel", headers=alice).json()
    assert cancelled["status"] == "cancelled"
    assert [(t["status"], t["error"]) for t in cancelled["trials"]] == [("cancelled", None)] * 2


def test_a_trial_whose_gang_the_quota_no_longer_allows_fails_and_the_rest_go_on(
    api: Api,
) -> None:
    """The sweep's submit checks the gang at its space's corners against the CPU
    quota; an admin lowering it afterwards left the controller queueing trial jobs
    that could never start, each holding a queue place for good (a review). Such a
    point fails as an invalid one, saying why; the others are queued."""
    alice_id, alice = api.create_user("alice")
    sweep = {
        **SMALL_SWEEP,
        "parameters": {"distributed.workers": {"type": "categorical", "choices": [1, 3]}},
        "trials": 4,
        "parallel": 4,
    }
    r = api.client.post("/v1/sweeps", json=sweep, headers=alice)
    assert r.status_code == 201, r.text
    set_quota(api, alice_id, max_cpus=3)  # 1 + 3 workers x 1 CPU no longer fits
    SweepController(api.settings, api.sessions).poll()
    trials = api.client.get(f"/v1/sweeps/{r.json()['id']}", headers=alice).json()["trials"]
    wide = [t for t in trials if t["params"]["distributed.workers"] == 3]
    narrow = [t for t in trials if t["params"]["distributed.workers"] == 1]
    assert wide and narrow, trials  # the sampler's seeded draws hold both
    for trial in wide:
        assert (trial["status"], trial["job_id"]) == ("failed", None), trial
        assert trial["error"].startswith("invalid point: max_cpus: the gang needs 4 CPUs")
    assert all(t["status"] == "queued" and t["job_id"] for t in narrow), narrow
    assert queued(api, alice) == len(narrow)
