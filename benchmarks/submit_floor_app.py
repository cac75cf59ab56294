"""The rungs of benchmarks/submit_floor.py: one FastAPI app whose routes each take a
submit (the JobSpec body validated by lagtrain's own pydantic model, a Bearer token)
and write it to lagtrain's PostgreSQL schema, each with less of lagtrain's stack than
the one before. The SQL of the lower rungs is what lagtrain's submit sends (the
statements of `tests/api/test_submit_statements.py`, copied from PostgreSQL's log):
the token look-up, the user's quota standing with the database clock, the job row,
its `queued` event with NOTIFY, the audit row, in one transaction.

    POST /store   lagtrain's own submit (service.api.jobs.submit_job: the token check,
                  the spec's checks, the transaction), in the thread pool, answered as
                  the route answers: lagtrain without its middleware and route layers
    POST /core    the five statements through SQLAlchemy Core, in the thread pool
    POST /async   the five statements through SQLAlchemy's asyncio Core (psycopg async)
    POST /raw     the five statements through psycopg's AsyncConnection directly

Configured from the environment: FLOOR_DATABASE_URL (postgresql+psycopg://...).
Not part of the service; a measuring instrument.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.concurrency import run_in_threadpool

from service.api.jobs import job_out, submit_job
from service.schemas.jobspec import JobSpec
from service.settings import Settings
from service.store.cluster_capacity import ClusterCapacity
from service.store.db import make_engine, make_sessionmaker

URL = os.environ["FLOOR_DATABASE_URL"]
POOL = 10  # connections per web worker, as lagtrain's default pool

TOKEN = (
    "SELECT api_tokens.id, api_tokens.revoked_at, api_tokens.expires_at, "
    "api_tokens.last_used_at, users.id AS user_id, users.name, users.role, "
    "users.disabled_at FROM api_tokens JOIN users ON users.id = api_tokens.user_id "
    "WHERE api_tokens.token_sha256 = %(token)s"
)
STANDING = (
    "SELECT users.max_queued_jobs, users.max_storage_bytes, users.max_cpus, users.max_gpus, "
    "(SELECT count(*) FROM jobs WHERE jobs.owner_id = users.id AND jobs.status = 'queued') "
    "AS queued, (SELECT coalesce(sum(datasets.bytes), 0) FROM datasets "
    "WHERE datasets.owner_id = users.id) AS uploads, (SELECT coalesce(sum(checkpoints.bytes), 0) "
    "FROM checkpoints JOIN jobs ON jobs.id = checkpoints.job_id "
    "WHERE jobs.owner_id = users.id) AS checkpoints, clock_timestamp() AS clock "
    "FROM users WHERE users.id = %(user_id)s"
)
JOB = (
    "INSERT INTO jobs (owner_id, name, status, spec, priority, cpus_required, gpus_required, "
    "replica_memory_bytes, coordinator_memory_bytes, attempt, max_attempts, progress_round, "
    "progress_rounds, last_seq, created_at) VALUES (%(user_id)s, NULL, 'queued', %(spec)s, 0, "
    "0.5, 0, 1000000, 1000000, 0, 3, 0, 3, 0, %(now)s) RETURNING jobs.id"
)
EVENT = (
    "INSERT INTO job_events (job_id, at, actor, from_status, to_status, attempt, reason) "
    "VALUES (%(job_id)s, %(now)s, %(actor)s, NULL, 'queued', 0, NULL) "
    "RETURNING pg_notify('lagtrain_jobs', %(payload)s)"
)
AUDIT = (
    "INSERT INTO audit_events (at, actor_id, actor, action, target, detail) VALUES "
    "(now(), %(user_id)s, %(actor)s, 'job.submitted', %(target)s, '{\"name\": null}') "
    "RETURNING audit_events.id"
)


def _sa(statement: str) -> Any:
    """The same statement in SQLAlchemy's :name parameter style."""
    for name in ("token", "user_id", "spec", "now", "job_id", "actor", "payload", "target"):
        statement = statement.replace(f"%({name})s", f":{name}")
    return text(statement)


SA = {
    name: _sa(sql)
    for name, sql in (
        ("token", TOKEN),
        ("standing", STANDING),
        ("job", JOB),
        ("event", EVENT),
        ("audit", AUDIT),
    )
}

