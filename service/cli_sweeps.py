"""Sweep commands of the `lagtrain` CLI: `sweep SPEC [--watch]`, `sweeps`,
`sweep-watch ID`, `sweep-cancel ID`. The live view is a table of the trials (parameters, status,
objective values) with the best trial, or the Pareto front, starred."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from service.cli_common import (
    api_failure,
    binary_size,
    client_session,
    console,
    load_spec,
    newest,
    print_newest,
    refuse_the_other_kind,
    visible,
    when,
)
from service.client import TERMINAL_STATUSES, ApiError, Client
from service.client_outage import Outage
from service.schemas.common import MAX_PAGE
from service.schemas.metric_names import BYTE_METRICS, no_better_than_baseline
from service.schemas.sweeps import FINISHED_TRIAL_STATUSES

sweeps_app = typer.Typer(add_completion=False)


@sweeps_app.command()
def sweep(
    spec_file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="sweep YAML/JSON"
    ),
    watch_sweep: bool = typer.Option(False, "--watch", help="live table until the sweep ends"),
) -> None:
    """Submit a sweep: a base JobSpec, parameters to search, objectives, a budget."""
    spec = load_spec(spec_file)
    refuse_the_other_kind(spec, spec_file, wanted="sweep")
    with client_session() as client:
        try:
            created = client.submit_sweep(spec)
        except ApiError as exc:
            raise api_failure(exc) from exc
        s = created["spec"]
        console.print(
            Text.assemble(
                "sweep ",
                (str(created["id"]), "bold"),
                f" {created['status']}: {s['trials']} trials, {s['parallel']} at a time, "
                f"sampler {s['sampler']}",
            )
        )
        if watch_sweep:
            _watch(client, int(created["id"]))


@sweeps_app.command("sweeps")
def list_sweeps(
    status: str | None = typer.Option(None, help="only sweeps in this status"),
    owner: str | None = typer.Option(None, "--owner", help="an admin: only this user's"),
    limit: int = typer.Option(100, min=0, help="the newest N (0: all)"),
) -> None:
    """List your sweeps, newest first (admins see everyone's)."""
    with client_session() as client:
        found, more = newest(client.sweeps, status=status, owner=owner, limit=limit)
    table = Table("id", "name", "owner", "status", "trials", "best", "created (UTC)")
    for s in found:
        finished = sum(t["status"] in FINISHED_TRIAL_STATUSES for t in s["trials"])
        table.add_row(
            str(s["id"]),
            s.get("name") or "",
            str(s.get("owner", "")),
            s["status"],
            f"{finished}/{s['spec']['trials']}",
            _trials(s["best"]),  # "trial 0": a bare 0 read as an objective's value
            when(s.get("created_at")),
        )
    print_newest(table, more=more, limit=limit)


@sweeps_app.command("sweep-watch")
def sweep_watch(sweep_id: int) -> None:
    """Live table of a sweep's trials and its best trial (or Pareto front)."""
    with client_session() as client:
        _watch(client, sweep_id)


@sweeps_app.command("sweep-cancel")
def sweep_cancel(sweep_id: int) -> None:
    """Cancel a sweep: no new trials; its queued and running trial jobs are cancelled."""
    with client_session() as client:
        try:
            done = client.cancel_sweep(sweep_id)
        except ApiError as exc:
            raise api_failure(exc) from exc
    console.print(f"sweep {sweep_id} {done['status']}")


def _watch(client: Client, sweep_id: int, every: float = 1.0) -> None:
    outage = Outage()
    try:
        current = client.sweep(sweep_id)
        if console.is_terminal:
            with Live(sweep_table(current), console=console, refresh_per_second=4) as live:
                while current["status"] not in TERMINAL_STATUSES:
                    time.sleep(every)  # polling the API, at the pace a person reads
                    current = poll(client, sweep_id, outage)
                    live.update(sweep_table(current))
                live.update(sweep_table(current, _trial_jobs(client, sweep_id)))
        else:
            current = _watch_lines(client, sweep_id, current, every, outage)
            console.print(sweep_table(current, _trial_jobs(client, sweep_id)))
    except ApiError as exc:
        raise api_failure(exc) from exc
    if current.get("error"):
        console.print(current["error"], style="red", markup=False, soft_wrap=True)  # as text
    if current["status"] != "succeeded":
        raise typer.Exit(1)


def _watch_lines(
    client: Client, sweep_id: int, current: dict[str, Any], every: float, outage: Outage
) -> dict[str, Any]:
    """In a pipe or a CI log (where a live table is drawn only once, at the end): a
    whole line for each change of the sweep's status and of each trial's, as it
    happens. Returns the finished sweep."""
    seen: dict[int | str, Any] = {}
    while True:
        for line in sweep_changes(current, seen):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        if current["status"] in TERMINAL_STATUSES:
            return current
        time.sleep(every)  # polling the API, as the live table does
        current = poll(client, sweep_id, outage)


def poll(client: Client, sweep_id: int, outage: Outage) -> dict[str, Any]:
    """The sweep, read through a server restarting (or its proxy's 502s) as a job's
    `watch` rides one: the same rule (Outage) decides when to give up."""
    while True:
        outage.trying()
        try:
            current = client.sweep(sweep_id)
        except (httpx.TransportError, ApiError) as exc:
            outage.endure(exc)
            outage.pause()
            continue
        outage.over()
        return current


def sweep_changes(sweep: dict[str, Any], seen: dict[int | str, Any]) -> list[str]:
    """Lines for what changed since `seen` (updated): each trial's status with its
    point when first seen, its objective values, or its error; then the sweep's."""
    lines = []
    metrics = [o["metric"] for o in sweep["spec"]["objectives"]]
    for trial in sweep["trials"]:
        if trial["status"] == "succeeded" and trial["values"] is None and not trial["error"]:
            continue  # its job ended; the controller records its values at its next step
        key = (trial["status"], trial["values"], trial["error"])
        number = int(trial["number"])
        if seen.get(number) == key:
            continue
        line = f"trial {number} {trial['status']}"
        if trial["job_id"] is not None:
            line += f" (job {trial['job_id']})"
        parts = [] if number in seen else [f"{p}={_fmt(v)}" for p, v in trial["params"].items()]
        parts += [f"{m}={_fmt(v, m)}" for m, v in zip(metrics, trial["values"] or [], strict=False)]
        if trial["error"]:
            parts.append(str(trial["error"]))
        seen[number] = key
        lines.append(line + (": " + ", ".join(parts) if parts else ""))
    if seen.get("sweep") != sweep["status"]:
        seen["sweep"] = sweep["status"]
        lines.append(f"sweep {sweep['id']} {sweep['status']}")
    return lines


def _trial_jobs(client: Client, sweep_id: int) -> dict[int, dict[str, Any]] | None:
    """A finished sweep's trial jobs by id: their summaries carry each trial's
    baseline. None if they cannot be read now: the table is then drawn without those
    notes (the sweep's outcome decides the exit status, not this extra read)."""
    try:
        jobs = client.jobs(sweep_id=sweep_id, limit=MAX_PAGE)
    except ApiError:
        return None
    return {int(job["id"]): job for job in jobs}


def sweep_table(sweep: dict[str, Any], jobs: dict[int, dict[str, Any]] | None = None) -> Table:
    """The trials, their points and objective values, the best starred; the last column
    says why a trial failed or, given its `jobs`, that a succeeded one's model did no
    better than its task's baseline."""
    spec = sweep["spec"]
    paths = list(spec["parameters"])
    objectives = [o["metric"] for o in spec["objectives"]]
    metrics = [f"{o['metric']} ({o['direction'][:3]})" for o in spec["objectives"]]
    best = set(sweep["best"])
    trials = sweep["trials"]
    finished = sum(t["status"] in FINISHED_TRIAL_STATUSES for t in trials)
    front = "Pareto front" if len(metrics) > 1 else "best"
    none = "(none yet)" if sweep["status"] in ("queued", "running") else "(none)"
    table = Table(
        "#",
        "job",
        "status",
        *paths,
        *metrics,
        "",
        "note",
        title=Text.assemble(
            f"sweep {sweep['id']} {visible(sweep.get('name') or '')} ",
            (sweep["status"], "bold"),
            f": {finished}/{spec['trials']} trials finished, {spec['sampler']} sampler",
        ),
        caption=f"★ {front}: {_trials(sorted(best)) or none}",
    )
    for trial in trials:
        values = trial["values"] or [None] * len(metrics)
        table.add_row(
            str(trial["number"]),
            str(trial["job_id"] or ""),
            trial["status"],
            *(_fmt(trial["params"].get(p)) for p in paths),
            *(_fmt(v, m) for m, v in zip(objectives, values, strict=True)),
            "★" if trial["number"] in best else "",
            Text(_note(trial, (jobs or {}).get(trial["job_id"] or 0))),
        )
    return table


def _note(trial: dict[str, Any], job: dict[str, Any] | None) -> str:
    if trial["error"]:
        return str(trial["error"])
    if trial["status"] != "succeeded" or job is None:
        return ""
    worse = no_better_than_baseline((job.get("summary") or {}).get("final_metrics"))
    return f"{worse[0]} no better than its {worse[1]} ({_fmt(worse[2])})" if worse else ""


def _fmt(value: Any, metric: str = "") -> str:
    if value is None:
        return ""
    if metric in BYTE_METRICS and isinstance(value, int | float):
        return binary_size(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _trials(numbers: list[int]) -> str:
    """ "trial 3", "trials 0, 4", or "" for none."""
    if not numbers:
        return ""
    return ("trial " if len(numbers) == 1 else "trials ") + ", ".join(map(str, numbers))
