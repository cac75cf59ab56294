"""The client's accounts: the signed-in user, users (admins), tokens, and the audit
log."""

from __future__ import annotations

from typing import Any

from service.client_base import ClientBase
from service.schemas.common import MAX_PAGE


class AccountsApi(ClientBase):
    def me(self) -> dict[str, Any]:
        """The signed-in user, with `quota` (in force) and `usage`."""
        result: dict[str, Any] = self._request("GET", "/v1/users/me")
        return result

    def users(self) -> list[dict[str, Any]]:
        """Every user (admins)."""
        return self._every_page("/v1/users", {"limit": MAX_PAGE})

    def create_user(
        self,
        name: str,
        *,
        role: str = "user",
        share: float | None = None,
        quota: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A new user (admins), with `token`, shown only in this answer."""
        body: dict[str, Any] = {"name": name, "role": role}
        body |= {k: v for k, v in {"share": share, "quota": quota}.items() if v is not None}
        result: dict[str, Any] = self._request("POST", "/v1/users", json=body)
        return result

    def update_user(self, user_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """PATCH a user (admins): `disabled`, `share`, `quota` (a null field: the
        server's default)."""
        result: dict[str, Any] = self._request("PATCH", f"/v1/users/{user_id}", json=changes)
        return result

    def tokens(self, *, user_id: int | None = None) -> list[dict[str, Any]]:
        """Active tokens, never their secrets: yours, or (admins) a user's."""
        params = {} if user_id is None else {"user_id": user_id}
        result: list[dict[str, Any]] = self._request("GET", "/v1/tokens", params=params)["data"]
        return result

    def create_token(
        self, *, expires_in_days: int | None = None, user_id: int | None = None
    ) -> dict[str, Any]:
        """A new token (`token` shown only in this answer): yours, or (admins) a user's."""
        body = {"expires_in_days": expires_in_days}
        if user_id is not None:
            body["user_id"] = user_id
        result: dict[str, Any] = self._request("POST", "/v1/tokens", json=body)
        return result

    def revoke_token(self, token_id: int) -> None:
        self._request("DELETE", f"/v1/tokens/{token_id}")

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
