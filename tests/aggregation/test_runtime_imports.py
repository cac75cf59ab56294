"""Import purity, checked at run time as well as in the source (test_import_boundaries):
a fresh interpreter that imports the whole training core — the rules, the
coordinator, the runner, the contract it reads — has loaded none of the service's or
Ray's machinery, not even indirectly; one that imports what a job's Ray actors run
has loaded none of the store's or the web's (each actor process pays its imports)."""

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
ACTOR_MODULES = ["workers.ray_actors", "workers.warm_host"]
STORE_AND_WEB = ("sqlalchemy", "fastapi", "starlette", "httpx", "psycopg", "uvicorn")


def _loaded_by(modules: list[str]) -> list[str]:
    """The modules a fresh interpreter has loaded once it imported `modules`."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded: list[str] = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], check=True, capture_output=True, text=True
        ).stdout
    )
    assert set(modules) <= set(loaded)
    return loaded


def test_importing_the_core_loads_no_service_or_ray_module() -> None:
    loaded = _loaded_by(CORE_MODULES)
    offending = [m for m in loaded if m.split(".")[0] in ("ray", *STORE_AND_WEB)]
    assert offending == []
    assert not [m for m in loaded if m.startswith(("service.store", "service.api"))]


def test_a_job_actor_imports_no_store_or_web_module() -> None:
    # Every actor process started pays for its imports (torch's are the most of them);
    # the settings module would bring SQLAlchemy along: ≈ 0.4 s of CPU per actor.
    loaded = _loaded_by(ACTOR_MODULES)
    offending = [m for m in loaded if m.split(".")[0] in (*STORE_AND_WEB, "pydantic_settings")]
    assert offending == []
    assert not [
        m for m in loaded if m.startswith(("service.store", "service.api", "service.settings"))
    ]
