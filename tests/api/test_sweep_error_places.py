"""A sweep's 422 names the place a user wrote: a range's error is at
`parameters.<path>` (or a key inside it), a pruner's at `pruner.<key>` — not with
the union's tag (`float`, `median`) in between, which read as a JobSpec path
(`parameters.optimizer.lr.float`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import SMALL_SWEEP, Api, assert_json_error

LR = "optimizer.lr"
PLACES: list[tuple[str, dict[str, Any], list[list[Any]], str]] = [
    (
        "an empty float range",
        {"parameters": {LR: {"type": "float", "low": 0.1, "high": 0.01}}},
        [["parameters", LR]],
        "the range is empty: low (0.1) must be below high (0.01)",
    ),
    (
        "a log range through zero",
        {"parameters": {LR: {"type": "float", "low": 0, "high": 1, "log": True}}},
        [["parameters", LR]],
        "log scale needs low > 0",
    ),
    (
        "a step that does not divide an int range",
        {"parameters": {"model.hidden_size": {"type": "int", "low": 8, "high": 30, "step": 4}}},
        [["parameters", "model.hidden_size"]],
        "must be a multiple of step",
    ),
    (
        "a step below one",
        {"parameters": {"model.hidden_size": {"type": "int", "low": 8, "high": 32, "step": 0}}},
        [["parameters", "model.hidden_size", "step"]],
        "greater than or equal to 1",
    ),
    (
        "one choice",
        {"parameters": {"model.cell": {"type": "categorical", "choices": ["lstm"]}}},
        [["parameters", "model.cell", "choices"]],
        "at least 2 items",
    ),
    (
        "a misspelt key in a range",
        {"parameters": {LR: {"type": "float", "low": 0.01, "hihg": 0.1}}},
        [["parameters", LR, "high"], ["parameters", LR, "hihg"]],
        "Extra inputs are not permitted",
    ),
    (
        "a pruner's bad setting",
        {"pruner": {"type": "median", "startup_trials": -1}},
        [["pruner", "startup_trials"]],
        "greater than or equal to 0",
    ),
    (
        "an unknown range type",
        {"parameters": {LR: {"type": "floot", "low": 0.01, "high": 0.1}}},
        [["parameters", LR]],
        "'floot' found using 'type' does not match any of the expected tags",
    ),
]


@pytest.mark.parametrize(("case", "change", "locs", "says"), PLACES, ids=[p[0] for p in PLACES])
def test_a_sweeps_error_is_where_the_user_wrote_it(
    api: Api, case: str, change: dict[str, Any], locs: list[list[Any]], says: str
) -> None:
    _uid, alice = api.create_user("alice")
    sweep = {**SMALL_SWEEP, **change}
    detail = assert_json_error(api.client.post("/v1/sweeps", json=sweep, headers=alice), 422)
    assert [e["loc"][1:] for e in detail] == locs, (case, detail)
    assert any(says in e["msg"] for e in detail), (case, detail)
    assert not any(e["msg"].startswith("Value error") for e in detail), detail
