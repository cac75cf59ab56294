"""Users, tokens and datasets: API requests and responses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.common import UtcDatetime

Role = Literal["user", "admin"]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    role: Role = "user"
    max_running_jobs: int | None = Field(default=None, ge=0, le=10_000)
    share_weight: float = Field(default=1.0, gt=0.0, le=1000.0)


class UserCreated(BaseModel):
    id: int
    name: str
    role: Role
    token: str = Field(description="shown only in this answer")


class Usage(BaseModel):
    jobs_total: int
    jobs_by_status: dict[str, int]


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    max_running_jobs: int | None
    share_weight: float
    created_at: UtcDatetime
    usage: Usage


class TokenCreated(BaseModel):
    id: int
    token: str = Field(description="shown only in this answer")


class DatasetOut(BaseModel):
    id: int
    ref: str = Field(description="use as task.dataset in a JobSpec")
    owner: str
    filename: str
    format: Literal["text", "csv"]
    bytes: int
    sha256: str
    created_at: UtcDatetime
