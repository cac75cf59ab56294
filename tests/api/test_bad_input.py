"""Bad requests get a 4xx JSON answer that names the offending field, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import SMALL_SPEC, Api, MakeApi, assert_json_error


def _with(path: str, value: Any) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(json.dumps(SMALL_SPEC))
    *parents, leaf = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return spec


def _field_named(detail: Any, field: str) -> bool:
    """The 422 list names `field` in an error's loc or its message."""
    dotted = [".".join(str(p) for p in e["loc"] if p != "body") for e in detail]
    return any(d == field or d.startswith(field + ".") for d in dotted) or any(
        field in e["msg"] for e in detail
    )


BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top-level field", SMALL_SPEC | {"bogus": 1}, "bogus"),
    ("unknown nested field", _with("model.colour", "red"), "model.colour"),
    ("wrong type", _with("schedule.rounds", "many"), "schedule.rounds"),
    ("zero rounds", _with("schedule.rounds", 0), "schedule.rounds"),
    ("negative lr", _with("optimizer.lr", -1.0), "optimizer.lr"),
    ("too many workers", _with("distributed.workers", 10_000), "distributed.workers"),
    ("unknown strategy", _with("aggregation.strategy", "lazy"), "aggregation.strategy"),
    ("missing task", {"schedule": {"rounds": 3}}, "task"),
    (
        "lag_ps on char_lm",
        {"task": {"kind": "char_lm"}, "aggregation": {"strategy": "lag_ps"}},
        "aggregation.strategy",
    ),
    (
        "lag_ps with two workers at the paper's xi",
        {
            "task": {"kind": "lag_paper_linreg"},
            "aggregation": {"strategy": "lag_ps", "xi": 10.0},
            "distributed": {"workers": 2},
        },
        "aggregation.xi",
    ),
    ("builtin dataset for the wrong task", _with("task.dataset", "builtin:digits"), "task.dataset"),
    ("bfloat16 without a GPU", _with("model.dtype", "bfloat16"), "model.dtype"),
    (
        "full batch on char_lm",
        {"task": {"kind": "char_lm"}, "schedule": {"batch_size": "full"}},
        "schedule.batch_size",
    ),
    ("unknown dtype", _with("model.dtype", "float16"), "model.dtype"),
    ("laq with 1 bit", _with("aggregation.bits", 1), "aggregation.bits"),
    ("laq with 17 bits", _with("aggregation.bits", 17), "aggregation.bits"),
    # Settings the chosen optimizer or task never reads (service/schemas/unused_settings).
    (
        "amsgrad under sgd",
        {**SMALL_SPEC, "optimizer": {"name": "sgd", "amsgrad": True}},
        "optimizer.amsgrad",
    ),
    ("momentum under adam", _with("optimizer.momentum", 0.9), "optimizer.momentum"),
    (
        "a split on the paper task",
        {"task": {"kind": "lag_paper_linreg"}, "distributed": {"split": "iid"}},
        "distributed.split",
    ),
    (
        "a recurrent cell on the paper task",
        {"task": {"kind": "lag_paper_linreg"}, "model": {"cell": "gru"}},
        "model.cell",
    ),
]


