"""The YAML loader for spec files (the CLI's and the dashboard's): PyYAML's safe
loader, but with YAML 1.2's numbers and unique keys. PyYAML follows YAML 1.1, which
reads `1e-3` (no dot) as the *string* "1e-3" (the JobSpec takes no strings for
numbers, so `lr: 1e-3` would be a 422 for what every reader of the file sees as a
number), `seed: 010` as 8 (octal) and `rounds: 1:00` as 60 (base 60). And it lets a
key repeat, the last one winning: a second `task:` or `schedule:` would silently
replace the first — YAML forbids it, so it is an error naming the line."""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import yaml


class SpecLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key {key!r} a second time (first at line "
                    f"{seen[key].start_mark.line + 1}): the second would replace the first",
                    key_node.start_mark,
                )
            if isinstance(key, Hashable):
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


# YAML 1.2's core schema float (a dot or an exponent, either sign), with the
# underscores PyYAML's YAML 1.1 rule allows; infinities and NaN as both spell them.
# A digit after the dot: `._` matched, and float(".") raised a ValueError.
_FLOAT = re.compile(
    r"""^(?:[-+]?\.[0-9_]*[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
# YAML 1.2's core schema int: decimal (a leading zero is still decimal), 0o octal and
# 0x hexadecimal; no 1.1 base-60 (`1:00` stays text, a 422 where a number is due).
# A digit after the prefix: `0x_` matched, and int("0x", 0) raised a ValueError.
_INT = re.compile(
    r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]*[0-7][0-7_]*|0x[0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*)$"
)
SpecLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))


def _construct_int(loader: SpecLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return int(text, 0) if text.startswith(("0o", "0x")) else int(text, 10)
    except ValueError as exc:  # an explicit `!!int x`: a YAML error at its place
        raise _not_a(node, "an integer") from exc


def _construct_float(loader: SpecLoader, node: yaml.ScalarNode) -> float:
    try:
        value: float = loader.construct_yaml_float(node)
    except ValueError as exc:  # `!!float x`, as above
        raise _not_a(node, "a number") from exc
    return value


def _not_a(node: yaml.ScalarNode, kind: str) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(
        None, None, f"{node.value!r} is not {kind}", node.start_mark
    )


SpecLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
SpecLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


# A JobSpec's fields are 2 levels deep (the spec's mapping, then task: {kind: …}).
MAX_SPEC_NESTING = 16


class SpecTextError(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def check_structure(text: str) -> None:
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


def load(text: str) -> Any:
    return yaml.load(text, Loader=SpecLoader)


@dataclass(frozen=True)
class NotJson:
    """Where a loaded spec holds what JSON cannot carry, and what."""

    path: str  # dotted, lists as [i]; "" for the spec itself
    text: str  # e.g. "optimizer.lr is nan: non-finite numbers (NaN, infinity) are not allowed"


def not_json(value: Any, path: str = "") -> NotJson | None:
    """The first place under `value` that JSON cannot carry; None if there is none.
    YAML reads `.nan`/`.inf` as floats that JSON has no spelling for, an unquoted
    2024-01-01 as a date, `!!binary` as bytes, and `1:` or `on:` as a key that is a
    number or a boolean, where a spec's keys are names. The CLI refuses such a file
    before any request, the dashboard's spec parse with a 422 at its line."""
    where = path or "the spec"
    if isinstance(value, float) and not math.isfinite(value):
        text = f"{where} is {value}: non-finite numbers (NaN, infinity) are not allowed"
        return NotJson(path, text)
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                read = f"YAML read {_a(key)}; keys are names"
                text = f"{where} has the key {key!r} ({read}): quote it"
                # The key's own path: the dashboard marks the key's line.
                return NotJson(f"{path}.{key}" if path else str(key), text)
        items: Iterator[tuple[str, Any]] = (
            (f"{path}.{k}" if path else str(k), v) for k, v in value.items()
        )
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif value is None or isinstance(value, str | int | float):
        return None
    else:
        shown = repr(value) if isinstance(value, bytes) else str(value)
        why = f"(YAML read {_a(value)}, which JSON cannot carry): quote it"
        return NotJson(path, f"{where} is {shown[:60]} {why}")
    for item_path, item in items:
        found = not_json(item, item_path)
        if found is not None:
            return found
    return None


def _a(value: Any) -> str:
    """What YAML made of a plain value, as a reader would say it."""
    if value is None:
        return "a null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"  # a date, a datetime, a bytes


def spec_kind(value: Any) -> Literal["job", "sweep"] | None:
    """Which spec a loaded file holds: a JobSpec has `task`, a sweep spec `base`;
    None when it has both or neither (the server's 422s then say what is wrong).
    Each refuses the other's fields, as 8-10 lines of "Extra inputs"."""
    if not isinstance(value, dict) or ("base" in value) == ("task" in value):
        return None
    return "sweep" if "base" in value else "job"
