"""Following a job to its end (`lagtrain watch`, `submit --watch`): while it is
queued, why it waits — explain's reasons, printed when they change — then a live
bar in a terminal, or whole lines in a pipe or a CI log."""

from __future__ import annotations

import time
from typing import Any

import httpx
import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from service.cli_common import api_failure, console
from service.cli_figures import figures
from service.cli_show import queue_place, reason_lines
from service.client import TERMINAL_STATUSES, ApiError, Client
from service.client_outage import Outage

# How often a queued job's explain is read: near the dashboard's 3 s (job.js
# EXPLAIN_MS), and a start is seen within it. Explain ranks the whole queue, so not
# the stream's every event; the stream opens once the job has left the queue.
QUEUED_POLL_SECONDS = 2.0


def follow_job(client: Client, job_id: int) -> None:
    """The job to its end: while queued, why it waits; then its rounds. Exit status 1
    when it ends other than succeeded."""
    try:
        job = client.job(job_id)
        if job["status"] == "queued":
            wait_while_queued(client, job_id)
            job = client.job(job_id)  # as it left the queue: its status, its progress
    except ApiError as exc:
        raise api_failure(exc) from exc
    rounds = int((job.get("progress") or {}).get("rounds") or 1)
    if console.is_terminal:
        final = _watch_live(client, job_id, job, rounds)
    else:
        final = _watch_lines(client, job_id, job, rounds)
    if final.get("error"):
        # Text, not markup; whole, not wrapped at a pipe's 80 columns.
        console.print(final["error"], style="red", markup=False, soft_wrap=True)
    if final.get("status") != "succeeded" and final.get("status") in TERMINAL_STATUSES:
        raise typer.Exit(1)


def _watch_live(client: Client, job_id: int, job: dict[str, Any], rounds: int) -> dict[str, Any]:
    """A progress bar redrawn in place, with the latest figures on the line below it
    (one row of both was cut to "roun… val_m…" in an 80-column terminal): the final
    status event."""
    progress = Progress(
        TextColumn("job {task.fields[job]} [bold]{task.fields[status]}[/bold]"),
        BarColumn(bar_width=24),
        TextColumn("round {task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=console,
    )
    # From where the job is: a finished job's first frame is not "round 0".
    done = int((job.get("progress") or {}).get("round") or 0)
    bar = progress.add_task("train", total=rounds, completed=done, job=job_id, status=job["status"])
    shown = Text(overflow="fold")  # wraps, never cut: the figures are what one watches
    final: dict[str, Any] = {"status": job["status"], "error": job.get("error")}
    with Live(Group(progress, shown), console=console, refresh_per_second=4):
        try:
            for event, data in client.follow(job_id):
                if event == "status":
                    final = data
                    progress.update(bar, status=data["status"])
                elif event == "metrics":
                    progress.update(bar, completed=data["round"] + 1)
                    shown.plain = figures(data["values"])
        except ApiError as exc:
            raise api_failure(exc) from exc
    return final


def _watch_lines(client: Client, job_id: int, job: dict[str, Any], rounds: int) -> dict[str, Any]:
    """For a pipe or a CI log, where a bar redrawn in place is cut to 80 columns and
    shows only its last frame: a line per status change and per evaluation round (and
    the last round), whole."""
    final: dict[str, Any] = {"status": job["status"], "error": job.get("error")}
    shown = False
    try:
        for event, data in client.follow(job_id):
            if event == "status":
                # A terminal status is printed once, last: a finished job's stream
                # opens with it too, before the rounds it replays.
                changed = data["status"] != final["status"] or not shown  # or a reconnect
                if changed and data["status"] not in TERMINAL_STATUSES:
                    console.print(f"job {job_id} {data['status']}", markup=False, soft_wrap=True)
                final, shown = data, True
            elif event == "metrics":
                done = data["round"] + 1
                values = data["values"]
                if done == rounds or any(k.startswith("val_") for k in values):
                    line = f"job {job_id} round {done}/{rounds}  {figures(values)}"
                    console.print(line, markup=False, soft_wrap=True)
    except ApiError as exc:
        raise api_failure(exc) from exc
    if final["status"] in TERMINAL_STATUSES:
        console.print(f"job {job_id} {final['status']}", markup=False, soft_wrap=True)
    return final


def pause(seconds: float) -> None:
    """The wait between two reads of a queued job's explain (a test's seam)."""
    time.sleep(seconds)


def wait_while_queued(client: Client, job_id: int) -> None:
    """Returns once the job has left the queue. Meanwhile its place and explain's
    reasons, printed the first time and again only when the reasons change: a poll
    that finds the same says nothing (nor does the place alone moving, as jobs ahead
    start). A walkthrough's `watch` of a queued job printed nothing about why it
    waited. Rides a server restarting as the stream does (Outage)."""
    outage = Outage()
    shown: list[tuple[str, str]] | None = None
    while True:
        why = _explained(client, job_id, outage)
        if why["status"] != "queued":
            return
        reasons = [(reason["kind"], reason["message"]) for reason in why["reasons"]]
        if reasons != shown:
            for line in waiting_lines(job_id, why):
                console.print(line, markup=False, soft_wrap=True, highlight=False)
            shown = reasons
        pause(QUEUED_POLL_SECONDS)


def waiting_lines(job_id: int, why: dict[str, Any]) -> list[str]:
    """ "job 7 queued: position 2 (1 ahead)" and a line per reason, as `show` writes
    them; with none, that nothing holds it back."""
    head = f"job {job_id} queued: {queue_place(why)}"
    if not why["reasons"]:
        return [f"{head}; nothing holds it back: it starts when a dispatcher claims it"]
    return [head, *reason_lines(why)]


def _explained(client: Client, job_id: int, outage: Outage) -> dict[str, Any]:
    while True:
        outage.trying()
        try:
            why = client.explain(job_id)
        except (httpx.TransportError, ApiError) as exc:
            outage.endure(exc)  # raises once the server has been away too long
            outage.pause()
            continue
        outage.over()
        return why
