"""The fields a request body takes at a place, for the 422 of a field it does not take:
"Extra inputs are not permitted" alone left a user of `schedule: {batchsize: 16}` or
`--quota max_runing_jobs=2` to find the spelling in the docs (a walkthrough), where a
sweep's path errors already named the fields there."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
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
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    guess = f"; did you mean {close[0]!r}? " if close else " "
    return f"{guess}({what}: {', '.join(known)})"
