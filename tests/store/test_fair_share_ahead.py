"""queue_order.fair_share_ahead counts, in one pass, what explain counted per job by
walking the ranking before it: the jobs of other owners with a lower usage at their
turn. Checked against that count on random rankings (ties in usage included)."""

from __future__ import annotations

import random
from typing import Any, NamedTuple

from service.store.queue_order import fair_share_ahead


class Ranked(NamedTuple):  # the fields of queue_ranking's rows it reads
    owner_id: int
    usage: float


def by_walking(ranking: list[Any], position: int) -> int:
    mine = ranking[position]
    return sum(
        1 for r in ranking[:position] if r.owner_id != mine.owner_id and r.usage < mine.usage
    )


def test_it_equals_the_walk_before_each_job() -> None:
    rng = random.Random(7)
    for _ in range(300):
        weights = {owner: rng.choice([0.5, 1.0, 2.0, 3.0]) for owner in range(rng.randint(1, 6))}
        recent = {owner: rng.randint(0, 3) for owner in weights}
        rows = []
        for owner, weight in weights.items():
            for k in range(rng.randint(0, 8)):  # the owner's k-th queued job
                rows.append(Ranked(owner, (recent[owner] + k) / weight))
        rng.shuffle(rows)
        rows.sort(key=lambda r: r.usage)  # the ranking's order; ties in any order
        assert fair_share_ahead(rows) == [by_walking(rows, i) for i in range(len(rows))]


def test_an_empty_queue() -> None:
    assert fair_share_ahead([]) == []
