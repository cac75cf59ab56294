"""The `lagtrain` command line: server, database and admin commands."""

from __future__ import annotations

import logging
import os
import pwd
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType
from typing import Annotated, Any

import typer

from service.cli_accounts import accounts_app
from service.cli_audit import audit_app
from service.cli_data import data_app
from service.cli_demo import demo_app
from service.cli_jobs import jobs_app
from service.cli_show import show_app
from service.cli_sweeps import sweeps_app
from service.settings import Settings, settings_problems

log = logging.getLogger("lagtrain")

app = typer.Typer(help="lagtrain: multi-user RNN training with LAG on Ray.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.registered_commands.extend(jobs_app.registered_commands)
app.registered_commands.extend(show_app.registered_commands)
app.registered_commands.extend(sweeps_app.registered_commands)
app.registered_commands.extend(data_app.registered_commands)
app.registered_commands.extend(demo_app.registered_commands)
app.registered_commands.extend(audit_app.registered_commands)
app.registered_commands.extend(accounts_app.registered_commands)


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


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


@app.command()
def server(
    embedded: Annotated[
        bool, typer.Option(help="API + SQLite + local Ray + one dispatcher in one process tree")
    ] = False,
    host: Annotated[str | None, typer.Option(help="bind address [LAGTRAIN_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port [LAGTRAIN_PORT]")] = None,
) -> None:
    """Run the HTTP API."""
    from service.app import create_app, freeze_for_serving

    settings = load_settings()
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if embedded and settings.ray_auth_mode == "disabled":
        _hand_ray_its_auth_mode(settings)  # a local Ray turns token auth on by itself
    with _database_ready():
        from service.store.migrate import require_schema, upgrade_reporting

        if embedded:  # one process owns its SQLite file: it brings the schema up to date
            upgrade_reporting(settings.database_url)
        else:
            require_schema(settings.database_url)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal with the
    # handler it found. Exiting through SystemExit there lets the stack below stop the
    # dispatcher and Ray; workers.ray_runtime keeps this handler across ray.init.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ExitStack() as stack:
        wake_dispatcher = start_components(settings, embedded=embedded, stack=stack)
        typer.echo(
            f"lagtrain: dashboard on http://{settings.host}:{settings.port}/ "
            "(API under /v1, docs at /docs); "
            f"the admin token is in {settings.state_dir / 'admin-token'} "
            "when the server created it, else LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN"
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


@app.command()
def worker() -> None:
    """Run a dispatcher: claim jobs from the store and run them on Ray (RAY_ADDRESS)."""
    settings = load_settings()
    _require_schema(settings.database_url)  # before Ray starts, and before any engine
    _hand_ray_its_auth_mode(settings)
    from workers.embedded import run_worker

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_worker(settings)


@contextmanager
def _database_ready() -> Iterator[None]:
    """Stop with one line, not the traceback of the first query, when the database is
    unreachable or not migrated (see service.store.migrate.require_schema)."""
    from service.store.migrate import DatabaseNotReady

    try:
        yield
    except DatabaseNotReady as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def _require_schema(database_url: str) -> None:
    with _database_ready():
        from service.store.migrate import require_schema

        require_schema(database_url)


def cli_actor() -> str:
    """Who ran a server-side command, as the audit log names them: `cli:` and the
    process's effective user (not $USER, which anyone can set), else its uid."""
    uid = os.geteuid()
    try:
        return f"cli:{pwd.getpwuid(uid).pw_name}"
    except KeyError:  # a container's uid without a passwd entry
        return f"cli:uid-{uid}"


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
    with _database_ready():
        before, after = upgrade_reporting(settings.database_url, revision)
    was = "unchanged" if after == before else f"was {before}"
    typer.echo(f"database at revision {after} ({was})")


@admin_app.command("create-user")
def create_user(
    name: Annotated[str, typer.Argument(help="user name")],
    admin: Annotated[bool, typer.Option("--admin", help="give the admin role")] = False,
) -> None:
    """Create a user and print its first API token (shown only once)."""
    from pydantic import ValidationError

    from service.errors import Conflict
    from service.schemas.accounts import UserCreate
    from service.store.audit import user_created
    from service.store.db import make_engine, make_sessionmaker, transaction
    from service.store.users import create_user as store_create_user

    try:
        body = UserCreate(name=name, role="admin" if admin else "user")
    except ValidationError as exc:
        typer.echo(f"invalid user name {name!r}: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(code=2) from exc
    database_url = load_settings().database_url
    _require_schema(database_url)  # before make_engine, which would create a SQLite file
    engine = make_engine(database_url)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            user, token, plain = store_create_user(session=session, name=body.name, role=body.role)
            # As POST /v1/users records it; whoever ran this is no user of the service.
            user_created(session=session, actor=cli_actor(), user=user, token_id=token.id)
    except Conflict as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from exc
    finally:
        engine.dispose()
    typer.echo(f"created user {user.name!r} (id {user.id}, role {user.role}); token:")
    typer.echo(plain)


@admin_app.command("orphan-files")
def orphan_files(
    delete: Annotated[bool, typer.Option("--delete", help="remove them (default: list)")] = False,
    min_age_hours: Annotated[
        float,
        typer.Option(
            min=1.0, help="only files at least this old (a younger one may be named a moment later)"
        ),
    ] = 24.0,
) -> None:
    """List (or remove) files in the artifacts location that no upload or checkpoint
    row names: left by faults (a fenced attempt's checkpoint, a crash between a
    delete's commit and its file removal). Counted against nobody's quota."""
    import time

    from service.orphan_files import Removal, find_orphans, remove_orphans
    from service.store.audit import record
    from service.store.db import make_engine, make_sessionmaker, transaction

    settings = load_settings()
    _require_schema(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        now = time.time()
        scan = find_orphans(
            sessions=sessions,
            artifacts_url=settings.artifacts_url,
            older_than=now - min_age_hours * 3600,
        )
        typer.echo(f"{scan.location}: {scan.listed} files, {scan.named} named by a row")
        for orphan in scan.orphans:
            age_h = (now - orphan.modified) / 3600
            typer.echo(f"{orphan.url}\t{orphan.bytes} bytes\t{age_h:.0f} h old")
        total = sum(o.bytes for o in scan.orphans)
        typer.echo(
            f"{len(scan.orphans)} files ({total} bytes) that no row names, "
            f"at least {min_age_hours:g} h old"
        )
        if not delete or not scan.orphans:
            return
        if scan.looks_misplaced:
            typer.echo(
                f"not deleting: the database names {scan.rows} files and none of them is "
                f"under {scan.location}; is LAGTRAIN_ARTIFACTS_URL the server's?",
                err=True,
            )
            raise typer.Exit(1)
        removal = Removal()
        try:
            remove_orphans(scan.orphans, removal)
        finally:  # whatever was removed is audited, even if the removal broke off
            if removal.files:
                with transaction(sessions) as session:
                    record(
                        session=session,
                        actor=cli_actor(),
                        action="artifacts.orphans_removed",
                        target="artifacts",
                        detail={"files": removal.files, "bytes": removal.bytes},
                    )
        for url, why in removal.failed:
            typer.echo(f"could not remove {url}: {why}", err=True)
        typer.echo(f"removed {removal.files} files ({removal.bytes} bytes)")
        if removal.failed:
            raise typer.Exit(1)
    finally:
        engine.dispose()


if __name__ == "__main__":  # `python -m service.cli`, as the `lagtrain` script
    app()
