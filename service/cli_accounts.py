"""Accounts over HTTP: your tokens (list, issue, revoke), and for admins the lab's
users (list, add, disable, quotas and shares) — what `lagtrain admin create-user`
does on the server's machine, from anywhere the API is reachable.

A new token is printed alone on stdout (what it is goes to stderr), so
`TOKEN=$(lagtrain token-new)` keeps just the secret."""

from __future__ import annotations

import math
from typing import Any

import typer
from rich.table import Table

from service.cli_common import binary_size, call, console, err_console, fail, when
from service.cli_common import user_id_named as _named
from service.cli_sizes import NotASize, byte_count
from service.client import Client

accounts_app = typer.Typer(add_completion=False)

USER_OPTION = typer.Option(None, "--user", help="admins: that user's (by name)")
QUOTA_OPTION = typer.Option(
    None,
    "--quota",
    help="FIELD=VALUE, repeatable: max_running_jobs, max_queued_jobs, max_cpus, max_gpus, "
    "max_storage_bytes (bytes, or with a unit: 10GiB, 500MB), max_job_hours; VALUE 'default' "
    "returns it to the server's default",
)
# The quota fields that are a number of bytes: they also take a unit (cli_sizes).
SIZE_FIELDS = frozenset({"max_storage_bytes"})


@accounts_app.command("tokens")
def tokens(user: str | None = USER_OPTION) -> None:
    """Your active tokens (admins: --user NAME's). Never the secrets.

    When each was made, when it expires and when it was last used."""

    def listed(client: Client) -> list[dict[str, Any]]:
        return client.tokens(user_id=None if user is None else _named(client, user, "--user"))

    table = Table("id", "created (UTC)", "expires (UTC)", "last used (UTC)")
    for token in call(listed):
        table.add_row(
            str(token["id"]),
            when(token["created_at"]),
            when(token["expires_at"], never="never"),
            when(token["last_used_at"], never="-"),
        )
    console.print(table)


@accounts_app.command("token-new")
def token_new(
    expires_in_days: int | None = typer.Option(
        None, "--expires-in-days", min=1, help="days until it expires (default: never)"
    ),
    user: str | None = typer.Option(
        None, "--user", help="admins: issue it for this user (whose tokens were revoked or lost)"
    ),
) -> None:
    """Issue a token and print it: shown this once, the server keeps only its hash."""

    def issued(client: Client) -> dict[str, Any]:
        user_id = None if user is None else _named(client, user, "--user")
        return client.create_token(expires_in_days=expires_in_days, user_id=user_id)

    made = call(issued)
    whose = "you" if user is None else f"user {user!r}"
    expires = "never" if made["expires_at"] is None else f"{when(made['expires_at'])} UTC"
    err_console.print(f"token {made['id']} for {whose} (expires {expires}); shown only once:")
    typer.echo(made["token"])


@accounts_app.command("token-revoke")
def token_revoke(
    token_id: int = typer.Argument(..., min=1, help="its id (lagtrain tokens)"),
) -> None:
    """Revoke a token at once (admins: anyone's)."""
    call(lambda client: client.revoke_token(token_id))
    console.print(f"token {token_id} revoked")


@accounts_app.command("users")
def users() -> None:
    """The lab's users with their quotas in force and what they use now. Admins only."""
    table = Table("id", "name", "role", "state", "share", "running", "queued", "CPUs", "storage")
    for user in call(lambda client: client.users()):
        table.add_row(*_user_row(user))
    console.print(table)


@accounts_app.command("user-add")
def user_add(
    name: str = typer.Argument(..., help="the user's name"),
    admin: bool = typer.Option(False, "--admin", help="give the admin role"),
    share: float | None = typer.Option(None, help="fair-share weight (default 1)"),
    quota: list[str] | None = QUOTA_OPTION,
) -> None:
    """Create a user and print their first token (shown only once). Admins only."""
    limits = parse_quota(quota or [])
    weight = _finite_share(share)
    made = call(
        lambda client: client.create_user(
            name, role="admin" if admin else "user", share=weight, quota=limits or None
        )
    )
    err_console.print(
        f"created user {made['name']!r} (id {made['id']}, role {made['role']}); "
        "their token, shown only once:"
    )
    typer.echo(made["token"])


@accounts_app.command("user-set")
def user_set(
    name: str = typer.Argument(..., help="the user's name"),
    disabled: bool | None = typer.Option(
        None,
        "--disable/--enable",
        help="disable: every token of theirs refused at once, nothing new of theirs starts",
    ),
    share: float | None = typer.Option(None, help="fair-share weight"),
    quota: list[str] | None = QUOTA_OPTION,
) -> None:
    """Disable or enable a user, or change their share or quotas. Admins only.

    Prints the user after the change; every change is in the audit log."""
    changes: dict[str, Any] = {"disabled": disabled, "share": _finite_share(share)}
    changes = {key: value for key, value in changes.items() if value is not None}
    if quota:
        changes["quota"] = parse_quota(quota)
    if not changes:
        raise fail("nothing to change: give --disable/--enable, --share or --quota", code=2)

    def updated(client: Client) -> dict[str, Any]:
        return client.update_user(_named(client, name, "lagtrain user-set"), changes)

    table = Table("id", "name", "role", "state", "share", "running", "queued", "CPUs", "storage")
    table.add_row(*_user_row(call(updated)))
    console.print(table)


def parse_quota(items: list[str]) -> dict[str, int | float | None]:
    """`--quota` values as the API's quota object: FIELD=3 (an int), FIELD=2.5, or
    FIELD=default (null: the server's default); a size also with a unit,
    max_storage_bytes=10GiB or 500MB (sent as bytes). The server checks the fields."""
    limits: dict[str, int | float | None] = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not field:
            raise fail(f"--quota {item!r}: give FIELD=VALUE, e.g. max_running_jobs=3", code=2)
        if text == "default":
            limits[field] = None
            continue
        number = _number(text)
        if number is None and field in SIZE_FIELDS:
            try:
                number = byte_count(text)
            except NotASize as exc:
                raise fail(f"--quota {item!r}: {exc}, or 'default'", code=2) from exc
        if number is None:
            raise fail(f"--quota {item!r}: {text!r} is no number (or 'default')", code=2)
        # JSON has no inf or nan: httpx refused the body with a traceback.
        if isinstance(number, float) and not math.isfinite(number):
            raise fail(f"--quota {item!r}: {text!r} is not a finite number", code=2)
        limits[field] = number
    return limits


def _number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def _finite_share(share: float | None) -> float | None:
    if share is not None and not math.isfinite(share):
        raise fail(f"--share {share}: not a finite number", code=2)
    return share


def _user_row(user: dict[str, Any]) -> list[str]:
    quota, used = user["quota"], user["usage"]
    return [
        str(user["id"]),
        user["name"],
        user["role"],
        "disabled" if user["disabled"] else "active",
        f"{user['share_weight']:g}",
        f"{used['running_jobs']}/{quota['max_running_jobs']}",
        f"{used['queued_jobs']}/{quota['max_queued_jobs']}",
        f"{used['cpus']:g}/{quota['max_cpus']:g}",
        f"{binary_size(used['storage_bytes'])}/{binary_size(quota['max_storage_bytes'])}",
    ]
