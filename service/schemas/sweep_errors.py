"""Pydantic errors of a sweep spec, put where a user wrote the mistake: a range's
or a pruner's errors without the union's tag in their loc, the checks of the raw
text added beside the form's own, and what a 422 echoes as each error's input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from service.schemas.sweep_checks import Loc, Problem


def value_at(data: Any, loc: Loc) -> Any:
    """The value at `loc` in JSON data, or None (what a 422 echoes as the input)."""
    for key in loc:
        inside = isinstance(data, Mapping) and key in data
        inside |= isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data)
        if not inside:
            return None
        data = data[key]
    return data


def as_raised(error: ErrorDetails, loc: Loc) -> InitErrorDetails:
    """`error` to raise again at `loc`, with its own type, message and context."""
    return {
        "type": PydanticCustomError(error["type"], error["msg"], error.get("ctx")),
        "loc": loc,
        "input": error["input"],
    }


def with_problems(exc: ValidationError, data: Any, problems: Sequence[Problem]) -> ValidationError:
    """`exc`'s errors and `problems` (each at its loc in `data`) as one error."""
    errors = [as_raised(e, e["loc"]) for e in exc.errors()] + [
        {
            "type": PydanticCustomError("value_error", message),
            "loc": loc,
            "input": value_at(data, loc),
        }
        for loc, message in problems
    ]
    return ValidationError.from_exception_data(exc.title, errors)


def _errors_without_tag(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validates a member of a union told apart by its `type`, with the errors at the
    member's own place: pydantic puts the tag into their loc, so an empty range was
    reported at `parameters.optimizer.lr.float`, which reads as a JobSpec path."""
    try:
        return handler(value)
    except ValidationError as exc:
        tag = value.get("type") if isinstance(value, dict) else None
        errors = [
            as_raised(e, e["loc"][1:] if e["loc"][:1] == (tag,) else e["loc"]) for e in exc.errors()
        ]
        raise ValidationError.from_exception_data(exc.title, errors) from None


ERRORS_WITHOUT_TAG = WrapValidator(_errors_without_tag)
