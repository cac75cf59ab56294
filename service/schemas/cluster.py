"""Cluster overview: dispatchers, their resources and the queue."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.schemas.common import UtcDatetime


class DispatcherOut(BaseModel):
    id: str
    hostname: str
    started_at: UtcDatetime
    last_seen_at: UtcDatetime
    alive: bool
    resources: dict[str, Any]


class ClusterOut(BaseModel):
    dispatchers: list[DispatcherOut]
    resources: dict[str, dict[str, float]]
    queue: dict[str, int]
