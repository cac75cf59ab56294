"""Aggregation rules by name (`aggregation.strategy`). Adding a rule: one module that
ends in `RULE = AggregationRule(...)`, one line here (see docs/architecture.md)."""

from __future__ import annotations

from workers.aggregation import dense, lag_ps, lag_wk, laq, lasg_wk2, local_sgd
from workers.aggregation.rule import AggregationRule

RULES: dict[str, AggregationRule] = {
    rule.name: rule
    for rule in (dense.RULE, local_sgd.RULE, lag_wk.RULE, lag_ps.RULE, lasg_wk2.RULE, laq.RULE)
}


def get_rule(name: str) -> AggregationRule:
    rule = RULES.get(name)
    if rule is None:
        raise ValueError(f"aggregation.strategy: no rule registered as {name!r}")
    return rule
