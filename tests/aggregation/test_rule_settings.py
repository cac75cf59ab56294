"""service.schemas.defaults.READ_ONLY_BY says which rules read xi, window,
max_staleness, bits and local_steps; a sweep searching one where no trial's rule
reads it is refused on its word. Checked here on the rules themselves: changing the
setting changes nothing a rule outside the table records, and changes what a rule
inside it records (so the runs below can see a difference)."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from service.schemas.defaults import READ_ONLY_BY
from service.schemas.jobspec import Strategy
from service.schemas.resolve import resolve
from workers.training.runner import run_reference

# A value far from each setting's default, so that a rule reading it behaves apart.
CHANGED: dict[str, Any] = {
    "xi": 1e3,
    "window": 1,
    "max_staleness": 1,
    "bits": 2,
    "local_steps": 1,
}


def records(strategy: str, **aggregation: Any) -> list[dict[str, float]]:
    spec = resolve(
        {
            "task": {"kind": "lag_paper_linreg"},
            "aggregation": {"strategy": strategy, **aggregation},
            "schedule": {"rounds": 40, "eval_every": 20},
        }
    )
    out: list[dict[str, float]] = []
    run_reference(spec, on_record=lambda _round, values: out.append(values))
    # Timings differ between any two runs.
    return [{k: v for k, v in r.items() if not k.endswith("_per_s")} for r in out]


@pytest.mark.parametrize("setting", sorted(READ_ONLY_BY))
def test_a_rule_outside_the_table_ignores_the_setting(setting: str) -> None:
    assert set(CHANGED) == set(READ_ONLY_BY)
    readers = READ_ONLY_BY[setting]
    for strategy in set(get_args(Strategy)) - readers:
        changed = records(strategy, **{setting: CHANGED[setting]})
        assert changed == records(strategy), (setting, strategy)
    assert any(
        records(reader, **{setting: CHANGED[setting]}) != records(reader) for reader in readers
    ), setting
