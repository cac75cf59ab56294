"""What the client commands share: the consoles, how they fail (one line on stderr
and a non-zero exit, never a traceback, for mistakes a user makes), the client
session, and reading a spec file."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from service import spec_yaml
from service.client import ApiError, Client, ClientSettings
from service.schemas.accounts import folded_user_name
from service.schemas.common import CONTROL_CHARACTERS, MAX_PAGE


def visible(text: str) -> str:
    """`text` with its control characters shown as escapes (\\x1b, \\u202e), not
    obeyed: an ESC in a job name stored before names were checked could retitle or
    clear a terminal, a right-to-left override reverse the rest of the line."""
    return CONTROL_CHARACTERS.sub(_escaped, text)


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


class TextConsole(Console):
    """Names, details and errors are other people's text (an admin lists every user's
    jobs): every string printed has its control characters made visible, and with
    markup=False a "[/bold]" in a job name is text, not rich's markup."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(visible(text), **options)


# In a pipe rich would fit tables to 80 columns and cut their cells short: give it
# room, so what a script reads is whole (a terminal keeps its own width).
console = (
    TextConsole(markup=False) if sys.stdout.isatty() else TextConsole(markup=False, width=10_000)
)
# soft_wrap: an error stays one line however narrow the terminal (or 80 columns when
# stderr is no terminal), so it reads whole in a log and greps. Markup on for the red
# "error:"; what follows it is escaped (fail, api_failure).
err_console = TextConsole(stderr=True, soft_wrap=True, highlight=False)


def writable_anywhere() -> None:
    """Standard output writes what its encoding lacks as escapes (\\u2605), as Python's
    standard error already does: under PYTHONIOENCODING=ascii or a C locale a ★, an
    accented user or job name was a UnicodeEncodeError traceback. Each command calls
    it (the app's callback)."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error and return the exit to raise. The message is
    escaped: server details and file names may hold rich's [markup]."""
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def api_failure(exc: ApiError) -> typer.Exit:
    err_console.print(f"[red]error {exc.status}:[/red] {escape(one_line(exc.detail))}")
    return typer.Exit(1)


