"""The fields a request body takes at a place, for the 422 of a field it does not take:
"Extra inputs are not permitted" alone left a user of `schedule: {batchsize: 16}` or
`--quota max_runing_jobs=2` to find the spelling in the docs (a walkthrough), where a
sweep's path errors already named the fields there. And the nearest choice for a
misspelt one (`strategy: lasg_wk3`), in a job's 422 and a sweep's alike."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, get_args

from pydantic import BaseModel


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (`X`, `X | None`, `Annotated[X, …]`), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def unknown_field_hint(body: type[BaseModel], loc: Sequence[Any]) -> str | None:
    """For a field the body does not take at `loc` (("body", "schedule", "batchsize")),
    what follows "Extra inputs are not permitted": "; did you mean 'batch_size'? (fields
    here: …)", or " (fields here: …)" with no close name; None where the place is no
    model's (a mapping's keys, a union's member)."""
    if len(loc) < 2:
        return None
    model: type[BaseModel] | None = body
    *sections, leaf = loc[1:]
    for section in sections:
        field = model.model_fields.get(section) if model is not None else None
        model = model_of(field.annotation) if field is not None else None
    if model is None or not isinstance(leaf, str):
        return None
    return names_hint(leaf, model.model_fields, "fields here")


def names_hint(name: str, names: Iterable[str], what: str) -> str:
    """ "; did you mean 'batch_size'? (fields here: …)", or " (fields here: …)" with no
    name close to `name`; " (fields here: none)" with no names."""
    known = sorted(names)
    if not known:
        return f" ({what}: none)"
    close = nearest(name, known)
    guess = f"; did you mean {close!r}? " if close else " "
    return f"{guess}({what}: {', '.join(known)})"


def nearest(name: str, names: Iterable[str]) -> str | None:
    """The one of `names` close enough to `name` to be what was meant, if any."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return close[0] if close else None


# A Literal's choices as pydantic lists them in a literal_error's "expected":
# "'sgd' or 'adam'" (each choice's repr).
_QUOTED_CHOICE = re.compile(r"'([^']*)'")


# The papers' names for the aggregation rules (README), typed as a strategy
# (`strategy: cada2`): each with what it is here and the choices that must be among
# the expected ones (so only aggregation.strategy's error says it). Keyed by the name
# in lower case without - or _ ("CADA-2", "lasg").
_CADA2 = "CADA2 here is 'lasg_wk2' with optimizer.name: adam (the default)"
_PAPER_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "cada": (_CADA2, ("lasg_wk2",)),
    "cada2": (_CADA2, ("lasg_wk2",)),
    "lasg": ("LASG here is 'lasg_wk2' with optimizer.name: sgd", ("lasg_wk2",)),
    "lag": ("LAG here is 'lag_wk' (LAG-WK) or 'lag_ps' (LAG-PS)", ("lag_wk", "lag_ps")),
    "gd": ("GD here is 'dense': every worker uploads every round", ("dense",)),
}


def choice_hint(error: Mapping[str, Any]) -> str:
    """What follows pydantic's "Input should be 'sgd' or 'adam'" for a name that is
    none of the choices (a Literal's, or an enum's such as a query's ?status=runing):
    "; did you mean 'adam'?", what a paper's name is here ("; CADA2 here is
    'lasg_wk2' with …"), or "" with none near (or another error). The message already
    lists the choices, so only the guess is added."""
    value = error.get("input")
    if error.get("type") not in ("literal_error", "enum") or not isinstance(value, str):
        return ""
    choices = _QUOTED_CHOICE.findall(str((error.get("ctx") or {}).get("expected", "")))
    paper = _PAPER_NAMES.get(re.sub(r"[-_ ]", "", value.lower()))
    if paper is not None and set(paper[1]) <= set(choices):
        return f"; {paper[0]}"
    close = nearest(value, choices)
    return f"; did you mean {close!r}?" if close else ""