@pytest.mark.parametrize(("case", "spec", "field"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_bad_spec_is_422_naming_the_field(
    api: Api, case: str, spec: dict[str, Any], field: str
) -> None:
    _uid, alice = api.create_user("alice")
    detail = assert_json_error(api.client.post("/v1/jobs", json=spec, headers=alice), 422)
    assert isinstance(detail, list) and _field_named(detail, field), (case, detail)


def test_upload_references_must_exist_belong_to_the_submitter_and_fit(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    _uid, bob = api.create_user("bob")
    bobs = api.client.post(
        "/v1/datasets", files={"file": ("b.txt", b"bob's words\n")}, headers=bob
    ).json()
    csv = api.client.post(
        "/v1/datasets", files={"file": ("a.csv", b"x,y\n1,0\n2,1\n")}, headers=alice
    ).json()
    for ref in ("upload:999999", bobs["ref"], "upload:abc", "upload:" + "9" * 40, csv["ref"]):
        spec = {"task": {"kind": "char_lm", "dataset": ref}}
        detail = assert_json_error(api.client.post("/v1/jobs", json=spec, headers=alice), 422)
        assert detail[0]["loc"] == ["body", "task", "dataset"], (ref, detail)
    words = b"alice's words\n" * 50  # enough text for the default seq_len and workers
    own = api.client.post("/v1/datasets", files={"file": ("a.txt", words)}, headers=alice).json()
    spec = {"task": {"kind": "char_lm", "dataset": own["ref"]}}
    assert api.client.post("/v1/jobs", json=spec, headers=alice).status_code == 201


@pytest.mark.parametrize(
    ("request_kwargs", "where"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "body"),
        ({"json": [1, 2, 3]}, "body"),
        ({"json": SMALL_SPEC, "headers": {"Idempotency-Key": "k" * 201}}, "idempotency-key"),
    ],
    ids=["malformed json", "not an object", "idempotency key too long"],
)
def test_malformed_submissions_are_422(
    api: Api, request_kwargs: dict[str, Any], where: str
) -> None:
    _uid, alice = api.create_user("alice")
    request_kwargs = dict(request_kwargs)  # shared by both database runs
    headers = alice | request_kwargs.pop("headers", {})
    r = api.client.post("/v1/jobs", headers=headers, **request_kwargs)
    detail = assert_json_error(r, 422)
    assert any(where in [str(p).lower() for p in e["loc"]] for e in detail), detail


@pytest.mark.parametrize(
    ("content_type", "came_as"),
    [
        ("application/x-www-form-urlencoded", "it came as application/x-www-form-urlencoded"),
        ("text/plain; charset=utf-8", "it came as text/plain; charset=utf-8"),
        (None, "it came without one"),
    ],
    ids=["curl -d", "text", "no content type"],
)
def test_a_json_body_without_the_json_content_type_is_422_saying_so(
    api: Api, content_type: str | None, came_as: str
) -> None:
    """`curl -d '{...}'` sends a form content type, and FastAPI then leaves the body
    unparsed: the 422 names the header instead of "Input should be a valid dictionary"."""
    _uid, alice = api.create_user("alice")
    body = json.dumps(SMALL_SPEC).encode()
    headers = alice | ({"Content-Type": content_type} if content_type else {})
    detail = assert_json_error(api.client.post("/v1/jobs", content=body, headers=headers), 422)
    assert [(e["loc"], e["type"]) for e in detail] == [(["body"], "json_content_type")], detail
    assert detail[0]["msg"] == (
        f"the body must be JSON sent with Content-Type: application/json ({came_as})"
    )
    as_json = alice | {"Content-Type": "application/json"}
    assert api.client.post("/v1/jobs", content=body, headers=as_json).status_code == 201


def test_a_form_route_keeps_its_own_422_whatever_the_content_type(api: Api) -> None:
    # An upload is a multipart form: a JSON body there is a missing file, not a header.
    _uid, alice = api.create_user("alice")
    r = api.client.post(
        "/v1/datasets", content=b"{}", headers=alice | {"Content-Type": "text/plain"}
    )
    assert [e["loc"] for e in assert_json_error(r, 422)] == [["body", "file"]]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/jobs/abc", "job_id"),
        ("/v1/jobs/0", "job_id"),
        ("/v1/jobs/99999999999999999999999", "job_id"),
        ("/v1/jobs?cursor=abc", "cursor"),
        ("/v1/jobs?cursor=99999999999999999999", "cursor"),
        ("/v1/jobs?status=sleeping", "status"),
        ("/v1/jobs?limit=0", "limit"),
        ("/v1/jobs?limit=100000", "limit"),
        ("/v1/jobs/1/metrics?after_seq=-1", "after_seq"),
        ("/v1/jobs/1/checkpoints/0", "checkpoint_id"),
        ("/v1/users?cursor=-3", "cursor"),
        ("/v1/jobs?owner=a%00b", "owner"),  # a NUL was a 500 on PostgreSQL
        ("/v1/sweeps?owner=a%00b", "owner"),
        ("/v1/feeds/jobs?owner=a%20b", "owner"),
    ],
)
def test_bad_paths_and_queries_are_422(api: Api, path: str, field: str) -> None:
    detail = assert_json_error(api.client.get(path, headers=api.admin), 422)
    assert any(e["loc"][-1] == field for e in detail), detail


