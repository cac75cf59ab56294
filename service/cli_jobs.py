"""Client commands of the `lagtrain` CLI: submit, jobs, watch (the following itself
is service.cli_watch's), cancel, metrics, download. They talk to the server over
HTTP through service.client."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from service.cli_common import (
    api_failure,
    client_session,
    console,
    each_id,
    fail,
    load_spec,
    newest,
    print_newest,
    refuse_the_other_kind,
    when,
)
from service.cli_figures import percent, saved_fractions
from service.cli_watch import follow_job
from service.client import TERMINAL_STATUSES, ApiError, ChecksumMismatch, Client

jobs_app = typer.Typer(add_completion=False)


@jobs_app.command()
def submit(
    spec_file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="JobSpec YAML/JSON"
    ),
    watch_job: bool = typer.Option(False, "--watch", help="follow the job until it ends"),
) -> None:
    """Submit a JobSpec file."""
    spec = load_spec(spec_file)
    refuse_the_other_kind(spec, spec_file, wanted="job")
    with client_session() as client:
        try:
            job = client.submit(spec)
        except ApiError as exc:
            raise api_failure(exc) from exc
        console.print(Text.assemble("job ", (str(job["id"]), "bold"), f" {job['status']}"))
        if watch_job:
            follow_job(client, int(job["id"]))


@jobs_app.command("jobs")
def list_jobs(
    status: str | None = typer.Option(None, help="only jobs in this status"),
    sweep: int | None = typer.Option(None, "--sweep", min=1, help="only this sweep's trial jobs"),
    owner: str | None = typer.Option(None, "--owner", help="an admin: only this user's"),
    limit: int = typer.Option(100, min=0, help="the newest N (0: all)"),
) -> None:
    """List your jobs, newest first (admins see everyone's)."""
    with client_session() as client:
        jobs, more = newest(client.jobs, status=status, sweep_id=sweep, owner=owner, limit=limit)
    table = Table(
        "id", "name", "owner", "status", "progress", "uploads saved", "bytes saved", "created (UTC)"
    )
    for job in jobs:
        progress = job.get("progress") or {}
        uploads_saved, bytes_saved = saved_fractions(job.get("summary"))
        table.add_row(
            str(job["id"]),
            job.get("name") or "",
            str(job.get("owner", "")),
            job["status"],
            f"{progress.get('round', 0)}/{progress.get('rounds', '?')}",
            percent(uploads_saved),
            percent(bytes_saved),
            when(job.get("created_at")),
        )
    print_newest(table, more=more, limit=limit)


@jobs_app.command()
def watch(job_id: int) -> None:
    """Follow a job: why it waits while queued, then round, loss, uploads saved."""
    with client_session() as client:
        follow_job(client, job_id)


@jobs_app.command()
def cancel(job_ids: list[int] = typer.Argument(..., metavar="JOB_ID...")) -> None:
    """Cancel queued or running jobs (one refused does not stop the rest)."""
    each_id(
        lambda client, one: client.cancel(one),
        job_ids,
        lambda one, job: f"job {one} {job.get('status', 'cancelling')}",
    )


@jobs_app.command()
def metrics(
    job_id: int, as_csv: bool = typer.Option(False, "--csv", help="CSV on standard output")
) -> None:
    """Print a job's metric records."""
    with client_session() as client:
        try:
            records = client.metrics(job_id)
        except ApiError as exc:
            raise api_failure(exc) from exc
    if not as_csv:
        for record in records:  # JSON lines: plain, never wrapped or read as markup
            typer.echo(json.dumps(record))
        return
    names = sorted({name for record in records for name in record["values"]})
    writer = csv.writer(sys.stdout)
    # `uploaded`: the ranks whose gradients reached the coordinator that round, space
    # separated (DESIGN §11), as in the JSON form.
    writer.writerow(["seq", "round", "attempt", "time", "uploaded", *names])
    for record in records:
        values = record["values"]
        uploaded = " ".join(str(rank) for rank in record.get("uploaded") or [])
        writer.writerow(
            [record["seq"], record["round"], record["attempt"], record["time"], uploaded]
            + [values.get(name, "") for name in names]
        )


@jobs_app.command()
def download(
    job_id: int,
    checkpoint: int | None = typer.Option(None, help="checkpoint id (default: newest)"),
    at_round: int | None = typer.Option(
        None, "--round", min=0, help="the checkpoint of this round (as its file is named)"
    ),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="file to write, or a directory to write it in (a trailing / makes one)",
    ),
    force: bool = typer.Option(False, "--force", help="replace the file if it exists"),
) -> None:
    """Download a job's checkpoint (loadable with torch.load(weights_only=True))."""
    if checkpoint is not None and at_round is not None:
        raise fail("--checkpoint or --round, not both", code=2)
    folder = _output_folder(out)
    with client_session() as client:
        try:
            available = client.checkpoints(job_id)
            if not available:
                raise fail(_no_checkpoint(client, job_id))
            chosen = _chosen(available, checkpoint, at_round)
            if chosen is None:
                # The ids are the server's, shown nowhere else in the CLI: say them.
                wanted = f"of round {at_round}" if at_round is not None else str(checkpoint)
                held = ", ".join(
                    f"{c['id']} (round {c['round']})"
                    for c in sorted(available, key=lambda c: c["round"])
                )
                raise fail(f"job {job_id} has no checkpoint {wanted}; its checkpoints: {held}")
            # The name the server gives the file too (Content-Disposition), here or in `out`.
            name = Path(f"job-{job_id}-round-{chosen['round']}.pt")
            dest = name if out is None else folder / name if folder else Path(out)
            if dest.exists() and not force:  # a second download replaced the first unasked
                raise fail(f"{dest} exists: --force replaces it")
            _download(client, job_id, int(chosen["id"]), dest, chosen.get("sha256"), force)
        except ApiError as exc:
            raise api_failure(exc) from exc
    # Verified only where a digest was checked (download_checkpoint: the listing's).
    digest = chosen.get("sha256")
    checked = f"sha256 {digest[:12]}… verified" if digest else "the server sent no sha256 to check"
    console.print(f"wrote {dest} (round {chosen['round']}, {checked})")


