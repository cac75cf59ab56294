"""Process wiring for `lagtrain worker` and `lagtrain server --embedded`."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import ExitStack
from types import FrameType

from service.settings import Settings
from service.store.db import make_engine, make_sessionmaker
from workers.dispatcher import Dispatcher
from workers.ray_runtime import connect

log = logging.getLogger(__name__)


def start_dispatcher_thread(settings: Settings, stack: ExitStack) -> Dispatcher:
    """A dispatcher on a background thread, stopped (and its jobs handed back) when
    `stack` closes. Ray must already be connected."""
    engine = make_engine(settings.database_url)
    stack.callback(engine.dispose)
    dispatcher = Dispatcher(settings, make_sessionmaker(engine))
    thread = threading.Thread(target=dispatcher.run_forever, name="dispatcher", daemon=True)
    thread.start()

    def stop() -> None:
        dispatcher.stop()
        thread.join(timeout=60)

    stack.callback(stop)
    return dispatcher


def start_embedded(settings: Settings, stack: ExitStack) -> None:
    """Local Ray plus one dispatcher beside the API (DESIGN §9)."""
    connect(None, num_cpus=settings.embedded_ray_cpus)
    start_dispatcher_thread(settings, stack)
    log.info(
        "embedded mode: local Ray (%s logical CPUs) and one dispatcher", settings.embedded_ray_cpus
    )


def run_worker(settings: Settings) -> None:
    """`lagtrain worker`: one dispatcher in the foreground until SIGTERM/SIGINT."""
    connect(settings.ray_address)
    engine = make_engine(settings.database_url)
    dispatcher = Dispatcher(settings, make_sessionmaker(engine))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping the dispatcher", signum)
        dispatcher.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        dispatcher.run_forever()
    finally:
        engine.dispose()
