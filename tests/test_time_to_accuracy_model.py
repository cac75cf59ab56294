"""benchmarks.time_to_accuracy's link model: what the replica's lookahead may hide."""

from __future__ import annotations

import pytest

from benchmarks.time_to_accuracy import WORKERS, ToTarget, wall_time

P = 5_000_000
GBIT = 1e9
BROADCAST = 32 * P / GBIT  # 0.16 s


def run(evals: int, *, rounds: int = 10, uploads: int = 40) -> ToTarget:
    return ToTarget("r", rounds, uploads, evals, None, 1.0)


def test_dense_has_nothing_to_hide() -> None:
    dense = run(WORKERS * 10, uploads=WORKERS * 10)
    with_look = wall_time(dense, params=P, compute=0.1, bandwidth=GBIT)
    without = wall_time(dense, params=P, compute=0.1, bandwidth=GBIT, lookahead=False)
    assert (
        with_look
        == without
        == pytest.approx(10 * (0.1 + BROADCAST) + WORKERS * 10 * (32 * P / GBIT + 50e-6))
    )


@pytest.mark.parametrize(("compute", "exposed"), [(0.1, 0.0), (0.25, 0.25 - BROADCAST)])
def test_anchor_evaluations_are_hidden_up_to_the_broadcast(compute: float, exposed: float) -> None:
    anchors = 3 * WORKERS  # three rounds' worth of second evaluations
    lazy = run(WORKERS * 10 + anchors)
    base = wall_time(run(WORKERS * 10), params=P, compute=compute, bandwidth=GBIT)
    with_look = wall_time(lazy, params=P, compute=compute, bandwidth=GBIT)
    without = wall_time(lazy, params=P, compute=compute, bandwidth=GBIT, lookahead=False)
    assert base is not None and with_look is not None and without is not None
    assert with_look - base == pytest.approx(3 * exposed)
    assert without - base == pytest.approx(3 * compute)


def test_a_run_that_never_reached_has_no_time() -> None:
    missed = ToTarget("r", None, 40, 80, 8, 2.0)
    assert wall_time(missed, params=P, compute=0.1, bandwidth=GBIT) is None
