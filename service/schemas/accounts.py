"""Users, tokens and datasets: API requests and responses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import USER_NAME_PATTERN, UtcDatetime
from service.schemas.data_limits import CsvShape, TextShape
from service.schemas.quota import QuotaIn, QuotaOut, UsageOut

Role = Literal["user", "admin"]


def folded_user_name(name: str) -> str:
    """What makes two user names one user: their case does not count ("Alice" is
    alice; the store's unique index on lower(name), migration 0009). The names are
    ASCII, so this is the databases' lower() too."""
    return name.lower()


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    name: str = Field(min_length=1, max_length=100, pattern=USER_NAME_PATTERN)
    role: Role = "user"
    # `share` and `quota` as PATCH /v1/users/{id} takes them (DESIGN §11), so a new
    # user is made in one call; `share_weight` and `max_running_jobs` are the older
    # names, still taken (one of each pair).
    share: float | None = Field(default=None, gt=0.0, le=1000.0, description="fair-share weight")
    quota: QuotaIn | None = None
    max_running_jobs: int | None = Field(default=None, ge=0, le=10_000)
    share_weight: float | None = Field(default=None, gt=0.0, le=1000.0)

    @model_validator(mode="after")
    def _one_name_each(self) -> UserCreate:
        if self.share is not None and self.share_weight is not None:
            raise ValueError("give the fair-share weight once: share or share_weight")
        if self.quota is not None and self.max_running_jobs is not None:
            raise ValueError("give max_running_jobs once: in quota or beside it")
        return self

    def quota_change(self) -> QuotaIn:
        """The quota set at creation, whichever name carried it."""
        if self.quota is not None:
            return self.quota
        if self.max_running_jobs is not None:
            return QuotaIn(max_running_jobs=self.max_running_jobs)
        return QuotaIn()

    def fair_share(self) -> float:
        return next((w for w in (self.share, self.share_weight) if w is not None), 1.0)


class UserCreated(BaseModel):
    id: int
    name: str
    role: Role
    token: str = Field(description="shown only in this answer")


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    max_running_jobs: int = Field(description="the running-jobs quota in force")
    # DESIGN §11 names the weight `share` (PATCH and POST take it); `share_weight` is
    # the older name, kept for the clients that read it.
    share: float = Field(description="fair-share weight, as PATCH's `share` sets it")
    share_weight: float = Field(description="the same weight, under its older name")
    created_at: UtcDatetime
    disabled: bool
    quota: QuotaOut
    usage: UsageOut


class UserPatch(BaseModel):
    """An admin's change to a user; fields left out are unchanged."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    disabled: bool | None = Field(
        default=None, description="true locks the user out at once (every token refused)"
    )
    quota: QuotaIn | None = None
    share: float | None = Field(default=None, gt=0.0, le=1000.0, description="fair-share weight")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    expires_in_days: int | None = Field(
        default=None, ge=1, le=36_500, description="days until it expires; null = never"
    )
    # Without it a user whose only token was revoked (leaked) or lost could never
    # sign in again: POST /v1/tokens needs a token of its own user.
    user_id: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="admins: issue it for this user (shown once, to the admin)",
    )


class TokenCreated(BaseModel):
    id: int
    token: str = Field(description="shown only in this answer")
    expires_at: UtcDatetime | None


class TokenOut(BaseModel):
    id: int
    created_at: UtcDatetime
    expires_at: UtcDatetime | None
    last_used_at: UtcDatetime | None = Field(description="to the minute")


class TokenList(BaseModel):
    data: list[TokenOut]


class AuditEventOut(BaseModel):
    id: int
    time: UtcDatetime
    actor: str = Field(
        description="who did it: role:name (a token's user), cli:<login> (a server-side "
        "CLI command), sweep:N for user:name (a sweep acting for its owner), or server"
    )
    action: str
    target: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    data: list[AuditEventOut]
    next_after_id: int | None


class DatasetOut(BaseModel):
    id: int
    ref: str = Field(description="use as task.dataset in a JobSpec")
    owner: str
    filename: str
    format: Literal["text", "csv"]
    bytes: int
    sha256: str
    created_at: UtcDatetime
    shape: CsvShape | TextShape | None = Field(
        description="what the upload holds, summarised when it was uploaded (each submit "
        "that names it is checked against this): a CSV's data rows, columns, whether "
        "every label is an integer >= 0 and the classes that makes; a text's characters "
        "and distinct characters. Null for an upload stored before summaries were kept"
    )
