"""Dataset uploads: validated at upload, stored (a file per upload), owned."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from service.api.datasets import MULTIPART_OVERHEAD_BYTES
from service.store.db import transaction
from service.store.models import Dataset
from tests.api.conftest import Api, MakeApi, assert_json_error


def test_upload_text_and_csv_then_list_own(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    _uid, bob = api.create_user("bob")
    text = b"It was the best of times.\n"
    r = api.client.post("/v1/datasets", files={"file": ("tale.txt", text)}, headers=alice)
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["ref"] == f"upload:{ds['id']}" and ds["format"] == "text"
    assert ds["owner"] == "alice" and ds["bytes"] == len(text)
    assert ds["sha256"] == hashlib.sha256(text).hexdigest()
    [stored] = (Path(api.settings.artifacts_url) / "datasets").glob(f"{ds['sha256']}-*.txt")
    assert stored.read_bytes() == text

    csv = b"f1,f2,label\n0.5,1,0\n-2,3e-2,1\n"
    r = api.client.post(
        "/v1/datasets", files={"file": ("d.dat", csv)}, data={"format": "csv"}, headers=alice
    )
    assert r.status_code == 201 and r.json()["format"] == "csv", r.text
    api.client.post("/v1/datasets", files={"file": ("b.txt", b"bob\n")}, headers=bob)

    mine = api.client.get("/v1/datasets", headers=alice).json()
    assert [d["filename"] for d in mine["data"]] == ["tale.txt", "d.dat"]
    assert mine["next_cursor"] is None
    everyone = api.client.get("/v1/datasets", headers=api.admin).json()["data"]
    assert len(everyone) == 3


@pytest.mark.parametrize(
    ("filename", "content", "hint"),
    [
        ("empty.txt", b"", "empty"),
        ("blank.txt", b"  \n\n", "empty"),
        ("latin1.txt", "caf\u00e9".encode("latin-1"), "UTF-8"),
        ("words.csv", b"a,b\nx,y\n", "not a finite number"),
        ("ragged.csv", b"1,2\n3\n", "data row 2 (line 2) has 1 column, but data row 1"),
        # The first data row is the odd one out: both rows are named, and their lines
        # count the header and the blank line.
        (
            "short-first.csv",
            b"label,a,b\n\n1,2\n3,4,5\n",
            "CSV data row 2 (line 4) has 3 columns, but data row 1 (line 3) has 2",
        ),
        ("word.csv", b"label,a\n1,2\n3,x\n", "data row 2 (line 3), column 2: 'x' is not"),
        ("header-only.csv", b"a,b\n", "no data rows"),
        ("nan.csv", b"1,2\n3,nan\n", "not a finite number"),
        # What a walkthrough's files were: the cause named, not only the rule.
        (
            "semi.csv",
            b"1;0.1;0.2\n0;0.3;0.4\n",
            "fields are separated by commas, this one holds ';'",
        ),
        ("tabs.csv", b"1\t0.1\n0\t0.3\n", "fields are separated by commas, this one holds '\\t'"),
        (
            "windows.txt",
            "a tale\n".encode("utf-16"),
            "it is UTF-16 (starts with its byte order mark)",
        ),
    ],
)
def test_bad_datasets_are_422_at_upload(api: Api, filename: str, content: bytes, hint: str) -> None:
    _uid, alice = api.create_user("alice")
    r = api.client.post("/v1/datasets", files={"file": (filename, content)}, headers=alice)
    detail = assert_json_error(r, 422)
    assert detail[0]["loc"] == ["body", "file"] and hint in detail[0]["msg"], detail
    assert api.client.get("/v1/datasets", headers=alice).json()["data"] == []


def test_dataset_over_the_limit_is_413(make_api: MakeApi) -> None:
    api = make_api(max_dataset_bytes=4096)
    _uid, alice = api.create_user("alice")
    just_over = b"a" * 4097
    r = api.client.post("/v1/datasets", files={"file": ("big.txt", just_over)}, headers=alice)
    assert "4096" in assert_json_error(r, 413)
    far_over = b"a" * 200_000  # beyond the route's whole-body limit too
    r = api.client.post("/v1/datasets", files={"file": ("huge.txt", far_over)}, headers=alice)
    # The route's limit is the file's plus the form's envelope: the answer says so,
    # not only a byte count no setting names.
    assert assert_json_error(r, 413) == (
        f"request body larger than {4096 + MULTIPART_OVERHEAD_BYTES} bytes; a dataset file "
        f"may have 4096 bytes (LAGTRAIN_MAX_DATASET_BYTES) and its form "
        f"{MULTIPART_OVERHEAD_BYTES} more"
    )
    ok = api.client.post("/v1/datasets", files={"file": ("ok.txt", b"a" * 4096)}, headers=alice)
    assert ok.status_code == 201


def test_a_deleted_uploads_id_is_never_given_to_the_next_upload(api: Api) -> None:
    """Delete the newest upload, then upload again (another user): the new upload gets a
    new id, on SQLite too (AUTOINCREMENT, migration 0008; a plain INTEGER PRIMARY KEY
    would hand out max(id) + 1 = the deleted id). So an old spec's `upload:<id>` never
    names other data, and the audit log's `dataset:<id>` stays one object."""
    _uid, alice = api.create_user("alice")
    _uid, bob = api.create_user("bob")
    uploads = [
        api.client.post("/v1/datasets", files={"file": (n, b"some text\n")}, headers=alice)
        for n in ("a.txt", "b.txt")
    ]
    assert [r.status_code for r in uploads] == [201, 201]
    kept, deleted = (r.json() for r in uploads)
    assert api.client.delete(f"/v1/datasets/{deleted['id']}", headers=alice).status_code == 204

    r = api.client.post("/v1/datasets", files={"file": ("c.txt", b"bob's\n")}, headers=bob)
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["id"] > deleted["id"] > kept["id"]
    assert new["ref"] != deleted["ref"]
    # The deleted upload stays gone; its ref names nothing, not bob's data.
    assert_json_error(api.client.delete(f"/v1/datasets/{deleted['id']}", headers=alice), 404)
    audit = api.client.get(
        "/v1/audit", params={"target": f"dataset:{deleted['id']}"}, headers=api.admin
    ).json()["data"]
    assert sorted(e["action"] for e in audit) == ["dataset.deleted", "dataset.uploaded"]
    assert {e["actor"] for e in audit} == {"user:alice"}


