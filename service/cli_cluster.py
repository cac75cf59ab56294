"""`lagtrain cluster`: what the Lab page shows, in a terminal — the dispatchers
(alive, stopped or lost), the cluster's free resources, jobs by status, and the
queue's head in claim order with what holds each job back (an operator otherwise
had to curl /v1/cluster)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from service.cli_common import call, console, when

cluster_app = typer.Typer(add_completion=False)
# The shortest shared note `shared_notes` prints below the table (the room-hold
# policy is ≈ 200 characters).
NOTE_LENGTH = 80


@cluster_app.command("cluster")
def cluster() -> None:
    """Dispatchers, free resources, jobs by status and the queue's head.

    An admin sees everyone's queued jobs; a user their own, at their places in the
    whole queue. A job the claim skips (its owner disabled, or a quota that forbids
    it) is listed last, position "skipped"."""
    answer = call(lambda client: client.cluster())
    dispatchers = Table(
        "dispatcher", "host", "state", "last seen (UTC)", "running jobs", "CPU free"
    )
    for d in answer["dispatchers"]:
        dispatchers.add_row(
            d["id"],
            d["hostname"],
            _state(d),
            when(d["last_seen_at"]),
            str(d["resources"].get("running_jobs", "")),
            _free(d["resources"], "CPU") if d["alive"] else "",  # a report from before
        )
    console.print(dispatchers if answer["dispatchers"] else "no dispatcher seen in the last hour")
    total, free = answer["resources"]["total"], answer["resources"]["free"]
    console.print(
        "cluster: "
        + (
            ", ".join(f"{free.get(k, 0):g}/{v:g} {k} free" for k, v in total.items())
            or "no live dispatcher reports it"
        )
    )
    counts = answer["queue"]
    console.print(
        "jobs: " + (" · ".join(f"{n} {status}" for status, n in counts.items() if n) or "none")
    )
    queue = Table("position", "job", "owner", "priority", "waiting for")
    places = answer["queue_head"]
    waits, notes = shared_notes([[r["message"] for r in place["reasons"]] for place in places])
    for place, wait in zip(places, waits, strict=True):
        queue.add_row(
            "skipped" if place["position"] is None else str(place["position"]),
            f"{place['job_id']} {place['name'] or ''}".strip(),
            place["owner"],
            str(place["priority"]),
            wait,
        )
    console.print(queue if places else "no queued job")
    for number, note in enumerate(notes, start=1):
        console.print(f"[{number}] {note}", highlight=False, markup=False)


def shared_notes(reasons: list[list[str]]) -> tuple[list[str], list[str]]:
    """Each queued job's reasons as one text, where a reason's note (what follows its
    first "; ", e.g. the room-hold policy explain adds to every wait for free room,
    ≈ 200 characters) that several reasons share is a numbered mark; and those notes,
    to print once below the table (a walkthrough: the same sentence on every row)."""
    tails = [m.partition("; ")[2] for messages in reasons for m in messages]
    # Long ones only: a short clause ("the cluster has 2 CPU now …") reads best in place.
    shared = [t for t in dict.fromkeys(tails) if len(t) >= NOTE_LENGTH and tails.count(t) > 1]
    mark = {tail: f" [{number}]" for number, tail in enumerate(shared, start=1)}

    def short(message: str) -> str:
        head, _, tail = message.partition("; ")
        return head + mark[tail] if tail in mark else message

    return ["; ".join(map(short, m)) or "next free slot" for m in reasons], shared


def _state(dispatcher: dict[str, Any]) -> str:
    state = str(dispatcher["state"])  # the server's rule (dispatcher_state)
    return f"stopped {when(dispatcher['stopped_at'])} UTC" if state == "stopped" else state


def _free(resources: dict[str, Any], kind: str) -> str:
    free, total = resources.get("free") or {}, resources.get("total") or {}
    if kind not in total:
        return ""
    return f"{free.get(kind, 0):g}/{total[kind]:g}" if kind in free else f"?/{total[kind]:g}"
