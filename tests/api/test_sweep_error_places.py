"""A sweep's 422 names the place a user wrote: a range's error is at
`parameters.<path>` (or a key inside it), a pruner's at `pruner.<key>` — not with
the union's tag (`float`, `median`) in between, which read as a JobSpec path
(`parameters.optimizer.lr.float`)."""

from __future__ import annotations

from typing import Any

import pytest

from service.schemas.sweep_checks import text_problems
from tests.api.conftest import SMALL_SPEC, SMALL_SWEEP, Api, assert_json_error

LR = "optimizer.lr"
# Evaluations after 20 rounds and after the last (40): a pruner can act after 20.
TWICE = {**SMALL_SPEC, "schedule": {"rounds": 40, "batch_size": 8, "eval_every": 20}}
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
        "a median pruner's warmup past the last evaluation that could prune",
        {"base": TWICE, "pruner": {"type": "median", "warmup_rounds": 21}},
        [["pruner", "warmup_rounds"]],
        "21 is past the last evaluation a pruner could act on, after 20 rounds",
    ),
    (
        "successive halving's first rung past the last evaluation that could prune",
        {"base": TWICE, "pruner": {"type": "successive_halving", "min_rounds": 21}},
        [["pruner", "min_rounds"]],
        "21 is past the last evaluation a pruner could act on, after 20 rounds",
    ),
    (
        "a pruner on a figure only the finished job's summary has",
        {
            "base": TWICE,
            "objectives": [{"metric": "uploads_saved_fraction", "direction": "maximize"}],
            "pruner": {"type": "median"},
        },
        [["pruner"]],
        "'uploads_saved_fraction' is a figure of a finished job's summary, in no round's",
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


def refused(api: Api, sweep: dict[str, Any]) -> list[tuple[str, str]]:
    """The 422's (field, message) pairs in order: a field named twice shows twice."""
    _uid, alice = api.create_user("alice")
    detail = assert_json_error(api.client.post("/v1/sweeps", json=sweep, headers=alice), 422)
    return [(".".join(str(p) for p in e["loc"][1:]), e["msg"]) for e in detail]


def test_one_answer_names_every_mistake_it_can(api: Api) -> None:
    """Form errors (a range, a choice, the budget) and the checks of the sweep's text
    (a path, an objective) in one 422: the path typo and the objective used to show
    only after the form's errors were fixed. A path or metric the form refuses is
    its error alone."""
    sweep = {
        **SMALL_SWEEP,
        "base": {**SMALL_SWEEP["base"], "task": {"kind": "sequence_classification"}},
        "parameters": {
            "optimizer.lrr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            "aggregation.xi": {"type": "float", "low": 0, "high": 1, "log": True},
            "model.cell": {"type": "categorical", "choices": ["lstm"]},
            "Model.Cell": {"type": "categorical", "choices": ["lstm", "gru"]},
        },
        "objectives": [
            {"metric": "val_acc", "direction": "maximize"},
            {"metric": "val-loss", "direction": "minimize"},
        ],
        "trials": 0,
    }
    errors = refused(api, sweep)
    fields = [field for field, _ in errors]
    assert sorted(fields) == sorted(
        [
            "parameters.aggregation.xi",
            "parameters.model.cell.choices",
            "parameters.Model.Cell.[key]",
            "objectives.1.metric",
            "trials",
            "parameters.optimizer.lrr",
            "objectives.0.metric",
        ]
    ), errors
    at = dict(errors)
    assert "not a JobSpec field" in at["parameters.optimizer.lrr"]
    assert "did you mean 'val_accuracy'?" in at["objectives.0.metric"]
    assert "should match pattern" in at["objectives.1.metric"]


def test_the_checks_of_a_valid_form_all_report_too(api: Api) -> None:
    """A path typo no longer hides a corner's problem, an objective's or a rule
    setting no trial reads."""
    sweep = {
        **SMALL_SWEEP,
        "parameters": {
            "optimiser.lr": {"type": "float", "low": 1e-4, "high": 1e-1},
            "model.hidden_size": {"type": "int", "low": 0, "high": 16},
            "schedule.batch_size": {"type": "categorical", "choices": ["32", 64]},
            "aggregation.bits": {"type": "int", "low": 4, "high": 8},
        },
        "objectives": [{"metric": "val_msee", "direction": "minimize"}],
    }
    errors = refused(api, sweep)
    assert sorted(field for field, _ in errors) == [
        "objectives.0.metric",
        "parameters.aggregation.bits",
        "parameters.model.hidden_size",
        "parameters.optimiser.lr",
        "parameters.schedule.batch_size",
    ], errors
    at = dict(errors)
    assert "'optimiser' is not a section" in at["parameters.optimiser.lr"]
    assert "(at model.hidden_size=0" in at["parameters.model.hidden_size"]
    # A corner's message quotes pydantic's without its "Value error, ".
    assert at["parameters.schedule.batch_size"].startswith(
        "parameters.schedule.batch_size: must be 'full' or an integer, not '32' (at"
    ), at
    assert "did you mean 'val_mse'?" in at["objectives.0.metric"]
    assert "bits is read by laq only" in at["parameters.aggregation.bits"]


def test_a_space_too_large_to_check_still_names_the_other_mistakes(api: Api) -> None:
    choices = {"type": "categorical", "choices": list(range(64))}
    sweep = {
        **SMALL_SWEEP,
        "parameters": {
            "optimzer.lr": {"type": "float", "low": 1e-4, "high": 1e-1},
            "schedule.rounds": choices,
            "schedule.seed": choices,
            "model.hidden_size": {"type": "int", "low": 8, "high": 16},
        },
        "objectives": [{"metric": "val_msee", "direction": "minimize"}],
    }
    fields = [field for field, _ in refused(api, sweep)]
    assert fields == ["parameters.optimzer.lr", "parameters", "objectives.0.metric"], fields


def test_a_huge_body_gets_a_bounded_answer(api: Api) -> None:
    """2,000 parameters and 2,000 objectives once made a 422 of almost 1 MB (and a
    body of 100,000 bad entries one of 14 MB): a 422 lists 50 errors and says how many
    more, and the checks of the raw text look only at what the form would take (16
    parameters, 4 objectives, names of its length), at most 20 problems."""
    sweep = {
        **SMALL_SWEEP,
        "parameters": {f"p{i}": 0 for i in range(2000)},
        "objectives": [{"metric": "a" * 100_000}] + [{"metric": "a"}] * 2000,
    }
    _uid, alice = api.create_user("alice")
    r = api.client.post("/v1/sweeps", json=sweep, headers=alice)
    detail = assert_json_error(r, 422)
    assert len(r.content) < 50_000, len(r.content)
    assert len(detail) == 51 and detail[-1]["msg"].startswith("and "), detail[-1]
    assert detail[-1]["msg"].endswith(" more errors"), detail[-1]
    # The first 16 paths; of the first 4 objectives, the 3 whose name the form takes.
    locs = [loc for loc, _ in text_problems(sweep)]
    assert locs == [("parameters", f"p{i}") for i in range(16)] + [
        ("objectives", i, "metric") for i in (1, 2, 3)
    ]
    kinds = ["adding", "char_lm", "copy_memory", "sequence_classification"]
    every_kind = {"task.kind": {"type": "categorical", "choices": kinds}}
    many = {**sweep, "parameters": {**every_kind, **sweep["parameters"]}}
    assert len(text_problems(many)) == 20  # 15 paths + 3 metrics x 4 kinds, cut at 20


def test_a_repeated_choice_or_metric_is_named(api: Api) -> None:
    repeated = {
        **SMALL_SWEEP,
        "parameters": {"model.cell": {"type": "categorical", "choices": ["lstm", "gru", "lstm"]}},
        "objectives": [
            {"metric": "val_mse", "direction": "minimize"},
            {"metric": "val_mse", "direction": "maximize"},
        ],
    }
    assert sorted(message for _, message in refused(api, repeated)) == [
        "choices must be distinct: 'lstm' is given twice",
        "each metric may appear once: 'val_mse' is given twice",
    ]


def test_a_setting_no_trials_rule_reads_is_not_searched(api: Api) -> None:
    """xi under the default dense strategy (a walkthrough's sweep ran 6 trials that
    all trained alike); searched beside the strategy, or with a lazy base, it is."""
    _uid, alice = api.create_user("alice")
    xi = {"aggregation.xi": {"type": "float", "low": 0.1, "high": 10, "log": True}}
    sweep = {**SMALL_SWEEP, "parameters": xi}
    detail = assert_json_error(api.client.post("/v1/sweeps", json=sweep, headers=alice), 422)
    assert [(e["loc"][1:], e["msg"]) for e in detail] == [
        (
            ["parameters", "aggregation.xi"],
            "parameters.aggregation.xi: no trial would read it: aggregation.strategy is "
            "dense in this space, and xi is read by lag_ps, lag_wk, laq, lasg_wk2 only; "
            "set base.aggregation.strategy (or search it)",
        )
    ]
    bits = {"aggregation.bits": {"type": "int", "low": 4, "high": 8}}
    lazy_base = {**SMALL_SPEC, "aggregation": {"strategy": "lasg_wk2"}}
    detail = assert_json_error(
        api.client.post(
            "/v1/sweeps", json={**sweep, "base": lazy_base, "parameters": bits}, headers=alice
        ),
        422,
    )
    assert "bits is read by laq only" in detail[0]["msg"], detail
    accepted = [
        {**sweep, "base": lazy_base},
        {
            **sweep,
            "parameters": {
                **bits,
                "aggregation.strategy": {"type": "categorical", "choices": ["dense", "laq"]},
            },
        },
    ]
    for spec in accepted:
        r = api.client.post("/v1/sweeps", json=spec, headers=alice)
        assert r.status_code == 201, r.text


def test_an_error_keeps_its_context_wherever_it_is_raised_again(api: Api) -> None:
    """Errors moved out of the union's tag, or joined by the text's checks, keep
    pydantic's `ctx` (the bound a client can show): the 422's shape does not depend on
    an unrelated mistake."""
    _uid, alice = api.create_user("alice")
    for sweep, field, ctx in (
        ({**SMALL_SWEEP, "pruner": {"type": "median", "startup_trials": -1}}, "pruner", {"ge": 0}),
        ({**SMALL_SWEEP, "trials": 0}, "trials", {"ge": 1}),
        (
            {**SMALL_SWEEP, "trials": 0, "parameters": {"optimizer.lrr": {"type": "float"}}},
            "trials",
            {"ge": 1},
        ),
    ):
        detail = assert_json_error(api.client.post("/v1/sweeps", json=sweep, headers=alice), 422)
        (error,) = [e for e in detail if e["loc"][1] == field]
        assert error.get("ctx") == ctx, detail
