"""Running a check in a fresh interpreter: what a process imports on its own (an
actor's process starts with nothing but its own imports) cannot be seen from
pytest's, which has imported everything the suite needs."""

from __future__ import annotations

import subprocess
import sys


def last_line_printed(script: str, *, timeout: float = 600) -> str:
    """The last line `script` prints, run by this Python in the current directory
    (the repository root under pytest, so `tests` and the project import); raises
    if it fails."""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, check=True
    )
    return done.stdout.strip().splitlines()[-1]
