"""The `lagtrain` command line: every command group in one app, and the admin
commands."""

from __future__ import annotations

import os
import pwd
from typing import Annotated

import typer

from service.cli_accounts import accounts_app
from service.cli_audit import audit_app
from service.cli_cluster import cluster_app
from service.cli_common import binary_size, writable_anywhere
from service.cli_data import data_app
from service.cli_demo import demo_app
from service.cli_jobs import jobs_app
from service.cli_prune import prune_app
from service.cli_server import (
    db_app,
    exit_for_artifacts,
    load_settings,
    require_schema_or_exit,
    server_app,
)
from service.cli_show import show_app
from service.cli_sizes import size_and_bytes
from service.cli_sweeps import sweeps_app

app = typer.Typer(help="lagtrain: multi-user RNN training with LAG on Ray.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.callback()(writable_anywhere)
app.registered_commands.extend(jobs_app.registered_commands)
app.registered_commands.extend(show_app.registered_commands)
app.registered_commands.extend(sweeps_app.registered_commands)
app.registered_commands.extend(data_app.registered_commands)
app.registered_commands.extend(prune_app.registered_commands)
app.registered_commands.extend(demo_app.registered_commands)
app.registered_commands.extend(audit_app.registered_commands)
app.registered_commands.extend(accounts_app.registered_commands)
app.registered_commands.extend(cluster_app.registered_commands)
app.registered_commands.extend(server_app.registered_commands)


def cli_actor() -> str:
    """Who ran a server-side command, as the audit log names them: `cli:` and the
    process's effective user (not $USER, which anyone can set), else its uid."""
    uid = os.geteuid()
    try:
        return f"cli:{pwd.getpwuid(uid).pw_name}"
    except KeyError:  # a container's uid without a passwd entry
        return f"cli:uid-{uid}"


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
    require_schema_or_exit(database_url)  # before make_engine, which would create a SQLite file
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
    # The note on stderr, the token alone on stdout: TOKEN=$(lagtrain admin create-user …)
    # captures just the token, as with `user-add` and `token-new`.
    typer.echo(
        f"created user {user.name!r} (id {user.id}, role {user.role}); "
        "their token, shown only once:",
        err=True,
    )
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
    """List (or remove) files in the artifacts location that no row names.

    Files that no upload or checkpoint row names, left by faults (a fenced attempt's
    checkpoint, a crash between a delete's commit and its file removal). Counted
    against nobody's quota."""
    import time

    from service.orphan_files import Removal, find_orphans, remove_orphans, unsearchable
    from service.schemas.audit import AuditAction
    from service.store.audit import record
    from service.store.db import make_engine, make_sessionmaker, transaction

    settings = load_settings()
    if delete and min_age_hours * 3600 <= settings.store_outage_seconds:
        # A worker that wrote a checkpoint waits out a store outage, up to this
        # bound, before its row names the file: younger files may be named yet.
        typer.echo(
            f"not deleting: --min-age-hours {min_age_hours:g} is within the "
            f"{settings.store_outage_seconds / 3600:g} h a worker may wait out a store "
            "outage before a row names the file it wrote (LAGTRAIN_STORE_OUTAGE_SECONDS); "
            f"give more than {settings.store_outage_seconds / 3600:g} h",
            err=True,
        )
        raise typer.Exit(2)
    require_schema_or_exit(settings.database_url)
    problem = unsearchable(settings.artifacts_url)
    if problem is not None:
        exit_for_artifacts(settings, problem)
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        now = time.time()
        try:
            scan = find_orphans(
                sessions=sessions,
                artifacts_url=settings.artifacts_url,
                older_than=now - min_age_hours * 3600,
            )
        except OSError as exc:  # a folder it may not list: not "0 files"
            exit_for_artifacts(settings, f"cannot be searched: {exc}")
        typer.echo(f"{scan.location}: {_files(scan.listed)}, {scan.named} named by a row")
        for orphan in scan.orphans:
            age_h = (now - orphan.modified) / 3600
            typer.echo(f"{orphan.url}\t{binary_size(orphan.bytes)}\t{age_h:.0f} h old")
        total = sum(o.bytes for o in scan.orphans)
        typer.echo(
            f"{_files(len(scan.orphans))}, {size_and_bytes(total)}, that no row names, "
            f"at least {min_age_hours:g} h old"
        )
        if not delete or not scan.orphans:
            return
        if scan.looks_misplaced:
            typer.echo(
                f"not deleting: the database names {_files(scan.rows)} and none of them is "
                f"under {scan.location}; is LAGTRAIN_ARTIFACTS_URL the server's?",
                err=True,
            )
            raise typer.Exit(1)
        removal = Removal()
        try:
            remove_orphans(scan.orphans, removal, location=settings.artifacts_url)
        finally:  # whatever was removed is audited, even if the removal broke off
            if removal.files:
                with transaction(sessions) as session:
                    record(
                        session=session,
                        actor=cli_actor(),
                        action=AuditAction.ARTIFACTS_ORPHANS_REMOVED,
                        target="artifacts",
                        detail={"files": removal.files, "bytes": removal.bytes},
                    )
        for url, why in removal.failed:
            typer.echo(f"could not remove {url}: {why}", err=True)
        typer.echo(f"removed {_files(removal.files)}, {size_and_bytes(removal.bytes)}")
        if removal.failed:
            raise typer.Exit(1)
    finally:
        engine.dispose()


def _files(number: int) -> str:
    return f"{number} file" if number == 1 else f"{number} files"


if __name__ == "__main__":  # `python -m service.cli`, as the `lagtrain` script
    app()
