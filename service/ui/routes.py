"""Routes of the dashboard: the page at `/`, its static files and the helpers the
pages need besides the API. The page and its files hold no user data and need no
token; the spec parser does."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service.auth import CurrentUser, TokenCheckedFirst
from service.json_body import UniqueKeysRoute
from service.ui.assets import STATIC_DIR, example_specs, plotly_bundle, plotly_bundle_gzip
from service.ui.rules import rules_js
from service.ui.spec_text import ParsedSpec, SpecText, SpecTextError, parse_spec_text

router = APIRouter(include_in_schema=False, route_class=UniqueKeysRoute)

# The page is tiny and changes with the server; the bundle is versioned by the package.
NO_STORE = {"Cache-Control": "no-store"}
CACHE_A_DAY = {"Cache-Control": "public, max-age=86400"}


class RevalidatedStaticFiles(StaticFiles):
    """The pages' modules, each load asking whether the file changed (a 304 when not):
    with no Cache-Control a browser kept them by heuristic for up to a tenth of their
    age, so after an upgrade a tab could run old views against the new `rules.js` and
    API (a review)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> StaticFiles:
    return RevalidatedStaticFiles(directory=STATIC_DIR)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=NO_STORE)


@router.get("/ui/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(
            plotly_bundle_gzip(),
            media_type="text/javascript",
            headers={**CACHE_A_DAY, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"},
        )
    return Response(plotly_bundle(), media_type="text/javascript", headers=CACHE_A_DAY)


@router.get("/ui/rules.js")
def rules_module() -> Response:
    """The server's rules the pages share (statuses, page sizes, metric names)."""
    return Response(rules_js(), media_type="text/javascript", headers=NO_STORE)


@router.get("/ui/examples")
def examples() -> dict[str, str]:
    return example_specs()


def parse_spec(body: SpecText, _principal: CurrentUser) -> ParsedSpec:
    """Text → JSON for the submit page (signed-in users only: parsing costs the
    server CPU); the job itself is then submitted to POST /v1/jobs."""
    try:
        return parse_spec_text(body.text)
    except SpecTextError as exc:
        # FastAPI's 422 list form, plus the line the submit page marks; the text itself
        # is not echoed back (it may be up to the body limit).
        error = {"type": "value_error", "loc": ("body", "text"), "msg": str(exc), "line": exc.line}
        raise RequestValidationError([error]) from exc


# The one page route that takes a token: a body it cannot read is a 401 before the
# 422 when the token is bad, as on every /v1 route (TokenCheckedFirst); the pages'
# public routes keep their answers.
router.add_api_route(
    "/ui/parse-spec", parse_spec, methods=["POST"], route_class_override=TokenCheckedFirst
)
