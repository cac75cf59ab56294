"""Cluster overview: dispatchers, their resources and the queue."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from service.schemas.common import UtcDatetime
from service.schemas.jobs import BlockingReason


class DispatcherOut(BaseModel):
    id: str
    hostname: str
    started_at: UtcDatetime
    last_seen_at: UtcDatetime
    stopped_at: UtcDatetime | None = Field(
        description="when the dispatcher exited cleanly (SIGTERM, drain, normal exit); "
        "null while it runs, and for one that died without saying so"
    )
    alive: bool = Field(
        description="seen within one lease period (lease_seconds) and not stopped; "
        "false with stopped_at null means lost: not seen for a lease period"
    )
    state: Literal["alive", "stopped", "lost"] = Field(
        description="alive, stopped (exited cleanly) or lost (not seen for a lease "
        "period without saying it stopped), by the one rule the Lab and /metrics use"
    )
    resources: dict[str, Any] = Field(
        description="its last report (total, capacity, free, running_jobs, warm pool; "
        "nodes: the node shapes a bundle is judged against, free_node: the most free on "
        "one node, free_nodes: what each node has free, node_sets: each set of nodes "
        "its capacity window saw, by shape (CPU, GPU, memory rounded up to a whole GiB) "
        "and count); running_jobs is 0 once it is "
        "not alive"
    )


class QueuePlace(BaseModel):
    job_id: int
    position: int | None = Field(
        description="the job's place in the whole claim order (1 = the next claim's), "
        "as GET /v1/jobs/{id}/explain's queue_position; null for a job the claim skips "
        "(its owner disabled, or a quota that forbids it by itself)"
    )
    name: str | None
    owner: str
    priority: int
    reasons: list[BlockingReason] = Field(
        description="what holds the job back, as GET /v1/jobs/{id}/explain's reasons"
    )


class ClusterOut(BaseModel):
    dispatchers: list[DispatcherOut]
    resources: dict[str, dict[str, float]]
    queue: dict[str, int]
    queue_head: list[QueuePlace] = Field(
        description="the first queued jobs in claim order that the caller may see "
        "(an admin: everyone's; a user: their own), each with its position in the "
        "whole queue; then those the claim skips, without a position"
    )
