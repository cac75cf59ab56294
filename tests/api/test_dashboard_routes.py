"""The routes the dashboard adds: its page and assets with their security headers,
the spec-text parser, a job's status history and the live jobs feed."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import anyio
import httpx
import pytest
from sqlalchemy import event

from service.api import jobs_feed
from service.api.job_filters import JobFilters
from service.api.jobs_feed import _pages
from service.api.stream_guard import TokenRecheck
from service.schemas.audit import AuditAction
from service.sse_text import parse_sse
from service.store.db import transaction
from service.store.users import Principal, revoke_token
from service.ui.security import CONTENT_SECURITY_POLICY
from tests.api.conftest import Api, MakeApi, assert_json_error, bearer


def test_page_and_assets_carry_a_csp_that_allows_only_own_scripts(api: Api) -> None:
    page = api.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for path in ("/", "/ui/static/app.js", "/ui/static/views/job.js", "/ui/vendor/plotly.min.js"):
        response = api.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    # Every script the page loads comes from this server: no scheme, no host.
    sources = re.findall(r'<script[^>]*src="([^"]+)"', page.text)
    assert sources and all(src.startswith("/ui/") for src in sources), sources
    assert "<script>" not in page.text  # no inline script


def test_the_pages_modules_are_revalidated_at_each_load(api: Api) -> None:
    """An upgraded server's views reach an open tab's next load: each module asks
    whether it changed (no-cache, a 304 when not), not a browser's heuristic
    freshness."""
    for path in ("/ui/static/app.js", "/ui/static/views/job.js", "/ui/static/style.css"):
        response = api.client.get(path)
        assert response.headers["cache-control"] == "no-cache", path
        again = api.client.get(path, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304, path


def _rules_module(api: Api) -> dict[str, Any]:
    response = api.client.get("/ui/rules.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    exports = re.findall(r"^export const (\w+) = (.*);$", response.text, re.MULTILINE)
    assert len(exports) == len(response.text.strip().splitlines()) - 1  # and one comment
    return {name: json.loads(value) for name, value in exports}


def test_the_pages_rules_module_says_what_the_api_does(api: Api) -> None:
    """The pages take their statuses, page sizes and audit actions from /ui/rules.js:
    each must be what the API itself accepts, so a page cannot drift from the server."""
    rules = _rules_module(api)
    schema = api.client.get("/openapi.json").json()
    status_param = next(
        p for p in schema["paths"]["/v1/jobs"]["get"]["parameters"] if p["name"] == "status"
    )
    status_schema = json.dumps(status_param["schema"])
    ref = re.search(r'"#/components/schemas/(\w+)"', status_schema)
    enum = schema["components"]["schemas"][ref.group(1)]["enum"] if ref else None
    assert rules["JOB_STATUSES"] == enum
    assert set(rules["TERMINAL_STATUSES"]) == {"succeeded", "failed", "cancelled"}
    assert set(rules["FINISHED_TRIAL_STATUSES"]) == {*rules["TERMINAL_STATUSES"], "pruned"}
    for path, largest in (
        ("/v1/jobs", rules["MAX_PAGE"]),
        ("/v1/users", rules["MAX_PAGE"]),
        ("/v1/datasets", rules["MAX_PAGE"]),
    ):
        assert api.client.get(f"{path}?limit={largest}", headers=api.admin).status_code == 200
        too_many = api.client.get(f"{path}?limit={largest + 1}", headers=api.admin)
        assert assert_json_error(too_many, 422)[0]["loc"] == ["query", "limit"]
    job_id = api.submit(api.admin)
    metrics = f"/v1/jobs/{job_id}/metrics?limit="
    assert api.client.get(f"{metrics}{rules['MAX_METRICS_PAGE']}", headers=api.admin).is_success
    too_many = api.client.get(f"{metrics}{rules['MAX_METRICS_PAGE'] + 1}", headers=api.admin)
    assert assert_json_error(too_many, 422)[0]["loc"] == ["query", "limit"]
    assert rules["HEADLINE_METRICS"][:1] and "val_loss" not in rules["HEADLINE_METRICS"]
    baselines = rules["BASELINES"]
    assert baselines["val_perplexity"] == "unigram_perplexity"
    assert baselines["val_accuracy"] == "chance_accuracy"
    assert set(baselines) <= set(rules["HEADLINE_METRICS"])
    assert not set(baselines.values()) & set(rules["HEADLINE_METRICS"])
    assert rules["HIGHER_IS_BETTER"] == ["val_accuracy"]  # the sweep page's comparison
    assert rules["BYTE_METRICS"] == ["bytes_up_total", "dense_equiv_bytes"]
    assert rules["AUDIT_ACTIONS"] == sorted(AuditAction)  # the audit page's datalist
    assert rules["AUDIT_PREFIXES"] == sorted({a.partition(".")[0] + "." for a in AuditAction})


def test_plotly_bundle_is_served_compressed_from_the_installed_package(api: Api) -> None:
    response = api.client.get("/ui/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text.lstrip().startswith("/**\n* plotly.js v")  # httpx decompressed it


def test_examples_and_spec_parser_give_fields_their_lines(api: Api) -> None:
    def parse(text: str) -> httpx.Response:
        # TestClient's base class is httpx2's Client (absent here), so mypy sees Any.
        response: httpx.Response = api.client.post(
            "/ui/parse-spec", json={"text": text}, headers=api.admin
        )
        return response

    examples = api.client.get("/ui/examples").json()
    assert "digits-cada2" in examples and "sweep-cada2-xi" in examples
    # The page submits a sweep spec to /v1/sweeps, anything else to /v1/jobs.
    assert parse(examples["sweep-cada2-xi"]).json()["kind"] == "sweep"
    assert parse(examples["digits-cada2"]).json()["kind"] == "job"
    for neither in ("name: x\n", "task: {kind: adding}\nbase: {}\n"):
        assert parse(neither).json()["kind"] == "job"  # its 422s will say what is wrong
    text = "name: x\ntask:\n  kind: adding\nschedule: {rounds: 0}\n"
    parsed = api.client.post("/ui/parse-spec", json={"text": text}, headers=api.admin).json()
    assert parsed["spec"]["schedule"] == {"rounds": 0} and parsed["kind"] == "job"
    assert parsed["lines"] == {
        "name": 1,
        "task": 2,
        "task.kind": 3,
        "schedule": 4,
        "schedule.rounds": 4,
    }
    # YAML 1.2 floats: `1e-3` is a number (PyYAML's YAML 1.1 reads a string, which the
    # JobSpec refuses for a float); a quoted one stays a string.
    numbers = parse("optimizer: {lr: 1e-3, eps: 1.0e-8, beta1: .9}\nname: '1e-3'\n").json()
    assert numbers["spec"] == {"optimizer": {"lr": 1e-3, "eps": 1e-8, "beta1": 0.9}, "name": "1e-3"}
    bad = assert_json_error(parse("a: [1,\n"), 422)
    assert bad[0]["loc"] == ["body", "text"] and bad[0]["line"] == 2
    listed = assert_json_error(parse("- 1\n"), 422)
    assert "mapping" in listed[0]["msg"]
    # Nested aliases would expand exponentially when the answer is serialised.
    laughs = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    refused = assert_json_error(parse(laughs), 422)
    assert "aliases" in refused[0]["msg"] and refused[0]["line"] == 2
    # As JSON a NaN would become null, i.e. "the default": the job would run with
    # another lr than the text says.
    for number in (".nan", ".inf", "-.inf"):
        nan = assert_json_error(parse(f"task: {{kind: adding}}\noptimizer:\n  lr: {number}\n"), 422)
        assert nan[0]["msg"].startswith("optimizer.lr is ") and nan[0]["line"] == 3, nan
        assert "non-finite numbers" in nan[0]["msg"]
    # What YAML reads and JSON cannot carry (a date, bytes) and keys that are no names
    # are a 422 at their line, not a 500 (a review: the answer could not be built).
    for text, where, line in (
        ("task: {kind: adding}\n1: 2\n", "the spec has the key 1 (YAML read a number", 2),
        ("task: {kind: adding}\n2020-01-01: 3\n", "the spec has the key datetime.date", 2),
        ("? !!null\n: 1\n", "the spec has the key None (YAML read a null", 1),
        # `on` is read as True: its mapping's line (the key's text is not kept).
        ("task:\n  kind: adding\n  on: 1\n", "task has the key True (YAML read a boolean", 1),
        ("task: {kind: adding}\nname: !!binary aGk=\n", "name is b'hi' (YAML read a bytes", 2),
        ("name: x\nsweep:\n  when: [1, 2024-01-01]\n", "sweep.when[1] is 2024-01-01", 3),
    ):
        refused = assert_json_error(parse(text), 422)
        assert refused[0]["msg"].startswith(where) and refused[0]["line"] == line, refused
        assert "quote it" in refused[0]["msg"]
    # Deep nesting made the parse itself the cost (PyYAML's scanner is quadratic in
    # the flow depth: 30 KB of `[` held a core for 49 s, then a 500): refused at the
    # 17th level, on the line that opens it, before the rest is read.
    flow = assert_json_error(parse("name: x\na: " + "[" * 15_000 + "]" * 15_000), 422)
    assert "nested deeper than 16 levels" in flow[0]["msg"] and flow[0]["line"] == 2
    block = "task:\n" + "".join(" " * level + f"k{level}:\n" for level in range(1, 40))
    indented = assert_json_error(parse(block), 422)
    assert "nested deeper" in indented[0]["msg"] and indented[0]["line"] == 17
    at_the_limit = "a: " + "[" * 15 + "1" + "]" * 15 + "\n"
    assert parse(at_the_limit).status_code == 200


def test_history_lists_every_transition_and_hides_others_jobs(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    _uid, bob = api.create_user("bob")
    job_id = api.submit(alice)
    claimed = api.claim()
    api.finish(claimed)
    history = api.client.get(f"/v1/jobs/{job_id}/history", headers=alice).json()["data"]
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ]
    assert history[1]["attempt"] == 1 and history[1]["actor"].startswith("dispatcher:")
    # Who acted reads as a name, not the user id the event stores.
    assert history[0]["actor"] == "user:alice"
    queued = api.submit(alice)
    api.client.post(f"/v1/jobs/{queued}/cancel", headers=api.admin)
    cancelled = api.client.get(f"/v1/jobs/{queued}/history", headers=alice).json()["data"][-1]
    assert (cancelled["actor"], cancelled["reason"]) == ("user:admin", "cancelled by user:admin")
    assert_json_error(api.client.get(f"/v1/jobs/{job_id}/history", headers=bob), 404)
    assert api.client.get(f"/v1/jobs/{job_id}/history", headers=api.admin).status_code == 200


async def _always() -> bool:
    return True


def _feed(api: Api, viewer: Principal) -> AsyncGenerator[dict[str, str]]:
    """The jobs feed of `viewer`'s first 10 jobs, driven in-process (no SSE)."""
    feed = _pages(
        api.sessions,
        viewer,
        JobFilters(),
        limit=10,
        cursor=None,
        # _pages only awaits still_allowed(): a coroutine function stands in.
        still_allowed=cast(TokenRecheck, _always),
    )
    assert isinstance(feed, AsyncGenerator)  # declared AsyncIterator; aclose() below
    return feed


