"""Liveness and readiness probes and Prometheus metrics (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import Sessions
from service.api.responses import errors
from service.store.db import ping, read_transaction
from service.store.jobs import status_counts

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
def prometheus_metrics(sessions: Sessions) -> PlainTextResponse:
    """Jobs by status, in Prometheus' text format (every status, zeros included)."""
    with read_transaction(sessions) as session:
        counts = status_counts(session=session)
    lines = [
        "# HELP lagtrain_jobs Jobs in the store by status.",
        "# TYPE lagtrain_jobs gauge",
        *(f'lagtrain_jobs{{status="{status}"}} {n}' for status, n in counts.items()),
    ]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
