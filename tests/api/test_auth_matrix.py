"""Every route x every kind of caller. The route table below must list exactly the
app's routes, so a new route cannot escape the matrix."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from fastapi.routing import iter_route_contexts

from service.app import create_app
from service.artifacts import artifact_url, write_once
from service.settings import Settings
from service.store.checkpoints import record_checkpoint
from service.store.db import transaction
from tests.api.conftest import SMALL_SPEC, SMALL_SWEEP, Api, assert_json_error, bearer

Access = Literal["public", "user", "admin", "job", "sweep", "own_token"]
CALLERS = ("none", "bad", "revoked", "other", "admin", "owner")
_names = itertools.count()


@dataclass(frozen=True)
class RouteCase:
    access: Access
    ok: int = 200
    # keyword arguments for client.request, built per call (ids come from the fixture)
    request: Callable[[dict[str, int]], dict[str, Any]] = field(default=lambda ids: {})
    # ids made anew before each caller's request (a delete that succeeds once)
    fresh: Callable[[World], dict[str, int]] = field(default=lambda world: {})


ROUTES: dict[tuple[str, str], RouteCase] = {
    ("GET", "/openapi.json"): RouteCase("public"),
    ("GET", "/docs"): RouteCase("public"),
    ("GET", "/docs/oauth2-redirect"): RouteCase("public"),
    ("GET", "/redoc"): RouteCase("public"),
    ("GET", "/healthz"): RouteCase("public"),
    ("GET", "/readyz"): RouteCase("public"),
    ("GET", "/metrics"): RouteCase("public"),
    ("POST", "/v1/jobs"): RouteCase("user", 201, lambda ids: {"json": SMALL_SPEC}),
    ("GET", "/v1/jobs"): RouteCase("user"),
    ("GET", "/v1/jobs/{job_id}"): RouteCase("job"),
    ("POST", "/v1/jobs/{job_id}/cancel"): RouteCase("job", 202),
    ("GET", "/v1/jobs/{job_id}/explain"): RouteCase("job"),
    ("GET", "/v1/jobs/{job_id}/metrics"): RouteCase("job"),
    ("GET", "/v1/jobs/{job_id}/events"): RouteCase("job"),
    ("GET", "/v1/jobs/{job_id}/checkpoints"): RouteCase("job"),
    ("GET", "/v1/jobs/{job_id}/checkpoints/{checkpoint_id}"): RouteCase("job"),
    ("DELETE", "/v1/jobs/{job_id}/checkpoints"): RouteCase("job", 204),
    # Each caller deletes a finished job of the owner's of its own (see `fresh`).
    ("DELETE", "/v1/jobs/{job_id}"): RouteCase(
        "job", 204, fresh=lambda world: {"job_id": world.finished_job()}
    ),
    ("POST", "/v1/datasets"): RouteCase(
        "user", 201, lambda ids: {"files": {"file": ("t.txt", b"to be or not to be\n")}}
    ),
    ("GET", "/v1/datasets"): RouteCase("user"),
    # Owned like a job; each caller deletes an upload of its own (see `fresh`).
    ("DELETE", "/v1/datasets/{dataset_id}"): RouteCase(
        "job", 204, fresh=lambda world: {"dataset_id": world.upload()}
    ),
    ("POST", "/v1/users"): RouteCase(
        "admin", 201, lambda ids: {"json": {"name": f"new-{next(_names)}"}}
    ),
    ("GET", "/v1/users"): RouteCase("admin"),
    ("GET", "/v1/users/me"): RouteCase("user"),
    ("PATCH", "/v1/users/{user_id}"): RouteCase(
        "admin", 200, lambda ids: {"json": {"quota": {"max_queued_jobs": 50}}}
    ),
    ("GET", "/v1/tokens"): RouteCase("user"),
    ("GET", "/v1/audit"): RouteCase("admin"),
    ("POST", "/v1/tokens"): RouteCase("user", 201),
    ("DELETE", "/v1/tokens/{token_id}"): RouteCase("own_token", 204),
    ("GET", "/v1/cluster"): RouteCase("user"),
    ("POST", "/v1/sweeps"): RouteCase("user", 201, lambda ids: {"json": SMALL_SWEEP}),
    ("GET", "/v1/sweeps"): RouteCase("user"),
    ("GET", "/v1/sweeps/{sweep_id}"): RouteCase("sweep"),
    ("POST", "/v1/sweeps/{sweep_id}/cancel"): RouteCase("sweep", 202),
    # Each caller deletes a finished sweep of the owner's of its own (see `fresh`).
    ("DELETE", "/v1/sweeps/{sweep_id}"): RouteCase(
        "sweep", 204, fresh=lambda world: {"sweep_id": world.finished_sweep()}
    ),
    # The dashboard (issue 10): its page and assets hold no user data.
    ("GET", "/"): RouteCase("public"),
    ("GET", "/ui/vendor/plotly.min.js"): RouteCase("public"),
    ("GET", "/ui/examples"): RouteCase("public"),
    ("GET", "/ui/rules.js"): RouteCase("public"),
    ("POST", "/ui/parse-spec"): RouteCase("user", 200, lambda ids: {"json": {"text": "a: 1"}}),
    ("GET", "/v1/jobs/{job_id}/history"): RouteCase("job"),
    ("GET", "/v1/feeds/jobs"): RouteCase("user"),
}


@pytest.fixture(autouse=True)
def _short_feeds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The jobs feed ends after its first page here, so a plain request returns."""
    monkeypatch.setattr("service.api.jobs_feed.FEED_SECONDS", 0.0)