def test_jobs_feed_sends_the_page_then_each_change(api: Api) -> None:
    alice_id, alice = api.create_user("alice")
    first = api.submit(alice)
    viewer = Principal(user_id=alice_id, name="alice", role="user", token_id=0)

    async def two_events() -> list[dict[str, str]]:
        feed = _feed(api, viewer)
        events = [await feed.__anext__()]
        api.submit(alice)  # a new job changes the page
        events.append(await feed.__anext__())
        await feed.aclose()
        return events

    before, after = anyio.run(two_events)
    assert before["event"] == "jobs"
    assert [j["id"] for j in json.loads(before["data"])["data"]] == [first]
    # After the page, only what changed (tests/api/test_jobs_feed_rows.py).
    assert after["event"] == "changes"
    change = json.loads(after["data"])
    [new] = change["data"]
    assert change["ids"] == [new["id"], first]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("progress_round", 3, lambda job: job["progress"]["round"] == 3),
        ("summary", """'{"rounds_completed": 3}'""", lambda job: job["summary"] is not None),
        ("error", "'lost'", lambda job: job["error"] == "lost"),
        ("priority", 7, lambda job: job["priority"] == 7),
    ],
)
def test_jobs_feed_rebuilds_its_page_only_when_a_row_changes(
    api: Api,
    column: str,
    value: object,
    shown: Callable[[dict[str, Any]], bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An idle list costs one narrow query a poll (no spec read, no page built: the
    feed rebuilt and compared the whole page every 0.5 s per open tab); a change to any
    shown column still reaches the page."""
    # Polls every 50 ms, not 0.5 s: the three polls watched below take 0.1 s, not 1.
    monkeypatch.setattr(jobs_feed, "POLL_SECONDS", 0.05)
    alice_id, alice = api.create_user("alice")
    job_id = api.submit(alice)
    viewer = Principal(user_id=alice_id, name="alice", role="user", token_id=0)
    engine = api.sessions.kw["bind"]
    polls: list[str] = []
    spec_reads: list[str] = []

    def on_select(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "FROM jobs" in statement:
            (spec_reads if "jobs.spec" in statement else polls).append(statement)

    async def scenario() -> dict[str, Any]:
        feed = _feed(api, viewer)
        await feed.__anext__()
        event.listen(engine, "before_cursor_execute", on_select)
        changed: dict[str, Any] = {}
        try:
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tasks:

                    async def next_page() -> None:
                        changed.update(json.loads((await feed.__anext__())["data"]))

                    tasks.start_soon(next_page)
                    while len(polls) < 3:  # three polls of an unchanged list
                        await anyio.sleep(0.05)
                    assert spec_reads == [], spec_reads
                    with engine.begin() as conn:
                        conn.exec_driver_sql(
                            f"UPDATE jobs SET {column} = {value} WHERE id = {job_id}"
                        )
        finally:
            event.remove(engine, "before_cursor_execute", on_select)
            await feed.aclose()
        return changed

    page = anyio.run(scenario)
    assert shown(page["data"][0]), page
    assert len(spec_reads) >= 1  # the changed page was built


def test_jobs_feed_rejects_a_bad_cursor_and_needs_a_token(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    assert_json_error(api.client.get("/v1/feeds/jobs?cursor=x", headers=alice), 422)
    assert_json_error(api.client.get("/v1/feeds/jobs"), 401)


def test_state_changes_need_the_bearer_header_not_a_cookie(api: Api) -> None:
    """A cross-site form can send cookies and a body but not an Authorization header:
    with no cookie auth there is nothing for it to ride on."""
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    token = alice["Authorization"].removeprefix("Bearer ")
    forged = api.client.post(
        f"/v1/jobs/{job_id}/cancel",
        headers={"Origin": "http://evil.example", "Cookie": f"token={token}"},
        data={"token": token},
    )
    assert_json_error(forged, 401)
    assert "access-control-allow-origin" not in forged.headers
    assert api.client.get(f"/v1/jobs/{job_id}", headers=alice).json()["status"] == "queued"


@pytest.mark.timeout(60)
def test_jobs_feed_closes_when_its_token_is_revoked_and_holds_a_stream_slot(
    make_api: MakeApi,
) -> None:
    api = make_api(stream_auth_recheck_seconds=0.2, max_streams_per_user=1)
    alice_id, first = api.create_user("alice")
    created = api.client.post("/v1/tokens", headers=first).json()
    alice = bearer(created["token"])
    api.submit(alice)
    with api.client.stream("GET", "/v1/feeds/jobs", headers=alice) as response:
        events = parse_sse(response.iter_lines())
        assert next(events).event == "jobs"
        second = api.client.get("/v1/feeds/jobs", headers=first)
        assert "max_streams_per_user" in assert_json_error(second, 429)
        with transaction(api.sessions) as session:
            actor = Principal(user_id=alice_id, name="alice", role="user", token_id=0)
            revoke_token(session=session, token_id=created["id"], actor=actor)
        assert list(events) == []  # the server closed the feed
    assert_json_error(api.client.get("/v1/feeds/jobs", headers=alice), 401)
