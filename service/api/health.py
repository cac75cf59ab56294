"""Liveness and readiness probes and Prometheus metrics (no authentication)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import AppSettings, Sessions
from service.api.responses import errors
from service.store.db import db_now, ping, read_transaction
from service.store.dispatchers import dispatcher_state, recent_dispatchers
from service.store.job_counts import status_counts

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "the database is unreachable"}})
def readyz(sessions: Sessions) -> JSONResponse:
    try:
        with read_transaction(sessions) as session:
            ping(session=session)
    except SQLAlchemyError:
        return JSONResponse(status_code=503, content={"detail": "database unreachable"})
    return JSONResponse(status_code=200, content={"status": "ready"})


@router.get("/metrics", response_class=PlainTextResponse, responses=errors(503))
def prometheus_metrics(
    request: Request, sessions: Sessions, settings: AppSettings
) -> PlainTextResponse:
    """Jobs by status, and the dispatchers seen in the last hour by state (alive,
    stopped, lost: as /v1/cluster), in Prometheus' text format (zeros included): an
    alert on `lagtrain_dispatchers{state="alive"} == 0` with jobs queued catches a
    cluster that runs nothing. The terminal statuses' counts may be up to 15 s old
    (service.store.job_counts); the live ones are exact."""
    with read_transaction(sessions) as session:
        counts = status_counts(session=session, terminal=request.app.state.terminal_counts)
        now = db_now(session)  # the clock dispatchers stamp last_seen_at by
        recent = recent_dispatchers(session=session, now=now)
    alive_since = now - timedelta(seconds=settings.lease_seconds)
    states = Counter(dispatcher_state(d, alive_since=alive_since) for d in recent)
    lines = [
        "# HELP lagtrain_jobs Jobs in the store by status.",
        "# TYPE lagtrain_jobs gauge",
        *(f'lagtrain_jobs{{status="{status}"}} {n}' for status, n in counts.items()),
        "# HELP lagtrain_dispatchers Dispatchers seen in the last hour, by state.",
        "# TYPE lagtrain_dispatchers gauge",
        *(
            f'lagtrain_dispatchers{{state="{state}"}} {states[state]}'
            for state in ("alive", "stopped", "lost")
        ),
    ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
