"""What the client commands share: the consoles, how they fail (one line on stderr
and a non-zero exit, never a traceback, for mistakes a user makes), the client
session, and reading a spec file."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import typer
import yaml
from rich.console import Console
from rich.markup import escape

from service.client import ApiError, Client, ClientSettings

console = Console()
# soft_wrap: an error stays one line however narrow the terminal (or 80 columns when
# stderr is no terminal), so it reads whole in a log and greps.
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `message` as an error and return the exit to raise. The message is
    escaped: server details and file names may hold rich's [markup]."""
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def api_failure(exc: ApiError) -> typer.Exit:
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, indent=1)
    err_console.print(f"[red]error {exc.status}:[/red] {escape(detail)}")
    return typer.Exit(1)


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


def _unreachable(url: str, exc: httpx.TransportError) -> str:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
        return f"cannot reach the server at {url}: {reason} (LAGTRAIN_URL sets the address)"
    return f"lost the connection to the server at {url}: {reason}"


def load_spec(path: Path) -> Any:
    """The spec in a YAML (or JSON) file, checked for what JSON cannot carry: the
    server never sees a file that does not parse, and the error names the place."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise fail(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise fail(f"{path}: invalid YAML {_yaml_problem(exc)}") from exc
    problem = not_json(spec, "")
    if problem is not None:
        raise fail(f"{path}: {problem}")
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


def not_json(value: Any, path: str) -> str | None:
    """The first value under `value` that JSON cannot carry, as "where: why"; None if
    there is none. YAML reads `.nan`/`.inf` as floats that JSON has no spelling for,
    and an unquoted 2024-01-01 as a date."""
    where = path or "the spec"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value}: non-finite numbers (NaN, infinity) are not allowed"
    if isinstance(value, dict):
        items: Iterator[tuple[str, Any]] = (
            (f"{path}.{k}" if path else str(k), v) for k, v in value.items()
        )
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif value is None or isinstance(value, str | int | float):
        return None
    else:
        kind = type(value).__name__
        return f"{where} is {value} (YAML read a {kind}, which JSON cannot carry): quote it"
    for item_path, item in items:
        found = not_json(item, item_path)
        if found is not None:
            return found
    return None