_state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Every rung's engine or pool made before the first request (made lazily, two
    concurrent first requests raced to make them)."""
    _state["settings"] = Settings(database_url=URL, default_max_queued_jobs=10**9)
    _state["sessions"] = make_sessionmaker(make_engine(URL, pool_size=POOL))
    _state["capacity"] = ClusterCapacity()
    _state["engine"] = create_engine(URL, pool_size=POOL)
    _state["async_engine"] = create_async_engine(URL, pool_size=POOL)
    raw_pool: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for _ in range(POOL):
        dsn = URL.replace("postgresql+psycopg://", "postgresql://")
        raw_pool.put_nowait(await psycopg.AsyncConnection.connect(dsn))
    _state["raw"] = raw_pool
    yield


app = FastAPI(lifespan=lifespan)


def _token(request: Request) -> str:
    return request.headers["authorization"].removeprefix("Bearer ")


def _answer(job_id: int) -> Response:
    return Response(json.dumps({"id": job_id}), status_code=201, media_type="application/json")


@app.post("/store", status_code=201)
async def store(spec: JobSpec, request: Request) -> Response:
    sessions, settings, token = _state["sessions"], _state["settings"], _token(request)
    capacity = _state["capacity"]

    def work() -> Response:
        job, _created, principal = submit_job(
            sessions, settings, None, capacity, token=token, spec=spec, idempotency_key=None
        )
        return Response(
            job_out(job, principal.name).model_dump_json(),
            status_code=201,
            media_type="application/json",
        )

    return await run_in_threadpool(work)


@app.post("/core", status_code=201)
async def core(spec: JobSpec, request: Request) -> Response:
    engine, token = _state["engine"], _token(request)

    def work() -> int:
        with engine.begin() as conn:
            user = conn.execute(SA["token"], {"token": hashlib.sha256(token.encode()).hexdigest()})
            row = user.one()
            now = conn.execute(SA["standing"], {"user_id": row.user_id}).one().clock
            job_id: int = conn.execute(
                SA["job"], {"user_id": row.user_id, "spec": spec.model_dump_json(), "now": now}
            ).scalar_one()
            actor = f"user:{row.user_id}"
            conn.execute(
                SA["event"], {"job_id": job_id, "now": now, "actor": actor, "payload": str(job_id)}
            ).all()
            conn.execute(
                SA["audit"], {"user_id": row.user_id, "actor": actor, "target": f"job:{job_id}"}
            ).all()
            return job_id

    return _answer(await run_in_threadpool(work))


@app.post("/async", status_code=201)
async def core_async(spec: JobSpec, request: Request) -> Response:
    token = _token(request)
    async with _state["async_engine"].begin() as conn:
        user = await conn.execute(
            SA["token"], {"token": hashlib.sha256(token.encode()).hexdigest()}
        )
        row = user.one()
        now = (await conn.execute(SA["standing"], {"user_id": row.user_id})).one().clock
        job_id: int = (
            await conn.execute(
                SA["job"], {"user_id": row.user_id, "spec": spec.model_dump_json(), "now": now}
            )
        ).scalar_one()
        actor = f"user:{row.user_id}"
        (
            await conn.execute(
                SA["event"], {"job_id": job_id, "now": now, "actor": actor, "payload": str(job_id)}
            )
        ).all()
        await conn.execute(
            SA["audit"], {"user_id": row.user_id, "actor": actor, "target": f"job:{job_id}"}
        )
    return _answer(job_id)


@app.post("/raw", status_code=201)
async def raw(spec: JobSpec, request: Request) -> Response:
    conn: psycopg.AsyncConnection[Any] = await _state["raw"].get()
    try:
        async with conn.transaction():
            token = hashlib.sha256(_token(request).encode()).hexdigest()
            row = await (await conn.execute(TOKEN, {"token": token})).fetchone()
            assert row is not None
            standing = await (await conn.execute(STANDING, {"user_id": row[4]})).fetchone()
            assert standing is not None
            params = {"user_id": row[4], "spec": spec.model_dump_json(), "now": standing[-1]}
            job = await (await conn.execute(JOB, params)).fetchone()
            assert job is not None
            actor = f"user:{row[4]}"
            await conn.execute(
                EVENT,
                {"job_id": job[0], "now": params["now"], "actor": actor, "payload": str(job[0])},
            )
            await conn.execute(
                AUDIT, {"user_id": row[4], "actor": actor, "target": f"job:{job[0]}"}
            )
    finally:
        _state["raw"].put_nowait(conn)
    return _answer(job[0])
