"""Client commands that delete finished work: `delete-job` and `delete-sweep` by id,
and `prune`, the lab's retention — every finished job and sweep older than a number
of days, yours or (an admin) one user's or everyone's. Metrics and events only grow
otherwise. `prune` says what it would delete and deletes only with --yes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.progress import track

from service.cli_common import (
    api_failure,
    client_session,
    console,
    each_id,
    fail,
    one_line,
    user_id_named,
)
from service.client import ApiError, Client
from service.schemas.common import MAX_PAGE

prune_app = typer.Typer(add_completion=False)
# A century: a cutoff before year 1 is no date (timedelta overflows).
MAX_DAYS = 36_500


@dataclass
class Outcome:
    """What a run of deletes did: how many of each kind went, each refusal's reason."""

    deleted: dict[str, int] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        went = [_noun(count, kind) for kind, count in self.deleted.items() if count]
        return "deleted " + (", ".join(went) or "nothing")


@prune_app.command("delete-job")
def delete_job(job_ids: list[int] = typer.Argument(..., metavar="JOB_ID...")) -> None:
    """Delete finished jobs with their metrics, events and checkpoints.

    A trial's job goes with its sweep: delete-sweep."""
    each_id(lambda client, job_id: client.delete_job(job_id), job_ids, "job {} deleted".format)


@prune_app.command("delete-sweep")
def delete_sweep(sweep_ids: list[int] = typer.Argument(..., metavar="SWEEP_ID...")) -> None:
    """Delete finished sweeps with their trials and their trials' jobs."""
    each_id(
        lambda client, sweep_id: client.delete_sweep(sweep_id), sweep_ids, "sweep {} deleted".format
    )


@prune_app.command()
def prune(
    older_than: float = typer.Option(
        ...,
        "--older-than",
        min=0,
        max=MAX_DAYS,
        help="days since it finished (0: everything finished)",
    ),
    owner: str | None = typer.Option(None, "--owner", help="an admin: this user's"),
    everyone: bool = typer.Option(False, "--everyone", help="an admin: every user's"),
    yes: bool = typer.Option(False, "--yes", help="delete them (without it: say what would go)"),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="say what would go, delete nothing (the default without --yes)"
    ),
) -> None:
    """Delete finished sweeps and jobs older than --older-than days.

    The finished sweeps (with their trials' jobs) and the finished jobs of no sweep,
    with their metrics, events and checkpoints: your own, unless an admin names
    --owner or --everyone."""
    if owner is not None and everyone:
        raise fail("--owner or --everyone, not both", code=2)
    if dry_run and yes:
        raise fail("--dry-run or --yes, not both", code=2)
    cutoff = datetime.now(UTC) - timedelta(days=older_than)
    outcome = Outcome()
    with client_session() as client:
        try:
            name = _whose(client, owner=owner, everyone=everyone)
            sweeps = _finished_before(client.sweeps, cutoff, owner=name)
            # A trial's job goes with its sweep.
            jobs = [
                job
                for job in _finished_before(client.jobs, cutoff, owner=name)
                if job["sweep_id"] is None
            ]
        except ApiError as exc:
            raise api_failure(exc) from exc
        whose = "every user's" if everyone else f"{owner}'s" if owner else "yours"
        console.print(
            f"finished before {cutoff:%Y-%m-%d %H:%M} UTC ({whose}): "
            f"{_counted(sweeps, 'sweep')}, {_counted(jobs, 'job')} of no sweep",
            highlight=False,
        )
        if not yes:
            if sweeps or jobs:
                console.print("nothing deleted: --yes deletes them")
            return
        try:
            _delete_all(sweeps, "sweep", client.delete_sweep, outcome)
            _delete_all(jobs, "job", client.delete_job, outcome)
        finally:  # said even when a failure ends the run part way
            console.print(outcome.summary(), highlight=False)
            if outcome.kept:
                console.print(f"kept {len(outcome.kept)}:", *outcome.kept, sep="\n")


def _whose(client: Client, *, owner: str | None, everyone: bool) -> str | None:
    """The owner name to list (None: everyone's). A plain user lists their own; an
    admin's listing holds everyone's, so without --everyone it names its owner."""
    me = client.me()
    if (owner is not None or everyone) and me["role"] != "admin":
        raise fail("--owner and --everyone are for admins; without them: your own", code=2)
    if owner is not None:
        user_id_named(client, owner, "--owner")  # a misspelt name lists nothing: say so
    return None if everyone else owner or str(me["name"])


def _finished_before(
    listing: Callable[..., list[dict[str, Any]]], cutoff: datetime, *, owner: str | None
) -> list[dict[str, Any]]:
    """The rows of `listing` (Client.jobs or Client.sweeps) that finished before
    `cutoff`, oldest first. The server picks them (`finished_before`, which no
    unfinished row matches): listing every finished row to filter it here moved a
    whole history (each job's spec, each sweep's trials) to delete a few."""
    found = listing(owner=owner, finished_before=cutoff, limit=MAX_PAGE)
    return sorted(found, key=lambda row: row["id"])


def _delete_all(
    rows: list[dict[str, Any]],
    kind: str,
    delete: Callable[[int], None],
    outcome: Outcome,
) -> None:
    # A bar on a terminal; a pipe or a log gets the summary alone.
    shown: Iterable[dict[str, Any]] = rows
    if console.is_terminal and rows:
        shown = track(rows, description=f"deleting {kind}s", console=console, transient=True)
    for row in shown:
        try:
            delete(row["id"])
            outcome.deleted[kind] = outcome.deleted.get(kind, 0) + 1
        except ApiError as exc:
            if exc.status == 404:  # deleted meanwhile (another prune, the dashboard)
                continue
            if exc.status != 409:
                raise api_failure(exc) from exc
            outcome.kept.append(one_line(exc.detail))  # names the job or sweep, and why


def _counted(rows: list[dict[str, Any]], kind: str) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    by_status = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    return _noun(len(rows), kind) + (f" ({by_status})" if rows else "")


def _noun(count: int, kind: str) -> str:
    return f"{count} {kind}" if count == 1 else f"{count} {kind}s"
