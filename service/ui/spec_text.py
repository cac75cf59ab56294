"""YAML/JSON spec text → JSON object plus the line of every field, so the submit page
can show the API's 422 errors beside the lines that hold the fields they name, and
which spec it is (a job's or a sweep's), so the page knows where to submit it."""

from __future__ import annotations

import math
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from service import spec_yaml
from service.spec_yaml import SpecLoader

# A JobSpec's fields are 2 levels deep (the spec's mapping, then task: {kind: …}).
MAX_SPEC_NESTING = 16


class SpecText(BaseModel):
    text: str = Field(max_length=200_000, description="a JobSpec or a sweep spec as YAML or JSON")


class ParsedSpec(BaseModel):
    spec: dict[str, Any]
    kind: Literal["job", "sweep"] = Field(
        description="sweep for a sweep spec (`base`, no `task`), to POST to /v1/sweeps; "
        "job otherwise (POST /v1/jobs, whose 422s say what is wrong)"
    )
    lines: dict[str, int] = Field(description="dotted field path → 1-based line in the text")


class SpecTextError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def parse_spec_text(text: str) -> ParsedSpec:
    """JSON is YAML, so one parser reads both."""
    try:
        _check_structure(text)
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
    bad = _non_finite(value, "")
    if bad is not None:
        # Serialised as JSON it would become null, i.e. "use the default": refuse it.
        raise SpecTextError(f"{bad}: .nan and .inf are not numbers a spec can hold", lines.get(bad))
    return ParsedSpec(spec=value, kind=spec_yaml.spec_kind(value) or "job", lines=lines)


def _non_finite(value: Any, path: str) -> str | None:
    """The dotted path of the first NaN or infinity in `value`, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(the spec)"
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _check_structure(text: str) -> None:
    """Refuse, while reading the text once as a stream of events (lazily, so it stops
    at the first problem), what a spec never needs and what would make the parse
    itself the cost: YAML aliases, which nested expand exponentially once the value
    is serialised (a "billion laughs" document), and nesting deeper than
    MAX_SPEC_NESTING — PyYAML's scanner takes time growing with the square of the
    flow nesting (`[[[[…` of 10 KB cost 8 s of CPU, then a RecursionError) and its
    composer recurses once per level."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.AliasEvent):
            raise SpecTextError("YAML aliases (*name) are not accepted in a spec", line)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_SPEC_NESTING:
                raise SpecTextError(
                    f"nested deeper than {MAX_SPEC_NESTING} levels (a spec's fields are 2 deep)",
                    line,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _collect_lines(node: yaml.MappingNode, prefix: str, lines: dict[str, int]) -> None:
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        path = f"{prefix}{key_node.value}"
        lines[path] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            _collect_lines(value_node, f"{path}.", lines)
