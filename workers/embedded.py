"""Process wiring for `lagtrain worker` and `lagtrain server --embedded`."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from types import FrameType

from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker
from workers.dispatcher import SHUTDOWN_JOIN_SECONDS, Dispatcher
from workers.ray_runtime import connect, total_resources
from workers.sweeps.controller import SweepController

# Named for what it reports (the worker process: its start, its signals), not for
# this module: `lagtrain worker` logged "workers.embedded" though nothing was embedded.
log = logging.getLogger("workers.process")

EMBEDDED_DRAIN_SECONDS = 3.0


def start_dispatcher_thread(
    settings: Settings, stack: ExitStack, ceiling_names: Mapping[str, str] | None = None
) -> Dispatcher:
    """A dispatcher and a sweep controller on background threads, stopped (and the
    dispatcher's jobs handed back) when `stack` closes. Ray must already be connected.
    `ceiling_names`: what set its capacity ceilings where not the operator
    (`local_ray_ceiling_names`), named before its first look at the queue."""
    engine = make_engine(settings.database_url)
    stack.callback(engine.dispose)
    sessions = make_sessionmaker(engine)
    dispatcher = Dispatcher(settings, sessions)
    dispatcher.capacity.ceiling_names.update(ceiling_names or {})
    thread = threading.Thread(target=dispatcher.run_forever, name="dispatcher", daemon=True)
    thread.start()

    def stop() -> None:
        # A short drain (the server must exit within ~10 s): jobs whose round ends in
        # time hand back a fresh checkpoint, the others their last one.
        dispatcher.drain(EMBEDDED_DRAIN_SECONDS)
        thread.join(timeout=EMBEDDED_DRAIN_SECONDS + SHUTDOWN_JOIN_SECONDS + 1)

    stack.callback(stop)
    start_sweep_controller(SweepController(settings, sessions), stack)
    return dispatcher


def start_sweep_controller(controller: SweepController, stack: ExitStack) -> None:
    """Run `controller` on a background thread until `stack` closes. Every dispatcher
    process runs one: sweeps advance wherever trials can run, and the step lease keeps
    several controllers from advancing one sweep at once."""
    thread = threading.Thread(target=controller.run_forever, name="sweeps", daemon=True)
    thread.start()

    def stop() -> None:
        controller.stop()
        thread.join(timeout=60)

    stack.callback(stop)


# The ceilings `server --embedded` sets from its local Ray's totals, by setting, and
# what a too-large job's reason names as their source: LAGTRAIN_EMBEDDED_RAY_CPUS
# sizes the local Ray's CPUs; its GPUs are those Ray finds on the host. (A walkthrough's
# embedded server named LAGTRAIN_CAPACITY_CEILING_*, which nobody had set.)
LOCAL_RAY_CEILINGS = {
    "capacity_ceiling_cpus": (
        "CPU",
        "LAGTRAIN_EMBEDDED_RAY_CPUS, the CPUs of the local Ray `server --embedded` started",
    ),
    "capacity_ceiling_gpus": (
        "GPU",
        "the GPUs the local Ray of `server --embedded` found on this host",
    ),
}


def _left_unset(settings: Settings) -> list[str]:
    """The ceilings the operator set none of: the local Ray's totals stand in."""
    return [name for name in LOCAL_RAY_CEILINGS if getattr(settings, name) is None]


def local_ray_ceilings(settings: Settings, cpus: float, gpus: float) -> Settings:
    """`settings` with the local Ray's totals as the capacity ceilings (where the
    operator set none): the Ray this process started is the whole cluster and never
    grows, so a job too large for it fails at once, as a dispatcher with both ceilings
    set judges from its start (workers.capacity; without them it first watches its
    window, 600 s, and a sweep's misfit trials waited that long under `make run`)."""
    local = {"capacity_ceiling_cpus": cpus, "capacity_ceiling_gpus": gpus}
    return settings.model_copy(update={name: local[name] for name in _left_unset(settings)})


def local_ray_ceiling_names(settings: Settings) -> dict[str, str]:
    """By resource, what set the ceilings `local_ray_ceilings` sets, for the
    dispatcher's too-large reasons (CapacityWindow.ceiling_names)."""
    return dict(LOCAL_RAY_CEILINGS[name] for name in _left_unset(settings))


def start_embedded(settings: Settings, stack: ExitStack) -> Callable[[], None]:
    """Local Ray plus one dispatcher beside the API (DESIGN §9). Returns the
    dispatcher's wake-up, for the API's submit route to call (no poll delay)."""
    connect(None, num_cpus=settings.embedded_ray_cpus)
    dispatcher = start_dispatcher_thread(
        local_ray_ceilings(settings, *total_resources()),
        stack,
        ceiling_names=local_ray_ceiling_names(settings),
    )
    log.info(
        "embedded mode: local Ray (%s logical CPUs) and one dispatcher", settings.embedded_ray_cpus
    )
    return dispatcher.wake


def install_drain_handlers(dispatcher: Dispatcher, drain_seconds: float) -> None:
    """The first SIGTERM or SIGINT drains the dispatcher (its jobs go back to the queue
    checkpointed, no attempt used); a second one exits at once (the leases then run
    out and the jobs are rerun from their last checkpoint)."""
    signals_seen: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            log.warning("signal %s again: exiting at once", signum)
            os._exit(128 + signum)
        log.info("signal %s: draining the dispatcher (at most %g s)", signum, drain_seconds)
        # A worker leaves a margin for handing the last jobs back after the deadline.
        dispatcher.request_drain(max(1.0, drain_seconds - SHUTDOWN_JOIN_SECONDS))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def run_worker(settings: Settings) -> None:
    """`lagtrain worker`: one dispatcher in the foreground, and a sweep controller
    beside it, until SIGTERM/SIGINT."""
    if not settings.ray_address:
        # DESIGN §8: unset means a local Ray. On a cluster host that is a mistake the
        # operator must see: this worker would claim jobs and run them off the cluster.
        log.warning(
            "RAY_ADDRESS is not set: starting a local Ray on this host, which runs the "
            "jobs this worker claims; to join a cluster set RAY_ADDRESS to its head "
            "(host:6379, docs/cluster.md)"
        )
    connect(settings.ray_address, retry_seconds=settings.ray_connect_seconds)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    dispatcher = Dispatcher(settings, sessions)

    install_drain_handlers(dispatcher, settings.drain_seconds)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        start_sweep_controller(SweepController(settings, sessions), stack)
        dispatcher.run_forever()