def _chosen(
    available: list[dict[str, Any]], checkpoint: int | None, at_round: int | None
) -> dict[str, Any] | None:
    """The checkpoint asked for by id or round, else the newest; None if none matches."""
    if checkpoint is not None:
        return next((c for c in available if c["id"] == checkpoint), None)
    if at_round is not None:
        return next((c for c in available if c["round"] == at_round), None)
    return max(available, key=lambda c: c["round"])


def _output_folder(out: str | None) -> Path | None:
    """The folder `--out` names, made if it ends with a slash (`-o checkpoints/`);
    None when it names a file. Checked before asking the server: a mistyped path
    costs no download."""
    if out is None:
        return None
    path = Path(out)
    if out.endswith(("/", os.sep)):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(f"cannot make the directory {out}: {exc.strerror or exc}") from exc
    if path.is_dir():
        return path
    if not path.parent.is_dir():
        raise fail(f"cannot write {out}: there is no directory {path.parent}")
    return None


def _no_checkpoint(client: Client, job_id: int) -> str:
    status = client.job(job_id)["status"]
    if status in TERMINAL_STATUSES:
        # "it cancelled without one" read wrong (a walkthrough): the status apart.
        ended = f"it ended ({status}) without one, or they were deleted"
        return f"job {job_id} has no checkpoint: {ended}"
    return f"job {job_id} has no checkpoint yet ({status})"


def _download(
    client: Client, job_id: int, checkpoint_id: int, dest: Path, sha256: str | None, force: bool
) -> None:
    try:
        client.download_checkpoint(job_id, checkpoint_id, dest, sha256=sha256, replace=force)
    except ChecksumMismatch as exc:
        raise fail(str(exc.detail)) from exc
    except FileExistsError as exc:  # made while the bytes came: left as it is
        raise fail(f"{dest} exists: --force replaces it") from exc
    except OSError as exc:  # the directory is not writable, the disk is full, ...
        raise fail(f"cannot write {dest}: {exc.strerror or exc}") from exc