# A value of the wrong JSON type was converted: `true` became a 1-round job.
WRONG_TYPES: list[tuple[str, Any]] = [
    ("schedule.rounds", True),
    ("schedule.rounds", "10"),
    ("schedule.rounds", 10.0),
    ("schedule.batch_size", -3),  # a range error, named by its loc too
    ("schedule.batch_size", "8"),
    ("schedule.batch_size", "Full"),
    ("schedule.batch_size", 8.0),
    ("schedule.batch_size", True),
    ("optimizer.lr", "1e-3"),
    ("optimizer.amsgrad", 1),
    ("task.uniform", "yes"),
    ("model.hidden_size", False),
]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
def test_a_value_of_the_wrong_type_is_422_naming_its_field(
    api: Api, field: str, value: Any
) -> None:
    _uid, alice = api.create_user("alice")
    detail = assert_json_error(
        api.client.post("/v1/jobs", json=_with(field, value), headers=alice), 422
    )
    # One error, at the field (batch_size, an int or "full", gave one per choice).
    loc = ["body", *field.split(".")]
    assert [e["loc"] for e in detail] == [loc], detail
    assert not detail[0]["msg"].startswith("Value error"), detail  # batch_size's validator


def test_a_field_a_body_does_not_take_is_422_naming_the_fields_there(api: Api) -> None:
    """A misspelt field: the near one and the fields at its place, as a sweep's paths
    say (a walkthrough: `schedule: {batchsize: 16}` and `--quota max_runing_jobs=2`
    answered only "Extra inputs are not permitted")."""
    _uid, alice = api.create_user("alice")
    spec = {**SMALL_SPEC, "schedule": {"rounds": 5, "batchsize": 8}, "colour": "red"}
    errors = assert_json_error(api.client.post("/v1/jobs", json=spec, headers=alice), 422)
    said = {tuple(e["loc"]): e["msg"] for e in errors}
    assert said[("body", "schedule", "batchsize")].startswith(
        "Extra inputs are not permitted; did you mean 'batch_size'? (fields here: batch_size, "
    )
    assert said[("body", "colour")].startswith(
        "Extra inputs are not permitted (fields here: aggregation, distributed, "
    )
    quota = {"name": "carol", "quota": {"max_runing_jobs": 2}}
    [error] = assert_json_error(api.client.post("/v1/users", json=quota, headers=api.admin), 422)
    assert "did you mean 'max_running_jobs'?" in error["msg"]


def test_common_first_mistakes_are_answered_with_what_to_send(api: Api) -> None:
    """A token sent without "Bearer ", a builtin dataset of another task (a walkthrough:
    the answers did not say what was expected)."""
    _uid, alice = api.create_user("alice")
    bare = {"Authorization": alice["Authorization"].removeprefix("Bearer ")}
    missing = api.client.get("/v1/jobs", headers=bare)
    assert missing.status_code == 401
    assert '"Authorization: Bearer <token>"' in missing.json()["detail"]
    spec = {**SMALL_SPEC, "task": {"kind": "char_lm", "dataset": "builtin:digits"}}
    errors = assert_json_error(api.client.post("/v1/jobs", json=spec, headers=alice), 422)
    [said] = [e["msg"] for e in errors if e["loc"] == ["body", "task", "dataset"]]
    assert "char_lm's: builtin:shakespeare; or an upload" in said, said


