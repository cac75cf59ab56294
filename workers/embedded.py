"""Process wiring for `lagtrain worker` and `lagtrain server --embedded`."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from types import FrameType

from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker
from workers.dispatcher import Dispatcher
from workers.ray_runtime import connect
from workers.sweeps.controller import SweepController

log = logging.getLogger(__name__)


def start_dispatcher_thread(settings: Settings, stack: ExitStack) -> Dispatcher:
    """A dispatcher and a sweep controller on background threads, stopped (and the
    dispatcher's jobs handed back) when `stack` closes. Ray must already be connected."""
    engine = make_engine(settings.database_url)
    stack.callback(engine.dispose)
    sessions = make_sessionmaker(engine)
    dispatcher = Dispatcher(settings, sessions)
    thread = threading.Thread(target=dispatcher.run_forever, name="dispatcher", daemon=True)
    thread.start()

    def stop() -> None:
        dispatcher.stop()
        thread.join(timeout=60)

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


def start_embedded(settings: Settings, stack: ExitStack) -> Callable[[], None]:
    """Local Ray plus one dispatcher beside the API (DESIGN §9). Returns the
    dispatcher's wake-up, for the API's submit route to call (no poll delay)."""
    connect(None, num_cpus=settings.embedded_ray_cpus)
    dispatcher = start_dispatcher_thread(settings, stack)
    log.info(
        "embedded mode: local Ray (%s logical CPUs) and one dispatcher", settings.embedded_ray_cpus
    )
    return dispatcher.wake


def run_worker(settings: Settings) -> None:
    """`lagtrain worker`: one dispatcher in the foreground, and a sweep controller
    beside it, until SIGTERM/SIGINT."""
    connect(settings.ray_address)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    dispatcher = Dispatcher(settings, sessions)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping the dispatcher", signum)
        dispatcher.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        start_sweep_controller(SweepController(settings, sessions), stack)
        dispatcher.run_forever()
