"""YAML/JSON spec text → JSON object plus the line of every field, so the submit page
can show the API's 422 errors beside the lines that hold the fields they name, and
which spec it is (a job's or a sweep's), so the page knows where to submit it."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from service import spec_yaml
from service.spec_yaml import SpecLoader, SpecTextError, check_structure

__all__ = ["ParsedSpec", "SpecText", "SpecTextError", "parse_spec_text"]


class SpecText(BaseModel):
    text: str = Field(max_length=200_000, description="a JobSpec or a sweep spec as YAML or JSON")


class ParsedSpec(BaseModel):
    spec: dict[str, Any]
    kind: Literal["job", "sweep"] = Field(
        description="sweep for a sweep spec (`base`, no `task`), to POST to /v1/sweeps; "
        "job otherwise (POST /v1/jobs, whose 422s say what is wrong)"
    )
    lines: dict[str, int] = Field(description="dotted field path → 1-based line in the text")


def parse_spec_text(text: str) -> ParsedSpec:
    """JSON is YAML, so one parser reads both."""
    try:
        check_structure(text)
        node = yaml.compose(text, Loader=SpecLoader)
        value = spec_yaml.load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise SpecTextError(f"not valid YAML/JSON: {exc.problem}", line) from exc
    if not isinstance(value, dict) or not isinstance(node, yaml.MappingNode):
        raise SpecTextError("a spec is a mapping of fields (e.g. task: {...})", 1)
    lines: dict[str, int] = {}
    _collect_lines(node, "", lines)
    # A NaN would go out as null ("use the default"), a date or bytes not at all, and a
    # key that is a number or a boolean is none of a spec's names.
    bad = spec_yaml.not_json(value)
    if bad is not None:
        raise SpecTextError(bad.text, _line_of(bad.path, lines))
    return ParsedSpec(spec=value, kind=spec_yaml.spec_kind(value) or "job", lines=lines)


def _line_of(path: str, lines: dict[str, int]) -> int | None:
    """The line of `path`, else of the nearest field holding it: a list item's is its
    list's, and a key YAML read as no text (`on:` is True) its mapping's."""
    path = path.split("[", 1)[0]
    while path and path not in lines:
        path = path.rpartition(".")[0]
    return lines.get(path)


def _collect_lines(node: yaml.MappingNode, prefix: str, lines: dict[str, int]) -> None:
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        path = f"{prefix}{key_node.value}"
        lines[path] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            _collect_lines(value_node, f"{path}.", lines)
