"""Files the dashboard serves: its own static files, the plotly.js bundle from the
installed `plotly` package, and the example specs the submit page starts from."""

from __future__ import annotations

import gzip
from functools import cache
from importlib.resources import files
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
# The repository's examples/ (an editable install or a source checkout); an installed
# wheel has none and the submit page then starts empty.
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


@cache
def plotly_bundle() -> bytes:
    return files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()


@cache
def plotly_bundle_gzip() -> bytes:
    """plotly.min.js, compressed once per process (4.8 MB → ~1.4 MB on the wire)."""
    return gzip.compress(plotly_bundle(), compresslevel=6, mtime=0)


def example_specs() -> dict[str, str]:
    """Example job and sweep specs by file stem, as their YAML text."""
    if not EXAMPLES_DIR.is_dir():
        return {}
    return {path.stem: path.read_text() for path in sorted(EXAMPLES_DIR.glob("*.yaml"))}