def expected_status(case: RouteCase, caller: str) -> int:
    if case.access == "public":
        return case.ok
    if caller in ("none", "bad", "revoked"):
        return 401
    if case.access == "admin":
        return case.ok if caller == "admin" else 403
    if case.access in ("job", "sweep", "own_token") and caller == "other":
        return 404
    return case.ok


def test_route_table_lists_every_route(tmp_path: Any) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))
    routes = {
        (method, ctx.path)
        for ctx in iter_route_contexts(app.routes)
        for method in (ctx.methods or set()) - {"HEAD"}
    }
    assert routes == set(ROUTES)


@dataclass
class World:
    api: Api
    headers: dict[str, dict[str, str]]
    ids: dict[str, int]

    def upload(self) -> int:
        """A new dataset of the owner's; its id."""
        files = {"file": ("t.txt", b"to be or not to be\n")}
        r = self.api.client.post("/v1/datasets", files=files, headers=self.headers["owner"])
        assert r.status_code == 201, r.text
        dataset_id: int = r.json()["id"]
        return dataset_id

    def finished_sweep(self) -> int:
        """A new sweep of the owner's, cancelled before its first trial; its id."""
        r = self.api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=self.headers["owner"])
        assert r.status_code == 201, r.text
        sweep_id: int = r.json()["id"]
        cancel = f"/v1/sweeps/{sweep_id}/cancel"
        assert self.api.client.post(cancel, headers=self.headers["owner"]).status_code == 202
        return sweep_id

    def finished_job(self) -> int:
        """A new job of the owner's, cancelled while queued; its id."""
        job_id = self.api.submit(self.headers["owner"])
        r = self.api.client.post(f"/v1/jobs/{job_id}/cancel", headers=self.headers["owner"])
        assert r.status_code == 202, r.text
        return job_id


@pytest.fixture
def world(api: Api) -> World:
    """alice owns a finished job with metrics and a checkpoint, a sweep, and a spare token;
    bob is another user; alice also has a revoked token."""
    alice_id, alice = api.create_user("alice")
    _bob_id, bob = api.create_user("bob")
    revoked = api.client.post("/v1/tokens", headers=alice).json()
    assert api.client.delete(f"/v1/tokens/{revoked['id']}", headers=alice).status_code == 204
    spare = api.client.post("/v1/tokens", headers=alice).json()

    job_id = api.submit(alice)
    claimed = api.claim()
    api.append(claimed, range(1, 3))
    uri = artifact_url(api.settings.artifacts_url, f"checkpoints/{job_id}/round-1.pt")
    write_once(uri, b"checkpoint-bytes")
    with transaction(api.sessions) as session:
        checkpoint = record_checkpoint(
            session=session,
            job_id=job_id,
            token=claimed.fencing_token,
            round=1,
            seq=2,
            uri=uri,
            sha256="0" * 64,
            bytes=16,
        )
    api.finish(claimed)  # finished, so the SSE stream closes by itself
    sweep = api.client.post("/v1/sweeps", json=SMALL_SWEEP, headers=alice)
    assert sweep.status_code == 201, sweep.text
    return World(
        api=api,
        headers={
            "none": {},
            "bad": bearer("not-a-token"),
            "revoked": bearer(revoked["token"]),
            "other": bob,
            "admin": api.admin,
            "owner": alice,
        },
        ids={
            "job_id": job_id,
            "checkpoint_id": checkpoint.id,
            "token_id": spare["id"],
            "sweep_id": sweep.json()["id"],
            "user_id": alice_id,
        },
    )


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_answers_each_caller_correctly(world: World, route: tuple[str, str]) -> None:
    method, template = route
    case = ROUTES[route]
    mismatches = []
    for caller in CALLERS:
        path = template.format(**{**world.ids, **case.fresh(world)})
        r = world.api.client.request(
            method, path, headers=world.headers[caller], **case.request(world.ids)
        )
        want = expected_status(case, caller)
        if r.status_code != want:
            mismatches.append(f"{caller}: {r.status_code} != {want}: {r.text[:200]}")
        elif want >= 400:
            assert_json_error(r, want)
            if want == 401:
                assert r.headers["www-authenticate"] == "Bearer"
    assert not mismatches, "\n".join(mismatches)
