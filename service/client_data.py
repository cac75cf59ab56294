"""The client's stored things: datasets (upload, list, delete), a job's checkpoints
(delete) and a finished job with everything it produced (delete)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.client_base import ClientBase


class DataApi(ClientBase):
    def upload_dataset(self, path: Path, *, fmt: str | None = None) -> dict[str, Any]:
        """Upload a text or CSV file (streamed from disk); `fmt` None: from its name."""
        with path.open("rb") as fh:
            result: dict[str, Any] = self._request(
                "POST",
                "/v1/datasets",
                files={"file": (path.name, fh)},
                data={} if fmt is None else {"format": fmt},
            )
        return result

    def datasets(self, *, limit: int = 50) -> list[dict[str, Any]]:
        return self._every_page("/v1/datasets", {"limit": limit})

    def delete_dataset(self, dataset_id: int) -> None:
        self._request("DELETE", f"/v1/datasets/{dataset_id}")

    def delete_checkpoints(self, job_id: int) -> None:
        self._request("DELETE", f"/v1/jobs/{job_id}/checkpoints")

    def delete_job(self, job_id: int) -> None:
        """Delete a finished job with its metrics, events and checkpoints."""
        self._request("DELETE", f"/v1/jobs/{job_id}")
