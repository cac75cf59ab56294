"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from service.api import (
    audit,
    cluster,
    datasets,
    health,
    job_data,
    job_history,
    jobs,
    jobs_feed,
    removals,
    sweeps,
    users,
)
from service.api.body_limit import BodySizeLimit
from service.api.datasets import MULTIPART_OVERHEAD_BYTES
from service.api.query_check import reject_unknown_query
from service.api.responses import errors
from service.api.stream_guard import StreamSlots
from service.api.stream_hub import StreamHub
from service.bootstrap import bootstrap_admin
from service.http_errors import install_error_handlers
from service.settings import Settings
from service.store.cluster_capacity import ClusterCapacity
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.job_counts import TerminalCounts
from service.store.reaper import requeue_expired
from service.ui import routes as ui_routes
from service.ui.security import UiSecurityHeaders

API_VERSION = "1"


def requeue_expired_leases(sessions: sessionmaker[Session]) -> None:
    """The reaper also runs at server start (DESIGN §4): jobs whose dispatcher died
    while no dispatcher was left go back to the queue, not stay 'running'."""
    with transaction(sessions) as session:
        requeue_expired(session=session, actor="reaper:server-start")


def create_app(settings: Settings, *, on_job_queued: Callable[[], None] | None = None) -> FastAPI:
    """The API over the store at settings.database_url (already migrated). On start,
    an empty store gets its admin user (see service.bootstrap). `on_job_queued` is
    called after each committed submit: `server --embedded` passes its in-process
    dispatcher's wake-up, so a job starts without waiting for the next poll."""
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = make_sessionmaker(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(bootstrap_admin, sessions, settings)
        await run_in_threadpool(requeue_expired_leases, sessions)
        yield
        await run_in_threadpool(_app.state.stream_hub.close)
        engine.dispose()

    # FastAPIOffline: /docs and /redoc load their scripts from this server, not a CDN
    # (a lab's network may have no internet); otherwise a plain FastAPI app.
    app = FastAPIOffline(
        static_url="/docs/assets",
        title="lagtrain",
        version=API_VERSION,
        description="Multi-user RNN training with Lazily Aggregated Gradient (LAG) on Ray.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.stream_slots = StreamSlots()
    app.state.on_job_queued = on_job_queued
    app.state.cluster_capacity = ClusterCapacity()  # the live dispatchers, for submits
    app.state.terminal_counts = TerminalCounts()  # /v1/cluster's and /metrics' job counts
    app.state.stream_hub = StreamHub(sessions)  # one store poller per watched job
    install_error_handlers(app)
    app.include_router(health.router)  # /healthz touches no database; /readyz says 503
    # Every other route reads or writes the store: a store that does not answer is a
    # 503 on any of them (http_errors), declared once here.
    for router in (
        jobs.submit_router,
        jobs.router,
        job_data.router,
        datasets.router,
        users.router,
        cluster.router,
        sweeps.router,
        removals.jobs_router,
        removals.sweeps_router,
        audit.router,
        job_history.router,
        jobs_feed.router,
    ):
        # A query parameter a route does not take is a 422 (service.api.query_check).
        app.include_router(
            router, responses=errors(503), dependencies=[Depends(reject_unknown_query)]
        )
    # The pages' own routes take what a browser sends (a bookmark's or a link's query).
    app.include_router(ui_routes.router, responses=errors(503))
    app.mount("/ui/static", ui_routes.static_files(), name="ui-static")
    app.add_middleware(UiSecurityHeaders)
    app.add_middleware(
        BodySizeLimit,
        default_limit=settings.max_request_bytes,
        route_limits={
            ("POST", "/v1/datasets"): (
                settings.max_dataset_bytes + MULTIPART_OVERHEAD_BYTES,
                f"a dataset file may have {settings.max_dataset_bytes} bytes "
                f"(LAGTRAIN_MAX_DATASET_BYTES) and its form {MULTIPART_OVERHEAD_BYTES} more",
            )
        },
    )
    return app


def create_app_from_env() -> FastAPI:
    """The app of each web worker process of `lagtrain server` with
    LAGTRAIN_WEB_WORKERS > 1 (service.web_workers): every process builds its own
    settings object."""
    return create_app(Settings())


def freeze_for_serving() -> None:
    """For a server process, once its app is built: what exists then (modules, routes,
    models, validators) lives as long as the process; frozen out of the collector's
    view, a full collection no longer walks it between requests (issue 13: the
    submit's p99 under load 44 -> 36 ms). Not in the app's start-up: a process that
    builds many apps (the test suite) would pay a full collection for each."""
    gc.collect()
    gc.freeze()
