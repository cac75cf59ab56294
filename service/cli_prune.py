"""Client commands that delete finished jobs: `delete-job` by id, and `prune`, the
lab's retention — every finished job older than a number of days, yours or (an
admin) one user's or everyone's. A job's metrics and events only grow otherwise.
`prune` says what it would delete and deletes only with --yes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.progress import track

from service.cli_common import api_failure, client_session, console, fail, one_line
from service.client import ApiError, Client
from service.schemas.common import MAX_PAGE
from service.schemas.jobs import TERMINAL

prune_app = typer.Typer(add_completion=False)


@prune_app.command("delete-job")
def delete_job(job_ids: list[int] = typer.Argument(..., metavar="JOB_ID...")) -> None:
    """Delete finished jobs with their metrics, events and checkpoints."""
    with client_session() as client:
        for job_id in job_ids:
            try:
                client.delete_job(job_id)
            except ApiError as exc:
                raise api_failure(exc) from exc
            console.print(f"job {job_id} deleted")


@prune_app.command()
def prune(
    older_than: float = typer.Option(
        ..., "--older-than", min=0, help="days since the job finished (0: every finished job)"
    ),
    owner: str | None = typer.Option(None, "--owner", help="an admin: this user's jobs"),
    everyone: bool = typer.Option(False, "--everyone", help="an admin: every user's jobs"),
    yes: bool = typer.Option(False, "--yes", help="delete them (without it: list what would go)"),
) -> None:
    """Delete finished jobs older than --older-than days, with their metrics, events
    and checkpoints (your own unless an admin names --owner or --everyone). Trials
    of a sweep that has not finished are kept."""
    if owner is not None and everyone:
        raise fail("--owner or --everyone, not both", code=2)
    cutoff = datetime.now(UTC) - timedelta(days=older_than)
    with client_session() as client:
        try:
            jobs = _finished_before(client, cutoff, owner=owner, everyone=everyone)
        except ApiError as exc:
            raise api_failure(exc) from exc
        whose = "every user's" if everyone else f"{owner}'s" if owner else "yours"
        console.print(
            f"{_jobs(len(jobs))} ({whose}) finished before {cutoff:%Y-%m-%d %H:%M} UTC"
            + (f": {_by_status(jobs)}" if jobs else ""),
            highlight=False,
        )
        if not jobs or not yes:
            if jobs:
                console.print("nothing deleted: --yes deletes them")
            return
        deleted, kept = 0, []
        # A bar on a terminal; a pipe or a log gets the summary alone.
        shown = track(jobs, description="deleting", console=console, transient=True)
        for job in shown if console.is_terminal else jobs:
            try:
                client.delete_job(job["id"])
                deleted += 1
            except ApiError as exc:
                if exc.status == 404:  # deleted meanwhile (another prune, the dashboard)
                    continue
                if exc.status != 409:
                    raise api_failure(exc) from exc
                kept.append(one_line(exc.detail))  # names the job and why
    console.print(f"{_jobs(deleted)} deleted", highlight=False)
    if kept:
        console.print(f"{len(kept)} kept:", *kept, sep="\n", highlight=False)


def _finished_before(
    client: Client, cutoff: datetime, *, owner: str | None, everyone: bool
) -> list[dict[str, Any]]:
    """The finished jobs to prune, oldest first. A plain user lists their own jobs;
    an admin's listing holds everyone's, so without --everyone it names its owner."""
    if (owner is not None or everyone) and client.me()["role"] != "admin":
        raise fail("--owner and --everyone are for admins; without them: your own jobs", code=2)
    name = None if everyone else owner or client.me()["name"]
    found = [
        job
        for status in sorted(TERMINAL)
        for job in client.jobs(status=status, owner=name, limit=MAX_PAGE)
        if _finished_at(job) < cutoff
    ]
    return sorted(found, key=lambda job: job["id"])


def _finished_at(job: dict[str, Any]) -> datetime:
    at = datetime.fromisoformat(job["finished_at"] or job["created_at"])
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _by_status(jobs: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job["status"]] = counts.get(job["status"], 0) + 1
    return ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))


def _jobs(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"
