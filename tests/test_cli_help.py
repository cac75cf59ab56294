"""`lagtrain --help` lists each command with its help's first paragraph. Typer's
rich help keeps that paragraph's line breaks, so a summary written over two source
lines was listed broken mid-sentence: each command's summary is one line."""

from __future__ import annotations

import inspect
from typing import Any

import typer
from typer.testing import CliRunner

from service.cli import app


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every command under `group` (typer's own click groups), by its full name."""
    found: list[tuple[str, Any]] = []
    for name, command in getattr(group, "commands", {}).items():
        found.append((prefix + name, command))
        found += _commands(command, f"{prefix}{name} ")
    return found


def test_every_commands_summary_is_one_line() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 30  # every command, the admin and db groups' too
    broken = {
        name: summary
        for name, command in commands
        if "\n" in (summary := inspect.cleandoc(command.help or "").split("\n\n")[0])
    }
    assert broken == {}


def test_the_command_list_shows_a_long_summary_whole() -> None:
    listing = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "160"}).output
    assert "Delete finished sweeps and jobs older than --older-than days." in listing
    assert "Disable or enable a user, or change their share or quotas. Admins only." in listing
