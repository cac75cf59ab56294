"""`lagtrain show JOB`: one job as a person reads it — where it stands, why it
waits, how it ended, and what it got (its summary, also when it was stopped)."""

from __future__ import annotations

from typing import Any

import typer
import yaml

from service.cli_common import api_failure, client_session, console, when
from service.cli_figures import figures
from service.client import ApiError

show_app = typer.Typer(add_completion=False)


def spec_text(job: dict[str, Any]) -> str:
    """The job's resolved spec as YAML, without its name (a rerun of a sweep's trial
    is no trial), headed by a comment saying how to run it again."""
    spec = {key: value for key, value in job["spec"].items() if key != "name"}
    return (
        f"# job {job['id']}'s resolved spec (its name left out); "
        "`lagtrain submit FILE` runs it again\n"
        + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    )


@show_app.command("show")
def show(
    job_id: int,
    spec: bool = typer.Option(
        False, "--spec", help="print its resolved spec as YAML, to edit or submit again"
    ),
) -> None:
    """A job: status, progress, why it waits (queued), its error and summary."""
    with client_session() as client:
        try:
            job = client.job(job_id)
            why = client.explain(job_id) if job["status"] == "queued" and not spec else None
        except ApiError as exc:
            raise api_failure(exc) from exc
    if spec:
        typer.echo(spec_text(job), nl=False)
        return
    for line in job_lines(job, why):
        console.print(line, markup=False, soft_wrap=True, highlight=False)


STARTING = (
    "starting: no round finished yet (Ray places the gang and starts its processes, "
    "often 10-20 s; then its first round)"
)


def job_lines(job: dict[str, Any], why: dict[str, Any] | None) -> list[str]:
    name = f" {job['name']!r}" if job.get("name") else ""
    trial = f", trial of sweep {job['sweep_id']}" if job.get("sweep_id") else ""
    progress = job.get("progress") or {}
    lines = [
        f"job {job['id']}{name}: {job['status']} (owner {job['owner']}, attempt "
        f"{job['attempt']} of {job['max_attempts']}{trial})",
        f"round {progress.get('round', 0)}/{progress.get('rounds', '?')} · created "
        f"{_time(job['created_at'])}"
        + (f" · started {_time(job['started_at'])}" if job.get("started_at") else "")
        + (f" · finished {_time(job['finished_at'])}" if job.get("finished_at") else ""),
    ]
    if why is not None:
        lines.append(f"waiting: {queue_place(why)}")
        lines += reason_lines(why)
    if job["status"] == "running" and not progress.get("round"):
        # The 10-20 s of placing the gang and starting its processes (each imports
        # torch) read as a stuck "round 0" (a walkthrough).
        lines.append(STARTING)
    if job.get("error"):
        lines.append(f"error: {job['error']}")
    summary = job.get("summary")
    if summary:
        done, rounds = summary.get("rounds_completed"), summary.get("rounds")
        if job["status"] != "succeeded" and done is not None:
            lines.append(f"stopped at round {done} of {rounds}")
        # The same line `lagtrain watch` prints per record, from the final metrics and
        # the run's totals.
        values = {**(summary.get("final_metrics") or {})}
        for key in ("uploads_total", "dense_equiv_uploads", "bytes_up_total", "dense_equiv_bytes"):
            if summary.get(key) is not None:
                values[key] = summary[key]
        lines.append(f"summary: {figures(values)}")
    return lines


def queue_place(why: dict[str, Any]) -> str:
    """Explain's place of a queued job: "position 2 (1 ahead)", or "not ranked"."""
    place = why.get("queue_position")
    return "not ranked" if place is None else f"position {place} ({why.get('queued_ahead')} ahead)"


def reason_lines(why: dict[str, Any]) -> list[str]:
    """Explain's reasons, one indented line each: "  quota: max_running_jobs: …"."""
    return [f"  {reason['kind']}: {reason['message']}" for reason in why["reasons"]]


def _time(text: str) -> str:
    return f"{when(text)} UTC"
