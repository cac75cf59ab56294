"""A spec that does not fit its data is a 422 at submit naming the field, never a
failure on a worker; a spec at the boundary is accepted and really builds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from service.schemas.resolve import resolve as resolve_spec
from service.schemas.resolved import ResolvedSpec
from service.store.db import transaction
from service.store.models import Dataset
from tests.api.conftest import Api, assert_json_error
from workers.training.tasks.registry import build_task

MODEL = {"cell": "rnn", "hidden_size": 4}


def _csv(rows: int, *, values: int = 4, labels: tuple[str, ...] = ("0", "1")) -> bytes:
    """A leading blank line and a header (both skipped by upload and worker alike)."""
    lines = ["", "label," + ",".join(f"x{i}" for i in range(values))]
    for row in range(rows):
        label = labels[row % len(labels)]
        lines.append(label + f",{row % 7 / 7:.3f}" * values)
    return ("\n".join(lines) + "\n").encode()


def _text(chars: int) -> bytes:
    return (("abcdefghijklmnopqrstuvwxyz " * (chars // 27 + 1))[:chars]).encode()


def _upload(api: Api, headers: dict[str, str], name: str, content: bytes) -> dict[str, Any]:
    r = api.client.post("/v1/datasets", files={"file": (name, content)}, headers=headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _rejected(api: Api, headers: dict[str, str], spec: dict[str, Any], field: str) -> str:
    """Submitting is a 422 whose loc names `field`, and no job is created."""
    detail = assert_json_error(api.client.post("/v1/jobs", json=spec, headers=headers), 422)
    named = [e for e in detail if ".".join(map(str, e["loc"][1:])) == field or field in e["msg"]]
    assert named, detail
    assert api.client.get("/v1/jobs", headers=headers).json()["data"] == []
    msg: str = named[0]["msg"]
    return msg


def _build(api: Api, job: dict[str, Any], dataset: dict[str, Any] | None = None) -> None:
    """Build the task exactly as a worker would, from the stored spec and file."""
    stored = Path(api.settings.artifacts_url) / "datasets"

    def resolve(dataset_id: str) -> Path:
        assert dataset is not None and dataset_id == str(dataset["id"])
        return next(stored.glob(f"{dataset['sha256']}-*"))

    build_task(ResolvedSpec.model_validate(job["spec"]), resolve_dataset=resolve)


def _accepted(api: Api, headers: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    r = api.client.post("/v1/jobs", json=spec, headers=headers)
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


BUILTIN_AND_GENERATED: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    # digits rows are 64 values: seq_len must divide 64
    ("digits seq_len 5", {"kind": "sequence_classification", "seq_len": 5}, {}, "task.seq_len"),
    # 1,000 characters: 100 validation characters hold one window of 64, not of 100
    (
        "shakespeare seq_len past the validation text",
        {"kind": "char_lm", "max_chars": 1_000, "seq_len": 100},
        {},
        "task.seq_len",
    ),
    # 900 training characters give (900 - 1) // 64 = 14 windows
    (
        "shakespeare too short for the workers",
        {"kind": "char_lm", "max_chars": 1_000, "seq_len": 64},
        {"workers": 15},
        "distributed.workers",
    ),
    # 64 samples: 13 held out, 51 to train
    ("adding", {"kind": "adding", "num_samples": 64}, {"workers": 52}, "distributed.workers"),
    (
        "copy_memory",
        {"kind": "copy_memory", "num_samples": 64, "seq_len": 5},
        {"workers": 52},
        "distributed.workers",
    ),
]


@pytest.mark.parametrize(
    ("case", "task", "distributed", "field"),
    BUILTIN_AND_GENERATED,
    ids=[c[0] for c in BUILTIN_AND_GENERATED],
)
def test_builtin_and_generated_misfits_are_422(
    api: Api, case: str, task: dict[str, Any], distributed: dict[str, Any], field: str
) -> None:
    _uid, alice = api.create_user("alice")
    spec = {"task": task, "model": MODEL, "distributed": distributed}
    assert f"{field}: " in _rejected(api, alice, spec, field), case


def test_builtin_and_generated_boundaries_build(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    for task, workers in [
        ({"kind": "sequence_classification", "seq_len": 16}, 4),
        ({"kind": "char_lm", "max_chars": 1_000, "seq_len": 64}, 14),
        ({"kind": "adding", "num_samples": 64, "seq_len": 4}, 51),
        ({"kind": "copy_memory", "num_samples": 64, "seq_len": 2, "copy_length": 100}, 51),
    ]:
        spec = {"task": task, "model": MODEL, "distributed": {"workers": workers}}
        _build(api, _accepted(api, alice, spec))


CSV_MISFITS: list[tuple[str, bytes, int, str]] = [
    ("width not a multiple of seq_len", _csv(20, values=6), 4, "task.seq_len"),
    ("fractional labels", _csv(20, labels=("0", "1.5")), 2, "task.dataset"),
    ("negative labels", _csv(20, labels=("0", "-1")), 2, "task.dataset"),
    ("a single class", _csv(20, labels=("0",)), 2, "task.dataset"),
    ("a label beyond the class cap", _csv(20, labels=("0", "1000000000000")), 2, "task.dataset"),
    # 10 workers: 11 rows hold out round(2.2) = 2 and leave 9
    ("too few rows for the workers", _csv(11), 2, "distributed.workers"),
]


@pytest.mark.parametrize(
    ("case", "content", "seq_len", "field"), CSV_MISFITS, ids=[c[0] for c in CSV_MISFITS]
)
def test_uploaded_csv_misfits_are_422(
    api: Api, case: str, content: bytes, seq_len: int, field: str
) -> None:
    _uid, alice = api.create_user("alice")
    ds = _upload(api, alice, "d.csv", content)
    spec = {
        "task": {"kind": "sequence_classification", "dataset": ds["ref"], "seq_len": seq_len},
        "model": MODEL,
        "distributed": {"workers": 10},
    }
    assert f"{field}: " in _rejected(api, alice, spec, field), case


def test_a_width_that_does_not_fit_the_default_seq_len_says_which_would(api: Api) -> None:
    """sequence_classification's seq_len defaults to 8 (builtin:digits' steps): an
    upload of another width is told the steps its samples can be cut into."""
    _uid, alice = api.create_user("alice")
    for values, says in (
        (12, "seq_len may be 2, 3, 4, 6, 12"),
        (7, "seq_len may be 7"),
        (3780, "seq_len may be 2, 3, 4, 5, 6, 7, 9, 10, 12, 14, 15, 18, …"),  # 47 of them
    ):
        ds = _upload(api, alice, f"w{values}.csv", _csv(20, values=values))
        spec = {"task": {"kind": "sequence_classification", "dataset": ds["ref"]}, "model": MODEL}
        message = _rejected(api, alice, spec, "task.seq_len")
        assert f"has {values} values per sample, not a multiple of seq_len 8; {says}" in message


def test_csv_rows_at_the_minimum_build_and_one_fewer_fails_on_the_worker(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    spec: dict[str, Any] = {"model": MODEL, "distributed": {"workers": 10}}
    enough = _upload(api, alice, "enough.csv", _csv(12))  # 12 - round(2.4) = 10 to train
    spec["task"] = {"kind": "sequence_classification", "dataset": enough["ref"], "seq_len": 2}
    _build(api, _accepted(api, alice, spec), enough)

    _uid, bob = api.create_user("bob")
    short = _upload(api, bob, "short.csv", _csv(11))
    spec["task"] = {"kind": "sequence_classification", "dataset": short["ref"], "seq_len": 2}
    _rejected(api, bob, spec, "distributed.workers")
    # The check is exact, not merely cautious: the worker would have failed.
    with pytest.raises(ValueError, match=re.escape("distributed.workers")):
        _build(api, {"spec": resolve_spec(spec).model_dump()}, short)


def test_text_at_the_minimum_builds_and_one_char_fewer_fails_on_the_worker(api: Api) -> None:
    # 356 characters: 35 validation, 321 training -> (321 - 1) // 16 = 20 windows;
    # 355 characters leave 320 -> 19 windows for 20 workers.
    _uid, alice = api.create_user("alice")
    spec: dict[str, Any] = {"model": MODEL, "distributed": {"workers": 20}}
    enough = _upload(api, alice, "enough.txt", _text(356))
    spec["task"] = {"kind": "char_lm", "dataset": enough["ref"], "seq_len": 16, "max_chars": 1000}
    _build(api, _accepted(api, alice, spec), enough)

    _uid, bob = api.create_user("bob")
    short = _upload(api, bob, "short.txt", _text(355))
    spec["task"] = {"kind": "char_lm", "dataset": short["ref"], "seq_len": 16, "max_chars": 1000}
    _rejected(api, bob, spec, "distributed.workers")
    with pytest.raises(ValueError, match=re.escape("distributed.workers")):
        _build(api, {"spec": resolve_spec(spec).model_dump()}, short)


def test_text_misfits_are_422(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    # \r\n counts as one character, as the worker reads it: 1,200 characters in all.
    crlf = _upload(api, alice, "crlf.txt", b"abcd\r\n" * 240)
    spec: dict[str, Any] = {"model": MODEL, "distributed": {"workers": 1}}
    spec["task"] = {"kind": "char_lm", "dataset": crlf["ref"], "seq_len": 120}
    msg = _rejected(api, alice, spec, "task.seq_len")
    assert "1200 characters" in msg, msg
    # Two distinct characters, but not within the first max_chars = 1,000.
    flat = _upload(api, alice, "flat.txt", b"a" * 1_000 + b"b" * 1_000)
    spec["task"] = {"kind": "char_lm", "dataset": flat["ref"], "seq_len": 8, "max_chars": 1_000}
    _rejected(api, alice, spec, "task.dataset")
    spec["task"]["max_chars"] = 2_000
    _build(api, _accepted(api, alice, spec), flat)


def test_uploads_without_a_recorded_shape_are_not_checked(api: Api) -> None:
    """Rows from before migration 0002 have no shape: submit cannot check them."""
    _uid, alice = api.create_user("alice")
    ds = _upload(api, alice, "old.csv", _csv(11))
    with transaction(api.sessions) as session:
        session.execute(update(Dataset).where(Dataset.id == ds["id"]).values(shape=None))
    spec = {
        "task": {"kind": "sequence_classification", "dataset": ds["ref"], "seq_len": 2},
        "model": MODEL,
        "distributed": {"workers": 10},
    }
    _accepted(api, alice, spec)