def test_numbers_a_float_takes_and_the_batch_sizes_it_knows_still_pass(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    spec = _with("optimizer.lr", 1) | {"distributed": {"workers": 1, "cpus_per_worker": 2}}
    for batch_size in (8, "full"):
        body = spec | {"schedule": {"rounds": 5, "batch_size": batch_size}}
        r = api.client.post("/v1/jobs", json=body, headers=alice)
        assert r.status_code == 201, r.text
        job = r.json()["spec"]
        assert (job["optimizer"]["lr"], job["schedule"]["batch_size"]) == (1.0, batch_size)


def test_admin_bodies_refuse_wrong_types_too(api: Api) -> None:
    user_id, _alice = api.create_user("alice")
    for body, field in (
        ({"disabled": "yes"}, ["body", "disabled"]),
        ({"quota": {"max_cpus": "4"}}, ["body", "quota", "max_cpus"]),
        ({"quota": {"max_queued_jobs": True}}, ["body", "quota", "max_queued_jobs"]),
    ):
        r = api.client.patch(f"/v1/users/{user_id}", json=body, headers=api.admin)
        assert [e["loc"] for e in assert_json_error(r, 422)] == [field], body
    users = api.client.get("/v1/users", headers=api.admin).json()["data"]
    [alice] = [u for u in users if u["id"] == user_id]
    assert alice["disabled"] is False and alice["quota"]["max_queued_jobs"] is not True


def test_bad_last_event_id_is_422(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    r = api.client.get(f"/v1/jobs/{job_id}/events", headers=alice | {"Last-Event-ID": "seventeen"})
    detail = assert_json_error(r, 422)
    assert detail[0]["loc"] == ["header", "last-event-id"]


def test_bad_user_creation_is_4xx(api: Api) -> None:
    for body in ({"name": ""}, {"name": "has space"}, {"name": "x", "role": "root"}, {"nam": "x"}):
        assert_json_error(api.client.post("/v1/users", json=body, headers=api.admin), 422)
    api.create_user("carol")
    detail = assert_json_error(
        api.client.post("/v1/users", json={"name": "carol"}, headers=api.admin), 409
    )
    assert "carol" in detail


def test_a_user_name_is_one_user_whatever_its_case(api: Api) -> None:
    """`Carol` beside `carol` was a second account (migration 0009): now a 409 naming
    the one that exists, and an admin's ?owner= finds carol's jobs however typed."""
    _carol_id, carol = api.create_user("carol")
    job_id = api.submit(carol)
    detail = assert_json_error(
        api.client.post("/v1/users", json={"name": "CaRoL"}, headers=api.admin), 409
    )
    assert "'CaRoL' already exists (as 'carol'" in detail
    for typed in ("carol", "CAROL"):
        for route in ("/v1/jobs", "/v1/sweeps"):
            listed = api.client.get(route, params={"owner": typed}, headers=api.admin)
            assert listed.status_code == 200, listed.text
        jobs = api.client.get("/v1/jobs", params={"owner": typed}, headers=api.admin).json()
        assert [job["id"] for job in jobs["data"]] == [job_id]


def test_oversized_bodies_are_413(make_api: MakeApi) -> None:
    api = make_api(max_request_bytes=2048)
    _uid, alice = api.create_user("alice")
    big = SMALL_SPEC | {"name": "n" * 4000}
    declared = api.client.post("/v1/jobs", json=big, headers=alice)
    assert "larger than 2048" in assert_json_error(declared, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        payload = json.dumps(big).encode()
        for i in range(0, len(payload), 512):
            yield payload[i : i + 512]

    streamed = api.client.post(
        "/v1/jobs", content=chunks(), headers=alice | {"Content-Type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert_json_error(streamed, 413)
    # The limit is on size only: a small body still works afterwards.
    assert api.client.post("/v1/jobs", json=SMALL_SPEC, headers=alice).status_code == 201


def test_unexpected_errors_become_a_bare_500(settings: Any) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app

    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
        assert assert_json_error(r, 500) == "internal server error"
        assert "hunter2" not in r.text
        assert assert_json_error(client.get("/no/such/route"), 404) == "Not Found"


def _raw(body: dict[str, Any], **tokens: str) -> bytes:
    """`body` as JSON with placeholders swapped for text json.dumps will not write:
    NaN / Infinity (Python's parser reads them) and escapes such as a lone surrogate."""
    text = json.dumps(body)
    for placeholder, raw in tokens.items():
        text = text.replace(f'"{placeholder}"', raw)
    return text.encode()


NOT_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("number", NOT_JSON_NUMBERS)
def test_nan_and_infinity_are_422_naming_the_field_on_every_body(api: Api, number: str) -> None:
    """A 422 echoes the rejected input, and a JSON response cannot hold NaN: without
    care the error answer itself failed, as a 500. Nothing is stored."""
    from tests.api.conftest import SMALL_SWEEP

    uid, alice = api.create_user("alice")
    json_body = {"Content-Type": "application/json"}
    cases = [
        ("POST", "/v1/jobs", _with("optimizer.lr", "X"), alice, "optimizer.lr"),
        ("POST", "/v1/jobs", _with("model.dropout", "X"), alice, "model.dropout"),
        (
            "POST",
            "/v1/sweeps",
            SMALL_SWEEP
            | {"parameters": {"optimizer.lr": {"type": "float", "low": "X", "high": 1}}},
            alice,
            "parameters.optimizer.lr.low",
        ),
        ("PATCH", f"/v1/users/{uid}", {"share": "X"}, api.admin, "share"),
    ]
    for method, path, body, who, field in cases:
        r = api.client.request(method, path, content=_raw(body, X=number), headers=who | json_body)
        detail = assert_json_error(r, 422)
        assert _field_named(detail, field), (path, detail)
    assert api.client.get("/v1/jobs", headers=alice).json()["data"] == []
    assert api.client.get("/v1/sweeps", headers=alice).json()["data"] == []


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (r'"bad \u0000 name"', "NUL"),
        (r'"bad \ud800 name"', "surrogate"),
        # What a terminal obeys: an admin's `lagtrain jobs` lists every user's names.
        (r'"\u001b]0;pwned\u0007\u001b[2J name"', "control characters (U+001B at position 0)"),
        (r'"bad \u009b name"', "control characters (U+009B at position 4)"),
        # What reorders a line: "evil\u202etxt.exe" reads as "evilexe.txt".
        (r'"evil\u202etxt.exe"', "control characters (U+202E at position 4)"),
        (r'"a\u2066b"', "control characters (U+2066 at position 1)"),
    ],
)
def test_text_no_store_can_keep_nor_terminal_show_is_422_naming_the_field(
    api: Api, raw: str, why: str
) -> None:
    """PostgreSQL's text refuses NUL (SQLite keeps it: the stores must not differ), and
    a lone UTF-16 surrogate is not UTF-8 at all: both were 500s. Control characters
    were stored and reached other people's terminals."""
    from tests.api.conftest import SMALL_SWEEP

    _uid, alice = api.create_user("alice")
    headers = alice | {"Content-Type": "application/json"}
    for path, body in (("/v1/jobs", SMALL_SPEC), ("/v1/sweeps", SMALL_SWEEP)):
        r = api.client.post(path, content=_raw(body | {"name": "X"}, X=raw), headers=headers)
        detail = assert_json_error(r, 422)
        assert detail[0]["loc"] == ["body", "name"] and why in detail[0]["msg"], detail
    assert api.client.get("/v1/jobs", headers=alice).json()["data"] == []
    # Ordinary unicode, astral plane included, is stored and given back as sent.
    named = api.client.post("/v1/jobs", json=SMALL_SPEC | {"name": "Ünïcode ✓ 😀"}, headers=alice)
    assert named.status_code == 201 and named.json()["name"] == "Ünïcode ✓ 😀", named.text


def test_a_json_body_that_names_a_key_twice_is_422_and_nothing_is_stored(api: Api) -> None:
    """Python's json keeps the last of a repeated key: the user's rounds were dropped
    without a word and the job ran the default. Every JSON body route refuses it."""
    from tests.api.conftest import SMALL_SWEEP

    uid, alice = api.create_user("alice")
    headers = alice | {"Content-Type": "application/json"}
    spec = json.dumps(SMALL_SPEC)[:-1]
    cases = [
        ("POST", "/v1/jobs", spec + ', "schedule": {"seed": 1}}', alice, "schedule"),
        (
            "POST",
            "/v1/jobs",
            spec.replace('"rounds": 5', '"rounds": 5, "rounds": 7') + "}",
            alice,
            "rounds",
        ),
        ("POST", "/v1/sweeps", json.dumps(SMALL_SWEEP)[:-1] + ', "trials": 1}', alice, "trials"),
        ("PATCH", f"/v1/users/{uid}", '{"share": 2, "share": 3}', api.admin, "share"),
        ("POST", "/v1/users", '{"name": "bob", "name": "carol"}', api.admin, "name"),
        (
            "POST",
            "/v1/tokens",
            '{"expires_in_days": 1, "expires_in_days": 9}',
            alice,
            "expires_in_days",
        ),
        ("POST", "/ui/parse-spec", '{"text": "a", "text": "b"}', alice, "text"),
    ]
    for method, path, body, who, key in cases:
        r = api.client.request(
            method, path, content=body, headers=who | {"Content-Type": "application/json"}
        )
        [error] = assert_json_error(r, 422)
        assert error["loc"] == ["body"], (path, error)
        assert f"names the key {key!r} twice" in error["msg"], (path, error)
    assert api.client.get("/v1/jobs", headers=alice).json()["data"] == []
    assert api.client.get("/v1/sweeps", headers=alice).json()["data"] == []
    me = api.client.get("/v1/users/me", headers=alice).json()
    assert me["share_weight"] == 1.0
    # A bad token is still named first (401 before 422), and one key per object is fine.
    bad_token = {"Authorization": "Bearer " + "x" * 40, "Content-Type": "application/json"}
    r = api.client.post("/v1/jobs", content=cases[0][2], headers=bad_token)
    assert r.status_code == 401, r.text
    assert (
        api.client.post("/v1/jobs", content=json.dumps(SMALL_SPEC), headers=headers).status_code
        == 201
    )


def test_json_nested_too_deeply_is_a_422_not_a_500(api: Api) -> None:
    """Python's JSON parser recurses once per level: 200 000 `[` in a body was a
    RecursionError, a 500 and a traceback in the log, for anyone, with or without a
    token. Now a 422 on every JSON body route; the submit route still names a bad
    token first (401)."""
    from tests.api.conftest import SMALL_SWEEP

    uid, alice = api.create_user("alice")
    json_type = {"Content-Type": "application/json"}
    # From ~450 levels the 422 that echoes the input failed the same way (a 500).
    for depth in (500, 33):
        spec = json.dumps(SMALL_SPEC)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
        [error] = assert_json_error(
            api.client.post("/v1/jobs", content=spec, headers=alice | json_type), 422
        )
        assert error["msg"] == "JSON nested deeper than 32 levels", depth
    deep = '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}"
    for method, path, who in [
        ("POST", "/v1/jobs", alice),
        ("POST", "/v1/sweeps", alice),
        ("PATCH", f"/v1/users/{uid}", api.admin),
        ("POST", "/v1/users", api.admin),
        ("POST", "/v1/tokens", alice),
        ("POST", "/ui/parse-spec", alice),
    ]:
        r = api.client.request(method, path, content=deep, headers=who | json_type)
        [error] = assert_json_error(r, 422)
        assert (error["loc"], error["msg"]) == (["body"], "JSON nested deeper than 32 levels"), path
    bad_token = {"Authorization": "Bearer " + "x" * 40} | json_type
    assert api.client.post("/v1/jobs", content=deep, headers=bad_token).status_code == 401
    for path, body in [("/v1/jobs", SMALL_SPEC), ("/v1/sweeps", SMALL_SWEEP)]:
        assert api.client.post(path, json=body, headers=alice).status_code == 201
