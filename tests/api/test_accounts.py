"""Bootstrap, users, tokens, health and cluster."""

from __future__ import annotations

import re
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from service.bootstrap import admin_token_place
from service.settings import Settings
from service.store.db import db_now, make_engine, make_sessionmaker, transaction
from service.store.dispatchers import mark_dispatcher_stopped, upsert_dispatcher
from service.store.models import ApiToken, Dispatcher, utcnow
from service.store.users import hash_token
from tests.api.conftest import SMALL_SPEC, Api, MakeApi, assert_json_error, bearer


def test_bootstrap_without_configured_token_writes_a_private_file(make_api: MakeApi) -> None:
    api = make_api(bootstrap_admin_token=None)
    token_file = Path(api.settings.state_dir) / "admin-token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(token) >= 43  # token_urlsafe(32): 32 random bytes
    me = api.client.get("/v1/users/me", headers=bearer(token)).json()
    assert (me["name"], me["role"]) == ("admin", "admin")
    # A second start finds users and leaves the admin (and the file) alone.
    token_file.unlink()
    again = make_api(bootstrap_admin_token=None)
    assert not token_file.exists()
    assert again.client.get("/v1/users/me", headers=bearer(token)).status_code == 200


def test_a_first_start_keeps_an_earlier_token_file_and_names_only_a_live_one(
    make_api: MakeApi, settings: Settings
) -> None:
    """A state directory that held another database's admin token (SQLite, then a new
    PostgreSQL database) keeps it aside instead of overwriting the only copy; the
    start line names a place only when its token signs this database's admin in."""
    token_file = Path(settings.state_dir) / "admin-token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text("the-other-databases-token\n")
    # Before the first start's bootstrap (the start line is printed first), a
    # configured token is the place, and the other database's file is not.
    engine = make_engine(settings.database_url)
    try:
        fresh = make_sessionmaker(engine)
        assert admin_token_place(fresh, settings) is None
        configured = settings.model_copy(update={"bootstrap_admin_token": SecretStr("z" * 43)})
        assert admin_token_place(fresh, configured) == "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN"
    finally:
        engine.dispose()
    api = make_api(bootstrap_admin_token=None)
    (kept,) = token_file.parent.glob("admin-token.*")
    assert kept.read_text().strip() == "the-other-databases-token"
    token = token_file.read_text().strip()
    assert api.client.get("/v1/users/me", headers=bearer(token)).status_code == 200

    assert admin_token_place(api.sessions, api.settings) == str(token_file)
    token_file.write_text("the-other-databases-token\n")
    assert admin_token_place(api.sessions, api.settings) is None
    configured = api.settings.model_copy(update={"bootstrap_admin_token": SecretStr(token)})
    assert admin_token_place(api.sessions, configured) == "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN"


def test_tokens_are_stored_hashed_and_revocable(api: Api) -> None:
    r = api.client.post("/v1/users", json={"name": "alice"}, headers=api.admin)
    created = r.json()
    assert set(created) == {"id", "name", "role", "token"} and created["role"] == "user"
    alice = bearer(created["token"])
    second = api.client.post("/v1/tokens", headers=alice).json()
    assert set(second) == {"id", "token", "expires_at"} and second["token"] != created["token"]
    assert second["expires_at"] is None
    with api.sessions() as session:
        stored = set(session.scalars(select(ApiToken.token_sha256)))
    assert hash_token(second["token"]) in stored and second["token"] not in stored

    assert api.client.delete(f"/v1/tokens/{second['id']}", headers=alice).status_code == 204
    assert_json_error(api.client.get("/v1/users/me", headers=bearer(second["token"])), 401)
    assert api.client.get("/v1/users/me", headers=alice).status_code == 200


