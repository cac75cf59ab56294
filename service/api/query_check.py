"""A query parameter the route does not take is a 422 naming it, as a body field it
does not take is: FastAPI ignores what a route does not declare, so
`GET /v1/jobs?stauts=running` listed every job, with no word of the typo. The 422
says which parameters the route takes and the near one (service.http_errors)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from service.auth import check_token


async def reject_unknown_query(request: Request) -> None:
    """A dependency of every /v1 route (service.app), which runs before the route's
    own: the token is checked first, as every route answers 401 before 422."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = query_names(route)
    await _refuse_unknown(request, "query", request.query_params, known)


def only_form_fields(*known: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing a multipart form field the route does not take, as a
    JSON body's unknown field is: `-F formt=csv` stored a CSV as text (the field was
    ignored), found out only at the next submit (a walkthrough). After the token."""

    async def check(request: Request) -> None:
        form = await request.form()  # FastAPI's own parse, cached on the request
        await _refuse_unknown(request, "body", {name: None for name in form}, frozenset(known))

    return check


async def _refuse_unknown(
    request: Request, place: str, given: Mapping[str, object], known: frozenset[str]
) -> None:
    """A 422 for each name in `given` not in `known`, at (`place`, name), once the token
    is checked (every route answers 401 before 422); the near name is added with the
    others' in service.http_errors."""
    unknown = [name for name in dict.fromkeys(given) if name not in known]
    if unknown:
        await check_token(request)
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": (place, name),
                    "msg": "Extra inputs are not permitted",
                    "input": given[name],
                }
                for name in unknown
            ]
        )


def query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters `route` takes, its dependencies' included (a walk of a
    few fields per request: cheaper than a cache keyed by a route, which is
    unhashable)."""
    return _names(route.dependant)


def _names(dependant: Dependant) -> frozenset[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _names(sub)
    return frozenset(names)
