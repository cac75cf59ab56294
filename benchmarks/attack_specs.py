"""How fast the server refuses the audit's attacks (issue 8): the largest model on
256 workers, a 64-worker LAG gang of a 2048-wide LSTM, and a text upload with
~1.1 M distinct characters — each through the real app (in process, SQLite), timed
from request to the 422.

    .venv/bin/python benchmarks/attack_specs.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.app import create_app
from service.settings import Settings
from service.store.migrate import upgrade

TOKEN = "bench-admin-token-" + "x" * 32
SPECS = {
    "largest model x 256 workers": {
        "task": {"kind": "char_lm"},
        "model": {"hidden_size": 4096, "num_layers": 8, "embedding_dim": 4096},
        "distributed": {"workers": 256, "cpus_per_worker": 0.001},
    },
    "lag_wk, 2048-wide LSTM x 64 workers": {
        "task": {"kind": "sequence_classification"},
        "model": {"hidden_size": 2048, "num_layers": 2},
        "aggregation": {"strategy": "lag_wk"},
        "distributed": {"workers": 64, "cpus_per_worker": 0.01},
    },
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'l.db'}"
        upgrade(url)
        settings = Settings(
            database_url=url,
            artifacts_url=str(Path(tmp) / "a"),
            state_dir=Path(tmp) / "s",
            bootstrap_admin_token=SecretStr(TOKEN),
        )
        with TestClient(create_app(settings)) as client:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            client.get("/v1/users/me", headers=auth)  # warm up
            for name, spec in SPECS.items():
                start = time.perf_counter()
                r = client.post("/v1/jobs", json=spec, headers=auth)
                took = time.perf_counter() - start
                msg = r.json()["detail"][0]["msg"][:90]
                print(f"{name:38} {r.status_code} in {took * 1000:7.1f} ms: {msg}")
            text = "".join(chr(c) for c in range(0x20, 0x110000) if not 0xD800 <= c < 0xE000)
            data = text.encode()
            start = time.perf_counter()
            r = client.post("/v1/datasets", files={"file": ("all.txt", data)}, headers=auth)
            took = time.perf_counter() - start
            label = f"upload, {len(text):,} distinct chars"
            msg = r.json()["detail"][0]["msg"][:60]
            size = f"{len(data) / 1e6:.1f} MB"
            print(f"{label:38} {r.status_code} in {took * 1000:7.1f} ms ({size}): {msg}")


if __name__ == "__main__":
    main()
