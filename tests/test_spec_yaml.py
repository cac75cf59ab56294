"""Spec files are read with YAML 1.2's floats (service.spec_yaml): every number a
reader sees is a number (PyYAML's YAML 1.1 reads `1e-3` as a string, which the
strictly typed JobSpec refuses), and nothing else changes."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml

from service.spec_yaml import load


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


def test_nan_stays_a_float_for_the_finite_check_to_refuse() -> None:
    assert math.isnan(load("v: .nan")["v"])
