"""`lagtrain server`, `lagtrain worker` and `lagtrain db upgrade`: the commands that
run the service itself, and what every command that opens the database shares: the
settings, and one line (not a traceback) when the database is not ready."""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import Annotated, Any, NoReturn

import typer

from service.settings import MAX_PORT, Settings, settings_problems

log = logging.getLogger("lagtrain")

server_app = typer.Typer(add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def start_components(
    settings: Settings, *, embedded: bool, stack: ExitStack
) -> Callable[[], None] | None:
    """Start what runs beside the API in this process tree; ``stack`` stops it when
    the server exits. Embedded mode adds a local Ray and one dispatcher, and returns
    the dispatcher's wake-up for the submit route."""
    if embedded:
        from workers.embedded import start_embedded

        return start_embedded(settings, stack)
    return None


def load_settings() -> Settings:
    """The settings; an invalid one stops the command with a line naming it (exit 2)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        for line in settings_problems(exc):
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(code=2) from exc


def _log_to_stderr() -> None:
    """The service's processes log INFO and up, each line with its time (claims,
    drains and reaps are read off these logs). Alembic's set-up chatter ("setup
    plugin …", 7-9 lines per start) is left out; its "Running upgrade" lines stay."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _where_the_admin_token_is(settings: Settings) -> str:
    """Where a live admin token of this database is, when one of the two places holds
    one (a first start that creates the admin prints the token itself:
    service.bootstrap); a token file left by another database is not named."""
    from service.bootstrap import admin_token_place
    from service.store.db import make_engine, make_sessionmaker

    engine = make_engine(settings.database_url)
    try:
        place = admin_token_place(make_sessionmaker(engine), settings)
    finally:
        engine.dispose()
    return "" if place is None else f"; the admin token is in {place}"


def _cannot_listen(host: str, port: int) -> str | None:
    """Why uvicorn could not listen at host:port, or None. Binding is tried with the
    SO_REUSEADDR uvicorn sets (a just-closed port in TIME_WAIT is free to it); the
    moment between this and uvicorn's own bind is left to chance."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


@server_app.command()
def server(
    embedded: Annotated[
        bool, typer.Option(help="API + SQLite + local Ray + one dispatcher in one process tree")
    ] = False,
    host: Annotated[str | None, typer.Option(help="bind address [LAGTRAIN_HOST]")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=MAX_PORT, help="port [LAGTRAIN_PORT]")
    ] = None,
) -> None:
    """Run the HTTP API."""
    from service.app import create_app, freeze_for_serving

    settings = load_settings()
    settings = settings.model_copy(
        update={
            "host": settings.host if host is None else host,
            "port": settings.port if port is None else port,
        }
    )
    taken = _cannot_listen(settings.host, settings.port)
    if taken is not None:  # before the schema, the bootstrap and Ray: nothing to undo
        typer.echo(
            f"error: cannot listen on {settings.host}:{settings.port}: {taken} "
            "(another server there? --port or LAGTRAIN_PORT chooses another)",
            err=True,
        )
        raise typer.Exit(code=1)
    _log_to_stderr()
    if embedded and settings.ray_auth_mode == "disabled":
        _hand_ray_its_auth_mode(settings)  # a local Ray turns token auth on by itself
    with database_ready():
        from service.store.migrate import require_schema, upgrade_reporting

        if embedded:  # one process owns its SQLite file: it brings the schema up to date
            upgrade_reporting(settings.database_url)
        else:
            require_schema(settings.database_url)
    require_artifacts_writable(settings)  # before Ray: nothing to undo
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the
    # handler it found. Exiting through SystemExit there lets the stack below stop the
    # dispatcher and Ray; workers.ray_runtime keeps this handler across ray.init.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ExitStack() as stack:
        wake_dispatcher = start_components(settings, embedded=embedded, stack=stack)
        typer.echo(
            f"lagtrain: dashboard on http://{settings.host}:{settings.port}/ "
            f"(API under /v1, docs at /docs){_where_the_admin_token_is(settings)}"
        )
        if settings.web_workers > 1 and not embedded:
            # Separate processes, a listening socket each (see service.web_workers).
            from service.web_workers import serve

            status = serve(settings)
            if status:
                raise typer.Exit(status)
            return
        if embedded and settings.web_workers > 1:
            log.warning("server --embedded runs one web worker beside its dispatcher")
        api = create_app(
            settings, on_job_queued=wake_dispatcher if settings.embedded_wakeup else None
        )
        freeze_for_serving()
        _serve(api, settings)


def _serve(app: Any, settings: Settings) -> None:
    import uvicorn  # here, not at the top: the client commands start without it

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
        # Open event streams must not hold a stopping server (SIGTERM -> exit within
        # 10 s, docs/reliability.md), with one web worker or several.
        timeout_graceful_shutdown=3,
    )


@server_app.command()
def worker() -> None:
    """Run a dispatcher: claim jobs from the store and run them on Ray (RAY_ADDRESS)."""
    settings = load_settings()
    require_schema_or_exit(settings.database_url)  # before Ray starts, and before any engine
    require_artifacts_writable(settings)
    _hand_ray_its_auth_mode(settings)
    from workers.embedded import run_worker
    from workers.ray_runtime import RayUnreachable

    _log_to_stderr()
    try:
        run_worker(settings)
    except RayUnreachable as exc:  # one line; a supervisor starts the worker again
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


@contextmanager
def database_ready() -> Iterator[None]:
    """Stop with one line, not the traceback of the first query, when the database is
    unreachable or not migrated (see service.store.migrate.require_schema)."""
    from service.store.migrate import DatabaseNotReady

    try:
        yield
    except DatabaseNotReady as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def require_artifacts_writable(settings: Settings) -> None:
    """One line and exit 1 when the artifacts location refuses a write (the server
    stores uploads there, a worker's gangs their checkpoints)."""
    from service.artifacts import unwritable

    reason = unwritable(settings.artifacts_url)
    if reason is not None:
        exit_for_artifacts(settings, reason)


def exit_for_artifacts(settings: Settings, reason: str) -> NoReturn:
    """The one line a command says of an artifacts location it cannot use, and exit 1."""
    typer.echo(f"error: LAGTRAIN_ARTIFACTS_URL ({settings.artifacts_url}): {reason}", err=True)
    raise typer.Exit(code=1)


def require_schema_or_exit(database_url: str) -> None:
    with database_ready():
        from service.store.migrate import require_schema

        require_schema(database_url)


def _hand_ray_its_auth_mode(settings: Settings) -> None:
    """Ray reads RAY_AUTH_MODE from the environment once, when it is imported, and a
    client joining a token cluster without it is refused: the process's entry point
    sets it from the settings before anything imports Ray."""
    os.environ["RAY_AUTH_MODE"] = settings.ray_auth_mode


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from service.store.migrate import upgrade_reporting

    settings = load_settings()
    with database_ready():
        before, after = upgrade_reporting(settings.database_url, revision)
    was = "unchanged" if after == before else f"was {before}"
    typer.echo(f"database at revision {after} ({was})")
