"""What a job run learns from its gang's events and how it ends: the progress the
records show, the summary written when it ends (succeeded, or cancelled / failed
after rounds ran), the events waiting for the store, and how an error that ended
the gang reads in the job's record (workers.job_run)."""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import ray
from sqlalchemy.orm import Session

from service.schemas.metric_names import EVAL_METRIC_NAMES
from service.store import metrics
from service.store.models import Job
from workers.ray_job import CheckpointEvent, JobEvent, RayJob, RecordEvent
from workers.resume import rounds_done
from workers.training.rounds import Diverged


@dataclass
class ReaderOutcome:
    """What the event-reading thread saw: done, or the error that ended it."""

    done: bool = False
    error: BaseException | None = None


# Put by the reader after the gang's last event (or its error): the supervisor
# (workers.job_run), waiting for an event, sees the end at once, not after the wait.
END = None
Events = queue.Queue["JobEvent | None"]


def read_events(gang: RayJob, events: Events, outcome: ReaderOutcome) -> None:
    """The reader thread: the gang's events into `events`, then END."""
    try:
        for event in gang.events():
            events.put(event)
        outcome.done = True
    except BaseException as exc:  # handed to the supervisor thread
        outcome.error = exc
    finally:
        events.put(END)


# A job's own pace widens the stall bound: silence up to this many times its longest
# gap between events so far is still the job working (a slow evaluation, a large
# checkpoint), not a hang.
PACE_FACTOR = 3.0


@dataclass
class StallWatch:
    """Silence from a running gang. A replica or the driver that hangs without dying
    is invisible to Ray and to the data plane (a stopped process keeps its socket),
    so a run counts as stalled after `bound` seconds without an event (settings.
    stall_seconds; 0 = never), or PACE_FACTOR times the longest gap it has shown if
    that is longer. Until the first event the gang is also still starting (its
    actors build their task and join the data plane on the first round), which may
    take as long as a placement: `startup` seconds more (gang_ready_seconds)."""

    bound: float
    startup: float
    clock: Callable[[], float] = time.monotonic
    started: bool = False
    longest_gap: float = 0.0
    last: float = field(init=False)

    def __post_init__(self) -> None:
        self.last = self.clock()

    def heard(self) -> None:
        now = self.clock()
        if self.started:
            self.longest_gap = max(self.longest_gap, now - self.last)
        self.last, self.started = now, True

    def stalled(self, *, last_round: int) -> str | None:
        """The failure's reason once the silence is too long, else None. `last_round`:
        the newest round this attempt recorded (-1: none yet)."""
        silent = self.clock() - self.last
        allowed = (
            max(self.bound, PACE_FACTOR * self.longest_gap)
            if self.started
            else self.bound + self.startup
        )
        if self.bound <= 0 or silent < allowed:
            return None
        where = (
            "before this attempt's first round"
            if last_round < 0
            else f"after {rounds_done(last_round + 1)}"
        )
        return (
            f"stalled: the gang sent nothing for {silent:.0f} s {where} "
            f"(LAGTRAIN_STALL_SECONDS={self.bound:g}); a replica or the driver hung"
        )


@dataclass
class Progress:
    last_round: int = -1
    last_values: dict[str, float] = field(default_factory=dict)
    eval_values: dict[str, float] = field(default_factory=dict)
    last_checkpoint_round: int = -1

    def saved(self) -> bool:
        """Whether the newest round stored has its checkpoint stored too: a gang that
        fails after that point (closing its group, a replica dying as it ends) lost
        nothing, and a next attempt would only re-read it."""
        return self.last_round >= 0 and self.last_checkpoint_round == self.last_round

    def record(self, event: JobEvent) -> None:
        if isinstance(event, CheckpointEvent):
            self.last_checkpoint_round = event.round
        if isinstance(event, RecordEvent):
            self.last_round = event.round
            self.last_values = event.values
            self.eval_values.update(
                {k: v for k, v in event.values.items() if k in EVAL_METRIC_NAMES}
            )


def summary(
    session: Session, *, job_id: int, rounds: int, progress: Progress, attempt: int, wall_s: float
) -> dict[str, Any] | None:
    """The summary stored with the job when its dispatcher ends it: succeeded, or
    cancelled / failed after running rounds (nothing that ran is lost from the job's
    record; `rounds_completed` says how far it got, `rounds` is the spec's). None when
    no round ran in any attempt: there is nothing to sum up."""
    values = dict(progress.last_values)
    completed = progress.last_round + 1
    if not values:
        # This attempt ran no round itself (resumed from the final checkpoint, or it
        # ended before its first): the newest record of an earlier attempt, if any.
        latest = metrics.latest_record(session=session, job_id=job_id)
        if latest is None:
            return None
        completed, values = latest[0] + 1, latest[1]
    uploads = float(values.get("uploads_total") or 0.0)
    dense = float(values.get("dense_equiv_uploads") or 0.0)
    sent = float(values.get("bytes_up_total") or 0.0)
    # Absent from records written before the metric existed (a resume from them).
    dense_bytes = float(values.get("dense_equiv_bytes") or 0.0)
    # Non-finite figures (a diverged loss) are stored as null (attempts' json_safe).
    return {
        "rounds": rounds,
        "rounds_completed": completed,
        "final_metrics": {**values, **progress.eval_values},
        "uploads_total": uploads,
        "dense_equiv_uploads": dense,
        "uploads_saved_fraction": _saved(uploads, dense),
        "bytes_up_total": values.get("bytes_up_total"),
        "dense_equiv_bytes": dense_bytes,
        # Beside the uploads saved: LAQ uploads nearly every round, but fewer bytes.
        "bytes_saved_fraction": _saved(sent, dense_bytes),
        "attempt": attempt,
        "attempt_wall_time_s": round(wall_s, 3),
    }


