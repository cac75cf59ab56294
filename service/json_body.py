"""JSON request bodies whose objects name each key once. Python's json (and so
FastAPI) keeps the last of a repeated key: `{"schedule": {"rounds": 3000},
"schedule": {"seed": 1}}` was accepted and the job ran the default rounds, the
user's setting gone without a word. RFC 8259 leaves repeated names to the reader;
we refuse them, as the spec files' YAML loader does (service.spec_yaml)."""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _RepeatedKey(key)
        found[key] = value
    return found


def is_json_content_type(content_type: str | None) -> bool:
    """Whether FastAPI parses a body sent with this Content-Type as JSON (its own
    test, fastapi.routing; without one it does not: strict_content_type)."""
    message = email.message.Message()
    message["content-type"] = content_type or ""
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


# Python's JSON parser (FastAPI's too) recurses once per level and fails past ~1000
# (200 000 `[` were a 500 and a traceback in the log, for anyone); from ~450 levels
# the 422 that echoes the input failed the same way. No body here nests past 5
# (a sweep's parameters' choices).
MAX_JSON_NESTING = 32
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_NESTING} levels"


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` (parsed JSON) nests objects and arrays deeper than `limit`;
    iterative, so it never recurses itself."""
    level: list[tuple[Any, int]] = [(value, 1)]
    while level:
        item, depth = level.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            level.extend((child, depth + 1) for child in children)
    return False


class UniqueKeysRoute(APIRoute):
    """A route whose JSON body is checked for repeated keys before FastAPI reads it
    (the body is read once: Starlette keeps it for FastAPI's own parse). A body that
    is no JSON at all is left to FastAPI's answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler  # no body to read

        async def unique_keys_first(request: Request) -> Response:
            if is_json_content_type(request.headers.get("content-type")):
                body = await request.body()
                try:
                    value = json.loads(body or b"null", object_pairs_hook=_unique_keys)
                except _RepeatedKey as exc:
                    raise _invalid(
                        f"a JSON object names the key {exc.key!r} twice: the second would "
                        "replace the first"
                    ) from None
                except RecursionError:
                    raise _invalid(TOO_DEEP) from None
                except ValueError:
                    pass  # not JSON (or not UTF-8): FastAPI's own 422 says so
                else:
                    if _deeper_than(value, MAX_JSON_NESTING):
                        raise _invalid(TOO_DEEP)
            return await handler(request)

        return unique_keys_first


def _invalid(message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "json_invalid", "loc": ("body",), "msg": message, "input": None}]
    )
