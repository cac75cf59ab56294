"""Issue 12's two goals judged on one row of benchmarks/rnn_comm.py, each miss with the
reason the run itself shows.

- uploads: the default lazy rule (CADA2) reaches its dense twin's final metric within
  1 % with <= 0.5x the twin's uploads to that point;
- bytes: the best of the lazy rules run (CADA2 / LASG-WK2 / LAQ by default) does so
  with <= 0.35x the twin's bytes.

A rule misses either because it never came within 1 % of the twin (it lost accuracy:
the final metric against the target says by how much) or because it came within 1 %
but uploaded too much to get there (the share of worker-rounds its lazy test skipped
over the whole run says how lazy it was).
"""

from __future__ import annotations

from dataclasses import dataclass

UPLOAD_GOAL = 0.5
BYTES_GOAL = 0.35
DEFAULT_RULE = "CADA2"


@dataclass(frozen=True)
class Outcome:
    """One lazy run against its twin."""

    rule: str  # the rnn_comm label: CADA2, LASG-WK2, LAQ+SGD, ...
    final: float
    target: float  # the twin's final metric within 1 %
    upload_ratio: float | None  # None: never reached the target
    byte_ratio: float | None
    skipped: float  # share of the twin's worker-rounds the lazy run did not upload

    @property
    def reached(self) -> bool:
        return self.upload_ratio is not None


def _lost(outcome: Outcome) -> str:
    return (
        f"{outcome.rule} lost accuracy: final {outcome.final:.4f} vs target "
        f"{outcome.target:.4f}, having skipped {outcome.skipped:.0%} of worker-rounds"
    )


def uploads_verdict(outcome: Outcome | None) -> str:
    """The uploads goal for the default rule's outcome (None: it was not run)."""
    if outcome is None:
        return f"not measured ({DEFAULT_RULE} not among --rules)"
    if outcome.upload_ratio is None:
        return f"missed: {_lost(outcome)}"
    if outcome.upload_ratio <= UPLOAD_GOAL:
        return f"met: {outcome.upload_ratio:.3f}x"
    return (
        f"missed: at parity with {outcome.upload_ratio:.3f}x the uploads; its lazy test "
        f"skipped only {outcome.skipped:.0%} of worker-rounds"
    )


def bytes_verdict(outcomes: list[Outcome]) -> str:
    """The bytes goal for the best of the row's lazy rules."""
    reached = [o for o in outcomes if o.byte_ratio is not None]
    if not reached:
        return "missed: no rule reached parity (" + "; ".join(map(_lost, outcomes)) + ")"
    best = min(reached, key=lambda o: o.byte_ratio or 0.0)
    assert best.byte_ratio is not None
    if best.byte_ratio <= BYTES_GOAL:
        return f"met: best {best.rule} {best.byte_ratio:.3f}x"
    lost = [_lost(o) for o in outcomes if not o.reached]
    return (
        f"missed: best {best.rule} {best.byte_ratio:.3f}x, having skipped {best.skipped:.0%} "
        "of worker-rounds" + "".join(f"; {x}" for x in lost)
    )