def test_an_upload_the_artifacts_location_refuses_is_a_503_and_stores_nothing(
    make_api: MakeApi, tmp_path: Path
) -> None:
    """A full or read-only location at run time (the start-up probe passed): the
    client gets a 503 saying nothing was stored, not a 500; no row, no usage."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    api = make_api(artifacts_url=str(blocker / "artifacts"))
    _uid, alice = api.create_user("alice")
    r = api.client.post("/v1/datasets", files={"file": ("tale.txt", b"once\n")}, headers=alice)
    assert "nothing was stored" in assert_json_error(r, 503)
    assert api.client.get("/v1/datasets", headers=alice).json()["data"] == []
    me = api.client.get("/v1/users/me", headers=alice).json()
    assert me["usage"]["storage_bytes"] == 0, me


def test_an_upload_answers_with_its_shape_and_one_stored_without_it_with_null(api: Api) -> None:
    """The summary taken at upload (what each submit is checked against) is in the
    upload's answer and in the list; a row from before summaries were kept (migration
    0002 left them NULL) lists with `shape: null`, not an error."""
    _uid, alice = api.create_user("alice")
    text = "naïve\r\nnaïve\n".encode()  # 12 characters as the worker reads them, 6 distinct
    csv = b"label,x1,x2\n0,0.5,1\n\n2,-2,3e-2\n1,0,0\n"
    posted = [
        api.client.post("/v1/datasets", files={"file": name_and_bytes}, headers=alice)
        for name_and_bytes in (("t.txt", text), ("d.csv", csv), ("old.txt", b"some text\n"))
    ]
    assert [r.status_code for r in posted] == [201, 201, 201], [r.text for r in posted]
    text_shape = {"chars": 12, "distinct_chars": 6, "two_distinct_within": 2}
    csv_shape = {"rows": 3, "columns": 3, "integer_labels": True, "classes": 3}
    assert posted[0].json()["shape"] == text_shape
    assert posted[1].json()["shape"] == csv_shape
    old_id = posted[2].json()["id"]
    with transaction(api.sessions) as session:  # as migration 0002 left older uploads
        row = session.get(Dataset, old_id)
        assert row is not None
        row.shape = None

    listed = api.client.get("/v1/datasets", headers=alice)
    assert listed.status_code == 200, listed.text
    assert [d["shape"] for d in listed.json()["data"]] == [text_shape, csv_shape, None]
    floats = b"y,x\n0.5,1\n1.5,2\n"  # labels that are not integers: no classes
    r = api.client.post("/v1/datasets", files={"file": ("f.csv", floats)}, headers=alice)
    assert r.json()["shape"] == {"rows": 2, "columns": 2, "integer_labels": False, "classes": 0}


def test_an_upload_whose_commit_answer_was_lost_keeps_its_file(api: Api) -> None:
    """The store applied the COMMIT but the connection dropped before it said so: the
    client gets an error, and the row that did commit still has its file (it was
    removed, and every job on the listed dataset then failed)."""
    _uid, alice = api.create_user("alice")
    lost: list[bool] = []

    def inserting(session: Session, _context: Any, _instances: Any) -> None:
        if any(isinstance(row, Dataset) for row in session.new):
            session.info["dataset inserted"] = True

    def answer_lost(session: Session) -> None:
        if session.info.pop("dataset inserted", False) and not lost:
            lost.append(True)
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("connection lost"))

    event.listen(api.sessions, "before_flush", inserting)
    event.listen(api.sessions, "after_commit", answer_lost)
    try:
        r = api.client.post("/v1/datasets", files={"file": ("tale.txt", b"once\n")}, headers=alice)
    finally:
        event.remove(api.sessions, "after_commit", answer_lost)
        event.remove(api.sessions, "before_flush", inserting)
    assert lost
    assert r.status_code == 503, r.text
    with transaction(api.sessions) as session:
        [dataset] = session.scalars(select(Dataset)).all()
        uri = dataset.uri
    assert Path(uri).read_bytes() == b"once\n"


def test_an_upload_form_field_the_route_does_not_take_is_a_422_naming_it(api: Api) -> None:
    """`-F formt=csv` (a typo) was ignored: the CSV stored as text. Now a 422 at the
    field with the near name; nothing stored; a bad token is still a 401 first."""
    _uid, alice = api.create_user("alice")
    csv = b"f1,label\n0.5,0\n1.5,1\n"
    sent = {"files": {"file": ("d.dat", csv)}, "data": {"formt": "csv"}}
    [error] = assert_json_error(api.client.post("/v1/datasets", **sent, headers=alice), 422)
    assert error["loc"] == ["body", "formt"]
    assert error["msg"] == (
        "Extra inputs are not permitted; did you mean 'format'? (fields here: file, format)"
    )
    assert api.client.get("/v1/datasets", headers=alice).json()["data"] == []
    refused = api.client.post("/v1/datasets", **sent, headers={"Authorization": "Bearer x"})
    assert refused.status_code == 401
    kept = api.client.post(
        "/v1/datasets", files=sent["files"], data={"format": "csv"}, headers=alice
    )
    assert kept.status_code == 201 and kept.json()["format"] == "csv", kept.text
