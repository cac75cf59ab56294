"""A misspelt choice gets the nearest one, in a job's 422 and in a sweep's: a
walkthrough's `aggregation.strategy: {choices: [lag_wk, lasg_wk3]}` got only
pydantic's list of strategies, while a misspelt path got "did you mean …?". One
rule (service.schemas.field_hints.choice_hint) for both answers."""

from __future__ import annotations

from typing import Any

from service.schemas.field_hints import choice_hint
from tests.api.conftest import SMALL_SPEC, SMALL_SWEEP, Api, assert_json_error


def test_a_jobs_misspelt_choice_is_answered_with_the_nearest(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    spec = {**SMALL_SPEC, "aggregation": {"strategy": "lasg_wk3"}, "optimizer": {"name": "adamm"}}
    detail = assert_json_error(api.client.post("/v1/jobs", json=spec, headers=alice), 422)
    at = {".".join(map(str, d["loc"][1:])): d["msg"] for d in detail}
    assert at["aggregation.strategy"].endswith("; did you mean 'lasg_wk2'?"), at
    assert at["optimizer.name"] == "Input should be 'sgd' or 'adam'; did you mean 'adam'?", at


def test_a_sweeps_misspelt_choice_is_answered_with_the_nearest(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    sweep: dict[str, Any] = {
        **SMALL_SWEEP,
        "parameters": {
            "aggregation.strategy": {"type": "categorical", "choices": ["lag_wk", "lasg_wk3"]},
            "optimizer.name": {"type": "categorical", "choices": ["sgd", "adamm"]},
        },
    }
    detail = assert_json_error(api.client.post("/v1/sweeps", json=sweep, headers=alice), 422)
    at = {".".join(map(str, d["loc"][1:])): d["msg"] for d in detail}
    strategy = at["parameters.aggregation.strategy"]
    assert "'lasg_wk2' or 'laq'; did you mean 'lasg_wk2'? (at aggregation.strategy=" in strategy
    assert (
        "or 'adam'; did you mean 'adam'? (at optimizer.name='adamm'"
        in at["parameters.optimizer.name"]
    ), at
    # The sweep form's own choices too (its sampler).
    detail = assert_json_error(
        api.client.post("/v1/sweeps", json={**SMALL_SWEEP, "sampler": "tpee"}, headers=alice), 422
    )
    assert detail[0]["msg"].endswith("; did you mean 'tpe'?"), detail


def test_no_guess_when_nothing_is_near_or_the_value_is_no_name() -> None:
    far = {"type": "literal_error", "input": "zzz", "ctx": {"expected": "'sgd' or 'adam'"}}
    assert choice_hint(far) == ""
    number = {"type": "literal_error", "input": 3, "ctx": {"expected": "1 or 2"}}
    assert choice_hint(number) == ""
    other = {"type": "int_parsing", "input": "adamm", "ctx": {"expected": "'adam'"}}
    assert choice_hint(other) == ""
