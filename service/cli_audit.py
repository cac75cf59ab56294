"""`lagtrain audit`: the newest events of the audit log (admins), filtered by who
acted, the action and its target."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from service.cli_common import client_session, newest, print_newest, user_id_named, when

audit_app = typer.Typer(add_completion=False)


@audit_app.command("audit")
def audit(
    user: str | None = typer.Option(None, "--user", help="only what this user did (by name)"),
    action: str | None = typer.Option(
        None,
        help="an action (job.cancelled), or its subject (job, or job.) for all the subject's "
        "actions",
    ),
    target: str | None = typer.Option(None, help="what was acted on: job:42, user:7, token:3"),
    limit: int = typer.Option(20, min=0, help="the newest N (0: all)"),
) -> None:
    """The newest events of the audit log, oldest of them first. Admins only.

    Oldest first because a log reads down to the latest, beside the prompt."""
    with client_session() as client:
        actor_id = None if user is None else user_id_named(client, user, "lagtrain audit --user")
        events, more = newest(
            client.audit,
            limit=limit,
            order="newest",
            actor_id=actor_id,
            action=action,
            target=target,
        )
    table = Table("time (UTC)", "actor", "action", "target", "detail")
    for column in table.columns:
        column.no_wrap = True  # one line per event; a narrow terminal cuts the detail short
    for event in reversed(events):
        table.add_row(
            when(event["time"]),
            event["actor"],
            event["action"],
            event["target"],
            _compact_detail(event["detail"]),
        )
    print_newest(table, more=more, limit=limit)


def _compact_detail(detail: dict[str, Any]) -> str:
    """`key=value` pairs: strings bare, anything else as compact JSON."""
    return " ".join(
        f"{key}={value if isinstance(value, str) else json.dumps(value, separators=(',', ':'))}"
        for key, value in detail.items()
    )
