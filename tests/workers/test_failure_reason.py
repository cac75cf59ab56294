"""How an error that ended a gang reads in the job's record: one line, the remote
exception's own message or which actor died — never Ray's coloured traceback
(DESIGN §6). The Ray exceptions are built as Ray builds them for a remote failure."""

from __future__ import annotations

import pickle

import pytest
from ray import exceptions as rex

from workers.job_outcome import divergence, failure_reason
from workers.training.rounds import Diverged

ANSI_TRACE = (
    "\x1b[36mray::JobDriver.run()\x1b[39m (pid=24084, ip=192.0.2.2)\n"
    '  File "workers/training/loop.py", line 92, in run_rounds\n'
    "    for last in rounds:\n"
)


def remote(cause: BaseException, function: str = "JobDriver.run") -> rex.RayTaskError:
    """What ray.get raises for `cause` raised in a remote call: the cause pickled
    across, wrapped (as_instanceof_cause: also an instance of the cause's class)."""
    cause = pickle.loads(pickle.dumps(cause))
    trace = ANSI_TRACE + f"{type(cause).__module__}.{type(cause).__name__}: {cause}"
    # Ray leaves RayTaskError's __init__ and as_instanceof_cause unannotated.
    wrapped = rex.RayTaskError(function, trace, cause)  # type: ignore[no-untyped-call]
    error: rex.RayTaskError = wrapped.as_instanceof_cause()  # type: ignore[no-untyped-call]
    return error


def test_a_divergence_reads_as_its_own_message() -> None:
    error = remote(Diverged(7))
    assert isinstance(error, Diverged)  # why the wrapper must not be taken as-is
    diverged = divergence(error)
    assert diverged is not None
    assert str(diverged) == (
        "training diverged at round 7 (non-finite loss, parameters or metrics): "
        "lower optimizer.lr, or set optimizer.clip_grad_norm"
    )
    assert diverged.round == 7
    assert divergence(Diverged(3)) is not None and divergence(ValueError("x")) is None


def test_a_remote_exception_reads_as_its_type_and_message() -> None:
    assert failure_reason(remote(ValueError("bad shard"))) == "ValueError: bad shard"


def test_an_actor_that_failed_to_start_names_itself_and_the_cause() -> None:
    init = rex.RayTaskError(  # type: ignore[no-untyped-call]  # Ray leaves __init__ unannotated
        "JobDriver.__init__",
        "\x1b[36mray::lagtrain-job54-attempt3-driver:JobDriver.__init__()\x1b[39m (pid=1)\n"
        '  File "workers/ray_actors.py", line 40, in __init__\n'
        "FileNotFoundError: [Errno 2] No such file: 'artifacts/datasets/7.txt'",
        FileNotFoundError(2, "No such file"),
    )
    reason = failure_reason(rex.ActorDiedError(init))
    assert reason == (
        "the driver failed to start: "
        "FileNotFoundError: [Errno 2] No such file: 'artifacts/datasets/7.txt'"
    )


def test_a_dead_replica_names_its_rank_and_ray_s_reason() -> None:
    died = rex.ActorDiedError()
    died.error_msg = (
        f"{rex.ActorDiedError.BASE_ERROR_MSG}\n\tclass_name: Replica\n"
        "\tname: lagtrain-job9-attempt1-replica1\n"
        "The actor is dead because it was killed by `ray.kill`."
    )
    assert str(died) == died.error_msg, "Ray prints error_msg: the test's premise"
    reason = "replica 1 died: The actor is dead because it was killed by `ray.kill`."
    assert failure_reason(died) == reason
    # As the job sees it: the driver's call to that replica failed with it.
    assert failure_reason(remote(died)) == reason


@pytest.mark.parametrize(
    ("name", "who"),
    [
        ("lagtrain-job9-attempt1-replica1", "replica 1"),
        ("lagtrain-job9-attempt1-driver", "the driver"),
        # A gang restarted after a checkpoint it could not load (RayJob.restart).
        ("lagtrain-job9-attempt1-try2-replica3", "replica 3"),
        ("lagtrain-job9-attempt1-try2-driver", "the driver"),
    ],
)
def test_a_dead_actor_is_named_after_a_restart_too(name: str, who: str) -> None:
    died = rex.ActorDiedError()
    died.error_msg = f"{rex.ActorDiedError.BASE_ERROR_MSG}\n\tname: {name}\nKilled."
    assert failure_reason(died) == f"{who} died: Killed."


def test_no_reason_carries_terminal_colours() -> None:
    # Ray leaves RayTaskError.__init__ unannotated.
    bare = rex.RayTaskError("f", ANSI_TRACE + "RuntimeError: boom", None)  # type: ignore[no-untyped-call]
    assert failure_reason(bare) == "RuntimeError: boom"