def test_user_list_shows_usage(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    api.create_user("root2", role="admin")
    job_id = api.submit(alice)
    api.submit(alice)
    api.client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
    page = api.client.get("/v1/users", params={"limit": 2}, headers=api.admin).json()
    assert [u["name"] for u in page["data"]] == ["admin", "alice"]
    alice_row = page["data"][1]
    assert alice_row["usage"] == {
        "running_jobs": 0,
        "queued_jobs": 1,
        "cpus": 0.0,
        "gpus": 0.0,
        "storage_bytes": 0,
        "jobs_total": 2,
        "jobs_by_status": {"queued": 1, "cancelled": 1},
    }
    assert alice_row["quota"]["max_running_jobs"] == api.settings.default_max_running_jobs
    rest = api.client.get(
        "/v1/users", params={"cursor": page["next_cursor"]}, headers=api.admin
    ).json()
    assert [(u["name"], u["role"]) for u in rest["data"]] == [("root2", "admin")]
    assert rest["next_cursor"] is None


def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
    # The docs page and every file it loads come from this server (no CDN: a lab's
    # network may have no internet).
    page = api.client.get("/docs")
    assert page.status_code == 200
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert loaded and all(url.startswith("/docs/assets/") for url in loaded), loaded
    for url in loaded:
        asset = api.client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 500, url
    assert api.client.get("/docs/oauth2-redirect").status_code == 200
    # The database goes away under a running server (seam: the app's session factory).
    unreachable = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    app: Any = api.client.app
    app.state.sessions = make_sessionmaker(unreachable)
    assert api.client.get("/healthz").status_code == 200
    assert_json_error(api.client.get("/readyz"), 503)
    unreachable.dispose()


def test_cluster_shows_dispatchers_resources_and_queue(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    api.submit(alice)
    empty = api.client.get("/v1/cluster", headers=alice).json()
    assert empty["dispatchers"] == [] and empty["queue"]["queued"] == 1
    with transaction(api.sessions) as session:
        upsert_dispatcher(
            session=session,
            dispatcher_id="d1",
            hostname="node-1",
            resources={"total": {"CPU": 8, "GPU": 1}, "free": {"CPU": 6, "GPU": 1}},
        )
    cluster = api.client.get("/v1/cluster", headers=alice).json()
    assert [(d["id"], d["alive"]) for d in cluster["dispatchers"]] == [("d1", True)]
    assert cluster["resources"] == {
        "total": {"CPU": 8.0, "GPU": 1.0},
        "free": {"CPU": 6.0, "GPU": 1.0},
    }
    assert cluster["queue"] == {
        "queued": 1,
        "running": 0,
        "cancelling": 0,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }


def test_a_dispatcher_on_a_slow_clock_is_alive(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dispatcher stamps last_seen_at by the database's clock, which /v1/cluster and
    explain judge it by: one whose host clock ran two hours behind was left out of
    the cluster (and called dead) while it ran, and an API host whose clock ran two
    hours ahead did the same. The hosts' clocks are the seam (each module read
    utcnow; neither does now, so the patches find nothing to replace)."""
    import service.api.cluster as cluster_api
    import service.store.dispatchers as dispatchers

    behind = utcnow() - timedelta(hours=2)
    monkeypatch.setattr(dispatchers, "utcnow", lambda: behind, raising=False)
    ahead = utcnow() + timedelta(hours=2)
    monkeypatch.setattr(cluster_api, "utcnow", lambda: ahead, raising=False)
    _uid, alice = api.create_user("alice")
    with transaction(api.sessions) as session:
        upsert_dispatcher(
            session=session, dispatcher_id="d1", hostname="node-1", resources={"CPU": 1}
        )
    cluster = api.client.get("/v1/cluster", headers=alice).json()
    assert [(d["id"], d["alive"]) for d in cluster["dispatchers"]] == [("d1", True)]


def test_cluster_queue_head_is_the_front_of_the_claim_order(api: Api) -> None:
    """queue_head lists the first queued jobs as the claims will take them (fair share,
    then priority, then submit order), with explain's positions; a user sees only
    their own, at their places in the whole queue."""
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    api.submit(alice)
    a2 = api.submit(alice)
    b1 = api.submit(bob)
    api.claim()  # alice's first: alice now runs a job, so bob's go first by fair share
    a3 = api.submit(alice, {**SMALL_SPEC, "priority": 5})
    b2 = api.submit(bob)

    def head(headers: dict[str, str]) -> list[tuple[int, int]]:
        r = api.client.get("/v1/cluster", headers=headers)
        assert r.status_code == 200, r.text
        return [(p["job_id"], p["position"]) for p in r.json()["queue_head"]]

    everyone = head(api.admin)
    # b1 (bob's usage 0); a3 (alice's usage 1, priority 5) before b2 (usage 1);
    # a2 (alice's usage 2).
    assert everyone == [(b1, 1), (a3, 2), (b2, 3), (a2, 4)]
    # Each place carries what explain says of its job (the dashboard's Lab asked
    # explain once per job), from one read of the queue.
    places = api.client.get("/v1/cluster", headers=api.admin).json()["queue_head"]
    for place in places:
        job_id = place["job_id"]
        explain = api.client.get(f"/v1/jobs/{job_id}/explain", headers=api.admin).json()
        job = api.client.get(f"/v1/jobs/{job_id}", headers=api.admin).json()
        assert explain["queue_position"] == place["position"]
        assert place["reasons"] == explain["reasons"] != []
        assert (place["name"], place["owner"], place["priority"]) == (
            job["name"],
            job["owner"],
            job["priority"],
        )

    def fair_share(job_id: int) -> list[str]:
        reasons = api.client.get(f"/v1/jobs/{job_id}/explain", headers=api.admin).json()
        return [r["message"] for r in reasons["reasons"] if r["kind"] == "fair_share"]

    assert fair_share(a3) == ["1 queued job of a user with fewer recent jobs per share goes first"]
    assert fair_share(a2) == ["2 queued jobs of users with fewer recent jobs per share go first"]
    assert head(alice) == [(a3, 2), (a2, 4)]
    assert head(bob) == [(b1, 1), (b2, 3)]

    more = [api.submit(bob) for _ in range(50)]
    everyone = head(api.admin)
    assert [p for _, p in everyone] == list(range(1, 51))  # the front, not the newest
    assert everyone[:4] == [(b1, 1), (a3, 2), (b2, 3), (a2, 4)]
    assert head(alice) == [(a3, 2), (a2, 4)]
    bobs = head(bob)  # bob's first 50, counted in the whole queue (alice's are ahead)
    assert [j for j, _ in bobs] == [b1, b2, *more[:48]]
    assert bobs[-1][1] == 52


def test_prometheus_metrics_count_jobs_by_status(api: Api) -> None:
    _uid, alice = api.create_user("prom")
    api.submit(alice)
    api.submit(alice)
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert 'lagtrain_jobs{status="queued"} 2' in lines
    assert 'lagtrain_jobs{status="running"} 0' in lines


def test_prometheus_metrics_count_dispatchers_by_state(api: Api) -> None:
    """An operator had nothing to alert on when no dispatcher was alive (jobs queued
    and nothing ran): /metrics counts the dispatchers /v1/cluster shows, by state."""
    with transaction(api.sessions) as session:
        for dispatcher_id in ("alive", "stopped", "lost", "stale"):
            upsert_dispatcher(
                session=session, dispatcher_id=dispatcher_id, hostname="n", resources={}
            )
        mark_dispatcher_stopped(session=session, dispatcher_id="stopped")
        for dispatcher_id, ago in (("lost", 600), ("stale", 7200)):  # a lease is 30 s
            seen = db_now(session) - timedelta(seconds=ago)
            session.get_one(Dispatcher, dispatcher_id).last_seen_at = seen
    lines = api.client.get("/metrics").text.splitlines()
    assert [line for line in lines if line.startswith("lagtrain_dispatchers{")] == [
        'lagtrain_dispatchers{state="alive"} 1',
        'lagtrain_dispatchers{state="stopped"} 1',
        'lagtrain_dispatchers{state="lost"} 1',
    ]


def test_explain_and_the_queue_head_count_runs_within_the_settings_window(api: Api) -> None:
    """The routes pass LAGTRAIN_FAIR_SHARE_WINDOW_SECONDS (an hour by default) as the
    dispatchers do: alice's finished job still counts, so bob's goes first. Counting
    running jobs alone (a route that forgot the window) would put alice's older job
    first."""
    assert api.settings.fair_share_window_seconds == 3600
    _a, alice = api.create_user("alice")
    _b, bob = api.create_user("bob")
    api.submit(alice)
    older = api.submit(alice)
    bobs = api.submit(bob)
    api.finish(api.claim())  # alice's first ran and ended
    head = api.client.get("/v1/cluster", headers=api.admin).json()["queue_head"]
    assert [(p["job_id"], p["position"]) for p in head] == [(bobs, 1), (older, 2)]
    explain = api.client.get(f"/v1/jobs/{older}/explain", headers=alice).json()
    assert explain["queue_position"] == 2
    assert [r["kind"] for r in explain["reasons"]].count("fair_share") == 1


def test_a_stopped_dispatcher_runs_no_jobs_whatever_it_last_reported(api: Api) -> None:
    """An operator's walkthrough read `running_jobs: 2` for a dispatcher drained (its
    jobs handed back) and for one killed (its jobs the reapers'): /v1/cluster shows a
    dispatcher that is not alive running none; a live one's report is shown as sent."""
    _uid, alice = api.create_user("alice")
    report = {"total": {"CPU": 4.0}, "free": {"CPU": 0.0}, "running_jobs": 2}
    with transaction(api.sessions) as session:
        for dispatcher_id in ("running", "stopped"):
            upsert_dispatcher(
                session=session, dispatcher_id=dispatcher_id, hostname="n", resources=report
            )
        mark_dispatcher_stopped(session=session, dispatcher_id="stopped")
    cluster = api.client.get("/v1/cluster", headers=alice).json()
    shown = {d["id"]: (d["alive"], d["state"], d["resources"]) for d in cluster["dispatchers"]}
    assert shown == {
        "running": (True, "alive", report),
        "stopped": (False, "stopped", {**report, "running_jobs": 0}),
    }


def test_a_bad_user_name_is_said_in_words_not_as_a_pattern(api: Api) -> None:
    """A mistyped name (a space) on the user's creation and on a listing's owner filter:
    the 422 names the field and says what a name may hold."""
    made = assert_json_error(
        api.client.post("/v1/users", json={"name": "carol x"}, headers=api.admin), 422
    )
    listed = assert_json_error(api.client.get("/v1/jobs?owner=carol x", headers=api.admin), 422)
    for detail, loc in ((made, ["body", "name"]), (listed, ["query", "owner"])):
        [error] = detail
        assert error["loc"] == loc
        assert error["msg"] == (
            "a user name is letters, digits and _ . @ - (no spaces), "
            "starting with a letter or digit"
        ), error