def _saved(done: float, dense: float) -> float:
    """1 - done / dense: the fraction of a dense run's traffic not sent (0 without one)."""
    return (1.0 - done / dense) if dense else 0.0


T = TypeVar("T")


def drain(events: queue.Queue[T], *, timeout: float) -> list[T]:
    """What the queue holds, waiting up to `timeout` for the first item only."""
    batch: list[T] = []
    try:
        batch.append(events.get(timeout=timeout) if timeout > 0 else events.get_nowait())
        while True:
            batch.append(events.get_nowait())
    except queue.Empty:
        return batch


# Ray colours its tracebacks for a terminal; a job's error is read in JSON, the
# dashboard and logs, where the escape codes are noise (DESIGN §6: no tracebacks).
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The gang's actor names (workers.ray_job; `-tryN` after a checkpoint fallback's
# restart): which one failed, for the job's error.
_ACTOR = re.compile(r"lagtrain-job\d+-attempt\d+(?:-try\d+)?-(driver|replica(\d+))")


def ended(job: Job) -> tuple[str, str | None]:
    """(status, error) of the job a final write returned, read in its session."""
    return job.status, job.error


def divergence(error: BaseException) -> Diverged | None:
    """The Diverged that ended the gang, or None. Checked on Ray's wrapper first:
    RayTaskError.as_instanceof_cause() is also an instance of Diverged, but its str()
    is Ray's whole remote traceback; the job's error is the cause's own message."""
    cause = getattr(error, "cause", None)  # RayTaskError carries the remote exception
    if isinstance(cause, Diverged):
        return cause
    return error if isinstance(error, Diverged) else None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _which_actor(text: str) -> str:
    found = _ACTOR.search(text)
    if found is None:
        return "an actor of the gang"
    return "the driver" if found.group(2) is None else f"replica {found.group(2)}"


def failure_reason(error: BaseException) -> str:
    """One line for the job's error: the remote exception's type and message, or
    which actor died and why — never Ray's traceback."""
    cause = getattr(error, "cause", None)
    if isinstance(error, ray.exceptions.RayTaskError) and isinstance(
        cause, ray.exceptions.RayError
    ):
        return failure_reason(cause)  # the driver's call to a replica that died
    if isinstance(error, ray.exceptions.RayTaskError) and cause is not None:
        return _ANSI.sub("", f"{type(cause).__name__}: {cause}")[:500]
    if isinstance(error, ray.exceptions.RayTaskError):
        return _last_line(str(error))[:500] or type(error).__name__
    if isinstance(error, ray.exceptions.RayActorError):
        text = str(error)
        who = _which_actor(text)
        if error.actor_init_failed:
            # The creation task's traceback is in the text; its last line is the error.
            return f"{who} failed to start: {_last_line(text)}"[:500]
        # Ray's context lines (class, id, pid, name, ...) come before the reason.
        return f"{who} died: {_last_line(text) or type(error).__name__}"[:500]
    return _ANSI.sub("", f"{type(error).__name__}: {error}")[:500]


@dataclass(frozen=True)
class RunEnd:
    """How an attempt whose gang stopped ends: `write`, the attempts call that ends it
    (with `reason` and `retryable` for a failure, `reason` for a hand-back);
    `closing_error`, an error the gang raised as it closed, after its last checkpoint
    was stored (logged; it costs nothing)."""

    write: Literal["finish", "acknowledge_cancel", "fail", "release"]
    reason: str = ""
    retryable: bool = True
    closing_error: str | None = None


def run_end(
    outcome: ReaderOutcome, progress: Progress, rounds: int, *, cancelled: bool, draining: bool
) -> RunEnd:
    """The end of an attempt whose event stream ended: stopped or failed after a
    cancel, cancelled; diverged, failed for good; another error, failed and retried —
    unless its last round (or the drain's) and that round's checkpoint are stored
    (the error came as the gang closed: a review saw such a job use an attempt, or
    end `failed` on its last one, with every round recorded); a drain before the
    last round, handed back; else finished."""
    complete = progress.last_round + 1 >= rounds
    if cancelled and not complete:
        return RunEnd("acknowledge_cancel")
    closing_error = None
    if outcome.error is not None:
        if (diverged := divergence(outcome.error)) is not None:
            return RunEnd("fail", str(diverged), retryable=False)
        if not (progress.saved() and (complete or draining)):
            return RunEnd("fail", failure_reason(outcome.error))
        closing_error = failure_reason(outcome.error)
    if draining and not complete:
        reason = f"the worker drained after {rounds_done(progress.last_round + 1)}"
        return RunEnd("release", reason, closing_error=closing_error)
    return RunEnd("finish", closing_error=closing_error)
