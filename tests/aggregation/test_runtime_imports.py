"""The training core's import purity, checked at run time as well as in the source
(test_import_boundaries): a fresh interpreter that imports the whole core — the
rules, the coordinator, the runner, the contract it reads — has loaded none of the
service's or Ray's machinery, not even indirectly."""

from __future__ import annotations

import json
import subprocess
import sys

CORE_MODULES = [
    "workers.aggregation.registry",
    "workers.training.runner",
    "workers.training.checkpoint",
    "service.schemas.resolve",
]
FORBIDDEN_PREFIXES = ("ray", "sqlalchemy", "fastapi", "starlette", "httpx", "psycopg", "uvicorn")


def test_importing_the_core_loads_no_service_or_ray_module() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {CORE_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout
    )
    assert set(CORE_MODULES) <= set(loaded)
    offending = [m for m in loaded if m.split(".")[0] in FORBIDDEN_PREFIXES]
    assert offending == []
    assert not [m for m in loaded if m.startswith(("service.store", "service.api"))]
