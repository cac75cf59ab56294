"""The YAML loader for spec files (the CLI's and the dashboard's): PyYAML's safe
loader, but with YAML 1.2's floats. PyYAML follows YAML 1.1, which reads `1e-3` (no
dot) as the *string* "1e-3"; the JobSpec takes no strings for numbers, so `lr: 1e-3`
would be a 422 for what every reader of the file sees as a number."""

from __future__ import annotations

import re
from typing import Any

import yaml


class SpecLoader(yaml.SafeLoader):
    pass


# YAML 1.2's core schema float (a dot or an exponent, either sign), with the
# underscores PyYAML's YAML 1.1 rule allows; infinities and NaN as both spell them.
_FLOAT = re.compile(
    r"""^(?:[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SpecLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load(text: str) -> Any:
    return yaml.load(text, Loader=SpecLoader)
