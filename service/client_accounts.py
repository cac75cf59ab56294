"""The client's accounts: the signed-in user, every user, and the audit log."""

from __future__ import annotations

from typing import Any

from service.client_base import ClientBase


class AccountsApi(ClientBase):
    def me(self) -> dict[str, Any]:
        """The signed-in user, with `quota` (in force) and `usage`."""
        result: dict[str, Any] = self._request("GET", "/v1/users/me")
        return result

    def users(self) -> list[dict[str, Any]]:
        """Every user (admins)."""
        return self._every_page("/v1/users", {"limit": 500})

    def audit(
        self,
        *,
        order: str = "oldest",
        actor_id: int | None = None,
        action: str | None = None,
        target: str | None = None,
        limit: int = 100,
        most: int | None = None,
    ) -> list[dict[str, Any]]:
        """The audit log (admins), `order` "oldest" or "newest" first, paged like
        jobs(); a filter left None matches any event."""
        filters = {"actor_id": actor_id, "action": action, "target": target}
        params = {"order": order, "limit": limit}
        params |= {name: value for name, value in filters.items() if value is not None}
        return self._every_page(
            "/v1/audit", params, most=most, cursor=("next_after_id", "after_id")
        )
