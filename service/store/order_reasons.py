"""What explain says of the jobs ahead of a queued one in the claim order
(service.store.queue_order): those that go first by fair share, and the rest by
priority and submit time."""

from __future__ import annotations

from service.schemas.jobs import BlockingReason
from service.store.quota_reasons import count_of


def order_reasons(ahead_fair: int, ahead_priority: int) -> list[BlockingReason]:
    """`ahead_fair`: jobs of other owners with a lower usage at their turn
    (queue_order.fair_share_ahead); `ahead_priority`: the others ahead (the owner's
    own earlier jobs, and equal usage by priority and time)."""
    reasons = []
    if ahead_fair:
        reasons.append(
            BlockingReason(
                kind="fair_share",
                message=(
                    f"{count_of(ahead_fair, 'queued job')} of "
                    f"{'a user' if ahead_fair == 1 else 'users'} with fewer recent jobs "
                    f"per share {_goes(ahead_fair)} first"
                ),
            )
        )
    if ahead_priority:
        reasons.append(
            BlockingReason(
                kind="priority",
                message=f"{count_of(ahead_priority, 'queued job')} with higher priority or "
                f"submitted earlier {_goes(ahead_priority)} first",
            )
        )
    return reasons


def _goes(number: int) -> str:
    return "goes" if number == 1 else "go"