def one_line(detail: Any) -> str:
    """A server's error detail as one line: a 422's field errors as `field: message`
    joined by "; " (the field as a dotted path inside the body), anything else as
    compact JSON."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and all(isinstance(e, dict) and "msg" in e for e in detail):
        parts = []
        for error in detail:
            loc = [str(p) for p in error.get("loc") or []]
            field = ".".join(loc[1:] if loc[:1] in (["body"], ["query"], ["path"]) else loc)
            message = str(error["msg"]) + _received(error)
            parts.append(
                message if not field or message.startswith(field) else f"{field}: {message}"
            )
        return "; ".join(parts)
    return json.dumps(detail)


def _received(error: dict[str, Any]) -> str:
    """ " (got 100.0)" after a type error on a plain value: the file's `rounds: 1e2` is
    read as a number with a point, which "Input should be a valid integer" alone did not
    show (a walkthrough)."""
    kind = str(error.get("type", ""))
    value = error.get("input")
    if not kind.endswith(("_type", "_parsing", "_from_float")) or isinstance(value, dict | list):
        return ""
    shown = json.dumps(value)
    return f" (got {shown})" if len(shown) <= 60 else ""


@contextmanager
def client_session(settings: ClientSettings | None = None) -> Iterator[Client]:
    """A client for the configured server. A server that cannot be reached (wrong
    LAGTRAIN_URL, not started, gone mid-command) ends the command with one line."""
    settings = settings or ClientSettings()
    try:
        client = Client.from_settings(settings)
    except ApiError as exc:  # no token
        raise fail(str(exc.detail), code=2) from exc
    with client:
        try:
            yield client
        except httpx.TransportError as exc:
            raise fail(_unreachable(settings.url, exc)) from exc


T = TypeVar("T")


def call(action: Callable[[Client], T]) -> T:
    """`action` on a client session; an HTTP error ends the command with one line."""
    with client_session() as client:
        try:
            return action(client)
        except ApiError as exc:
            raise api_failure(exc) from exc


def each_id(
    act: Callable[[Client, int], Any], ids: list[int], said: Callable[[int, Any], str]
) -> None:
    """`act` on each id in turn (delete, cancel), printing `said(id, its answer)` for
    each that went; a refusal (the server's reason on standard error) does not stop
    the rest, but makes the exit status 1."""
    refused = False
    with client_session() as client:
        for one in ids:
            try:
                answer = act(client, one)
            except ApiError as exc:
                api_failure(exc)  # says why on standard error; the rest still go
                refused = True
                continue
            console.print(said(one, answer))
    if refused:
        raise typer.Exit(1)


def _unreachable(url: str, exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.LocalProtocolError):
        # Refused here, before sending: its text quotes the header, the token with it.
        return (
            f"could not send a request to {url}: the token holds characters an HTTP "
            "header cannot carry"
        )
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
        return f"cannot reach the server at {url}: {reason} (LAGTRAIN_URL sets the address)"
    return f"lost the connection to the server at {url}: {reason}"


def refuse_the_other_kind(spec: Any, path: Path, *, wanted: str) -> None:
    """One line naming the right command when a sweep file is given where a JobSpec
    is wanted ("job") or the other way round ("sweep") (spec_yaml.spec_kind)."""
    kind = spec_yaml.spec_kind(spec)
    if kind is None or kind == wanted:
        return
    if kind == "sweep":
        raise fail(f"{path} is a sweep spec (it has `base`): submit it with `lagtrain sweep`")
    raise fail(
        f"{path} is a JobSpec (it has `task`; a sweep's is under `base`): "
        "submit it with `lagtrain submit`"
    )


def load_spec(path: Path) -> Any:
    """The spec in a YAML (or JSON) file, checked for what JSON cannot carry: the
    server never sees a file that does not parse, and the error names the place."""
    try:
        text = path.read_text(encoding="utf-8")
        # The dashboard's guard: a file nested 2000 deep was a RecursionError.
        spec_yaml.check_structure(text)
        spec = spec_yaml.load(text)
    except spec_yaml.SpecTextError as exc:
        raise fail(f"{path}: line {exc.line}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise fail(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise fail(f"{path}: invalid YAML {_yaml_problem(exc)}") from exc
    if spec is None:  # the server's answer was "error 422: Field required"
        raise fail(f"{path} is empty: a spec is a mapping of fields (e.g. task: {{...}})")
    problem = spec_yaml.not_json(spec)
    if problem is not None:
        raise fail(f"{path}: {problem.text}")
    return spec


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f": {exc}"
    mark = exc.problem_mark
    where = f"at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        started = exc.context_mark
        where += f" ({exc.context} at line {started.line + 1}, column {started.column + 1})"
    return where


Row = dict[str, Any]


def newest(
    fetch: Callable[..., list[Row]], *, limit: int, **filters: Any
) -> tuple[list[Row], bool]:
    """A list command's rows: the newest `limit` (0: all) from `fetch` (Client.jobs,
    Client.sweeps, Client.audit) given `filters`, and whether there were more. One
    page holds the limit and the one more that says there are more."""
    try:
        page = min(limit + 1, MAX_PAGE) if limit else MAX_PAGE
        rows = fetch(limit=page, most=limit or None, **filters)
    except ApiError as exc:
        raise api_failure(exc) from exc
    more = limit > 0 and len(rows) > limit
    return (rows[:limit] if more else rows), more


def print_newest(table: Table, *, more: bool, limit: int) -> None:
    console.print(table)
    if more:
        err_console.print(f"the {limit} newest shown; --limit 0 lists all")


def user_id_named(client: Client, name: str, option: str) -> int:
    """The id of the user called `name` (admins list users); `option` names what
    took the name, for the error."""
    try:
        users = client.users()
    except ApiError as exc:
        raise api_failure(exc) from exc
    for found in users:
        if folded_user_name(found["name"]) == folded_user_name(name):
            return int(found["id"])
    raise fail(f"no user named {name!r} ({option} takes a user's name)")


def binary_size(count: int) -> str:
    """Bytes as people read them: "0 B", "1.5 KiB", "20 GiB" (three figures at most)."""
    size, unit = float(count), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if round(size) < 1000:
            break
        size, unit = size / 1024, bigger
    if unit == "B":
        return f"{count} B"
    return f"{size:.0f} {unit}" if round(size) >= 100 else f"{size:.3g} {unit}"


def when(text: str | None, *, never: str = "") -> str:
    """A time from the API (ISO 8601, UTC) as every command prints it, to the second:
    "2026-12-04 13:05:52"; `never` for none."""
    return never if text is None else str(text)[:19].replace("T", " ")
