"""A sweep step whose asks outlast its step lease (a GP's asks grow with the trials)
renews the lease and records what it asked, on the real store (SQLite and
PostgreSQL): before, with two controllers, each took the expired lease from the other
in turn and no trial was ever recorded (a review)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from service.errors import StaleLease
from service.store import sweep_steps
from service.store.db import db_now, transaction
from service.store.models import Sweep
from tests.hand_clock import Clock
from tests.polling import wait_until
from tests.sweeps.conftest import Lab
from workers.sweeps import study
from workers.sweeps.step_lease import StepLease

LEASE_S = 1.0
ASK_S = 0.4  # one point's ask: four of them outlast the lease


def test_two_controllers_record_the_trials_of_asks_longer_than_the_lease(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = study.build

    def slow_build(*args: Any, **kwargs: Any) -> Any:
        time.sleep(ASK_S)  # the sampler's work, not a wait for anything
        return real_build(*args, **kwargs)

    monkeypatch.setattr(study, "build", slow_build)
    sweep_id = lab.submit(trials=4, parallel=4)
    controllers = [
        lab.controller(name, sweep_step_lease_seconds=LEASE_S, sweep_poll_seconds=0.05)
        for name in ("a", "b")
    ]
    threads = [threading.Thread(target=c.run_forever, daemon=True) for c in controllers]
    for thread in threads:
        thread.start()
    try:
        wait_until(
            lambda: len(lab.trials(sweep_id)) == 4, timeout=60, what="the sweep's four trials"
        )
    finally:
        for controller in controllers:
            controller.stop()
        for thread in threads:
            thread.join(timeout=30)
    assert [t.number for t in lab.trials(sweep_id)] == [0, 1, 2, 3]
    assert len(lab.jobs(sweep_id)) == 4


def test_renewing_extends_only_the_current_token(lab: Lab) -> None:
    sweep_id = lab.submit(trials=4, parallel=2)
    with transaction(lab.sessions) as session:
        token = sweep_steps.take_step(
            session=session, sweep_id=sweep_id, controller_id="a", lease_seconds=1
        )
    assert token is not None
    with transaction(lab.sessions) as session:
        sweep_steps.renew_step(session=session, sweep_id=sweep_id, token=token, lease_seconds=600)
        now = db_now(session)
    with transaction(lab.sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None and sweep.step_expires_at is not None
        assert (sweep.step_expires_at - now).total_seconds() > 500
        # Another controller finds the lease held.
        assert (
            sweep_steps.take_step(
                session=session, sweep_id=sweep_id, controller_id="b", lease_seconds=1
            )
            is None
        )
    with (
        pytest.raises(StaleLease, match="not current"),
        transaction(lab.sessions) as session,
    ):
        sweep_steps.renew_step(
            session=session, sweep_id=sweep_id, token="not-the-token", lease_seconds=600
        )


def test_a_controller_whose_release_failed_takes_its_lease_again(lab: Lab) -> None:
    """A store outage in the middle of a step fails its release too: the same
    controller steps the sweep again at its next poll, not a whole lease later; another
    controller still finds it held."""
    sweep_id = lab.submit(trials=4, parallel=2)
    with transaction(lab.sessions) as session:
        first = sweep_steps.take_step(
            session=session, sweep_id=sweep_id, controller_id="a", lease_seconds=600
        )
        held = sweep_steps.take_step(
            session=session, sweep_id=sweep_id, controller_id="b", lease_seconds=600
        )
        again = sweep_steps.take_step(
            session=session, sweep_id=sweep_id, controller_id="a", lease_seconds=600
        )
    assert first is not None and held is None
    assert again is not None and again != first


def test_a_lease_is_kept_from_when_it_was_taken(lab: Lab) -> None:
    """Observe and prune may use a quarter of the lease before the first ask: the lease
    is renewed then (counted from when it was taken), and asking stops a third of the
    lease after it was taken — one point is still asked a step."""
    sweep_id = lab.submit(trials=4, parallel=2)
    with transaction(lab.sessions) as session:
        token = sweep_steps.take_step(
            session=session, sweep_id=sweep_id, controller_id="a", lease_seconds=60
        )
    first = lab.sweep(sweep_id).step_expires_at
    assert token is not None and first is not None
    clock = Clock(100.0)
    lease = StepLease(lab.sessions, sweep_id, token, lease_seconds=60, taken_at=84.0, clock=clock)
    lease.renew_if_due()  # 16 s since it was taken: past a quarter
    renewed = lab.sweep(sweep_id).step_expires_at
    assert renewed is not None and renewed > first
    assert lease.go_on() is True  # 16 s: under a third
    clock.now = 105.0
    assert lease.go_on() is False  # 21 s: past a third
    assert lab.sweep(sweep_id).step_expires_at == renewed  # renewed 5 s ago: not due
