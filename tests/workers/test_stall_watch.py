"""StallWatch (workers/job_outcome.py) on a clock the test moves: the bound, the
start-up allowance before the first event, the job's own pace widening it, and 0 =
off. The dispatcher test in test_dispatcher.py drives it with a stopped replica."""

from __future__ import annotations

import pytest

from tests.hand_clock import Clock
from workers.job_outcome import PACE_FACTOR, StallWatch


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


def test_the_bound_counts_from_the_last_event_and_start_up_gets_more(clock: Clock) -> None:
    watch = StallWatch(bound=10.0, startup=120.0, clock=clock)
    clock.now += 129.0
    assert watch.stalled(last_round=-1) is None  # still starting: 10 + 120 allowed
    clock.now += 1.0
    reason = watch.stalled(last_round=-1)
    assert reason is not None and "before this attempt's first round" in reason
    watch.heard()  # the first record
    clock.now += 9.5
    assert watch.stalled(last_round=0) is None
    clock.now += 0.5
    reason = watch.stalled(last_round=41)
    assert reason is not None
    assert "nothing for 10 s after 42 rounds" in reason and "LAGTRAIN_STALL_SECONDS=10" in reason


def test_a_slow_job_widens_its_own_bound(clock: Clock) -> None:
    watch = StallWatch(bound=10.0, startup=0.0, clock=clock)
    watch.heard()
    clock.now += 40.0  # one slow evaluation: a 40 s gap (a stall already, had it hung)
    watch.heard()
    clock.now += PACE_FACTOR * 40.0 - 1.0
    assert watch.stalled(last_round=6) is None
    clock.now += 1.0
    assert watch.stalled(last_round=6) is not None


def test_zero_turns_it_off(clock: Clock) -> None:
    watch = StallWatch(bound=0.0, startup=0.0, clock=clock)
    clock.now += 1e9
    assert watch.stalled(last_round=-1) is None
