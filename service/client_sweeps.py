"""The client's sweeps: submitting, listing, reading, cancelling and deleting them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from service.client_base import ClientBase


class SweepsApi(ClientBase):
    def submit_sweep(
        self, spec: dict[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        return self._create("/v1/sweeps", spec, idempotency_key)

    def sweeps(
        self,
        *,
        status: str | None = None,
        owner: str | None = None,
        finished_before: datetime | None = None,
        limit: int = 50,
        most: int | None = None,
    ) -> list[dict[str, Any]]:
        """Your sweeps (an admin's: everyone's, or `owner`'s), newest first, paged
        like jobs(); `finished_before` as there."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if owner is not None:
            params["owner"] = owner
        if finished_before is not None:
            params["finished_before"] = finished_before.isoformat()
        return self._every_page("/v1/sweeps", params, most=most)

    def sweep(self, sweep_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/sweeps/{sweep_id}")
        return result

    def cancel_sweep(self, sweep_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", f"/v1/sweeps/{sweep_id}/cancel")
        return result

    def delete_sweep(self, sweep_id: int) -> None:
        """Delete a finished sweep with its trials and their jobs."""
        self._request("DELETE", f"/v1/sweeps/{sweep_id}")
