"""What a new user types from the papers and the docs gets what it is here: a
strategy by its paper's name (`cada2`, `lasg`, `lag`, `gd`), a builtin dataset by its
bare name (`digits`), an upload by anything but its number (`upload:abc`, which was
"no dataset 'upload:abc' uploaded by you"), and a misspelt `?status=` the nearest
status, as a misspelt choice in a body does (a walkthrough)."""

from __future__ import annotations

from typing import Any

import pytest

from service.schemas.field_hints import choice_hint
from tests.api.conftest import SMALL_SPEC, SMALL_SWEEP, Api, assert_json_error

DIGITS: dict[str, Any] = {
    **SMALL_SPEC,
    "task": {"kind": "sequence_classification", "dataset": "builtin:digits"},
}


def _messages(api: Api, headers: dict[str, str], spec: dict[str, Any]) -> dict[str, str]:
    detail = assert_json_error(api.client.post("/v1/jobs", json=spec, headers=headers), 422)
    return {".".join(map(str, d["loc"][1:])): d["msg"] for d in detail}


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("cada2", "; CADA2 here is 'lasg_wk2' with optimizer.name: adam (the default)"),
        ("CADA", "; CADA2 here is 'lasg_wk2' with optimizer.name: adam (the default)"),
        ("lasg", "; LASG here is 'lasg_wk2' with optimizer.name: sgd"),
        ("LAG", "; LAG here is 'lag_wk' (LAG-WK) or 'lag_ps' (LAG-PS)"),
        ("gd", "; GD here is 'dense': every worker uploads every round"),
    ],
)
def test_a_strategy_by_its_papers_name_says_what_it_is_here(
    api: Api, typed: str, said: str
) -> None:
    _uid, alice = api.create_user("alice")
    spec = {**SMALL_SPEC, "aggregation": {"strategy": typed}}
    message = _messages(api, alice, spec)["aggregation.strategy"]
    assert message.startswith("Input should be 'dense', ") and message.endswith(said), message
    # A sweep's choices say it too (the same rule reads them).
    sweep: dict[str, Any] = {
        **SMALL_SWEEP,
        "parameters": {
            "aggregation.strategy": {"type": "categorical", "choices": ["dense", typed]}
        },
    }
    detail = assert_json_error(api.client.post("/v1/sweeps", json=sweep, headers=alice), 422)
    assert said in detail[0]["msg"], detail


def test_a_paper_name_is_said_only_where_its_choices_are() -> None:
    optimizer = {"type": "literal_error", "input": "gd", "ctx": {"expected": "'sgd' or 'adam'"}}
    assert choice_hint(optimizer) == "; did you mean 'sgd'?"


@pytest.mark.parametrize(
    ("dataset", "said"),
    [
        ("digits", "must be 'builtin:<name>' or 'upload:<id>'; did you mean 'builtin:digits'?"),
        ("mnist", "must be 'builtin:<name>' or 'upload:<id>'"),
        (
            "upload:abc",
            "an upload's id is a number: upload:<id>, e.g. upload:12 (not 'upload:abc')",
        ),
        ("upload:", "an upload's id is a number: upload:<id>, e.g. upload:12 (not 'upload:')"),
    ],
)
def test_a_dataset_reference_says_how_it_is_written(api: Api, dataset: str, said: str) -> None:
    _uid, alice = api.create_user("alice")
    spec = {**DIGITS, "task": {**DIGITS["task"], "dataset": dataset}}
    assert _messages(api, alice, spec)["task.dataset"] == f"task.dataset: {said}"


def test_an_upload_by_its_number_is_still_looked_up(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    spec = {**DIGITS, "task": {**DIGITS["task"], "dataset": "upload:0099"}}
    said = _messages(api, alice, spec)["task.dataset"]
    assert said == "task.dataset: no dataset 'upload:99' uploaded by you", said


def test_a_misspelt_status_filter_is_answered_with_the_nearest(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    for route in ("/v1/jobs", "/v1/sweeps", "/v1/feeds/jobs"):
        answer = api.client.get(route, params={"status": "runing"}, headers=alice)
        (error,) = assert_json_error(answer, 422)
        assert error["loc"] == ["query", "status"], error
        assert error["msg"].startswith("Input should be 'queued', 'running'"), error
        assert error["msg"].endswith("; did you mean 'running'?"), error
