"""Spec files are read with YAML 1.2's numbers (service.spec_yaml): every number a
reader sees is a number (PyYAML's YAML 1.1 reads `1e-3` as a string, which the
strictly typed JobSpec refuses), `010` is ten and `1:00` is text (1.1: 8 and 60); a
key given twice is an error naming both lines (1.1 kept the last silently); nothing
else changes."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from service.spec_yaml import load, not_json


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-3", 1e-3),
        ("1E+3", 1e3),
        ("-2e5", -2e5),
        ("+.5", 0.5),
        ("-.5", -0.5),
        (".5e3", 500.0),
        ("1.", 1.0),
        ("1_0.5", 10.5),
        ("-.inf", -math.inf),
        # not floats: as PyYAML reads them
        ("10", 10),
        ("-10", -10),
        ("1_000", 1000),
        ("'1e-3'", "1e-3"),
        # YAML 1.2's ints, where 1.1 read octal and base 60
        ("010", 10),
        ("-007", -7),
        ("0o10", 8),
        ("0x1f", 31),
        ("1:00", "1:00"),
        # no digit after the prefix or the dot: text (they matched, then int("0x", 0)
        # and float(".") raised a ValueError: a traceback, a 500 at /ui/parse-spec)
        ("0x_", "0x_"),
        ("0o_", "0o_"),
        ("._", "._"),
        ("-._e1", "-._e1"),
        ("._5", 0.5),
        ("e5", "e5"),
        ("1.2.3", "1.2.3"),
        ("full", "full"),
        ("true", True),
    ],
)
def test_numbers_are_numbers_and_the_rest_reads_as_before(text: str, value: Any) -> None:
    read = load(f"v: {text}")["v"]
    assert read == value and type(read) is type(value)
    if not isinstance(value, float) or text.startswith("-.inf"):
        return
    assert yaml.safe_load(f"v: {text}")["v"] in (value, text)  # 1.1 read a string at most


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        (
            "task: {kind: adding}\nschedule: {rounds: 5}\ntask: {kind: copy_memory}\n",
            "task",
            (1, 3),
        ),
        ("schedule:\n  rounds: 3000\n  seed: 1\n  rounds: 5\n", "rounds", (2, 4)),
        ('{"schedule": {"rounds": 3000},\n "schedule": {"seed": 1}}', "schedule", (1, 2)),
    ],
)
def test_a_key_given_twice_is_an_error_naming_both_lines(
    text: str, key: str, lines: tuple[int, int]
) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as raised:
        load(text)
    first, second = lines
    assert raised.value.problem is not None and raised.value.problem_mark is not None
    assert f"found the key {key!r} a second time (first at line {first})" in raised.value.problem
    assert raised.value.problem_mark.line + 1 == second
    assert yaml.safe_load(text)  # YAML 1.1's loader kept the last one silently


def test_nan_stays_a_float_for_the_finite_check_to_refuse() -> None:
    assert math.isnan(load("v: .nan")["v"])


@pytest.mark.parametrize(
    ("text", "path", "says"),
    [
        ("optimizer: {lr: .nan}", "optimizer.lr", "optimizer.lr is nan: non-finite numbers"),
        ("name: 2024-01-01", "name", "name is 2024-01-01 (YAML read a date, which JSON"),
        ("name: !!binary aGk=", "name", "name is b'hi' (YAML read a bytes"),
        ("a: {choices: [1, -.inf]}", "a.choices[1]", "a.choices[1] is -inf"),
        ("1: 2", "1", "the spec has the key 1 (YAML read a number; keys are names)"),
        ("task: {on: 1}", "task.True", "task has the key True (YAML read a boolean"),
    ],
)
def test_what_json_cannot_carry_is_named_with_its_place(text: str, path: str, says: str) -> None:
    """The CLI refuses such a file before any request, the dashboard with a 422 at the
    line (both through not_json); a date or a key that is a number reached neither."""
    found = not_json(load(text))
    assert found is not None and found.path == path and found.text.startswith(says), found
    assert not_json(load("task: {kind: adding}\nname: '2024-01-01'\nv: [1, 2.5, null]")) is None


@pytest.mark.parametrize(
    ("text", "says"), [("!!int 0x", "'0x' is not an integer"), ("!!float .", "'.' is not a number")]
)
def test_a_tagged_value_that_is_no_number_is_a_yaml_error_at_its_place(
    text: str, says: str
) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as raised:
        load(f"name: x\nseed: {text}\n")
    assert raised.value.problem == says
    assert raised.value.problem_mark is not None and raised.value.problem_mark.line == 1
