"""Metric pages and the SSE stream (order, ids, Last-Event-ID resume, closure)."""

from __future__ import annotations

import pytest

from service.sse_text import parse_sse
from tests.api.conftest import Api


def test_metric_pages_follow_seq(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    empty = api.client.get(f"/v1/jobs/{job_id}/metrics", headers=alice).json()
    assert empty == {"data": [], "next_after_seq": 0}
    claimed = api.claim()
    api.append(claimed, range(1, 6))

    seqs: list[int] = []
    after = 0
    while True:
        page = api.client.get(
            f"/v1/jobs/{job_id}/metrics", params={"after_seq": after, "limit": 2}, headers=alice
        ).json()
        if not page["data"]:
            assert page["next_after_seq"] == after
            break
        seqs += [m["seq"] for m in page["data"]]
        after = page["next_after_seq"]
    assert seqs == [1, 2, 3, 4, 5]
    first = api.client.get(f"/v1/jobs/{job_id}/metrics", headers=alice).json()["data"][0]
    assert set(first) == {"seq", "round", "attempt", "time", "values", "uploaded"}
    assert (first["round"], first["attempt"], first["values"]) == (0, 1, {"train_loss": 1.0})
    assert first["time"].endswith("Z")


@pytest.mark.timeout(60)
def test_stream_sends_status_then_live_metrics_and_closes_after_terminal(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    with api.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=alice) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        events = parse_sse(lines)
        first = next(events)
        assert first.event == "status" and first.data["status"] == "queued"
        assert first.data["attempt"] == 0 and first.data["error"] is None

        claimed = api.claim()  # happens while the stream is open
        running = next(events)
        assert (running.event, running.data["status"]) == ("status", "running")
        assert running.data["attempt"] == 1 and running.data["time"].endswith("Z")

        api.append(claimed, range(1, 3))
        got = [next(events), next(events)]
        assert [(e.event, e.id) for e in got] == [("metrics", "1"), ("metrics", "2")]
        assert got[1].data == {
            "seq": 2,
            "round": 1,
            "attempt": 1,
            "time": got[1].data["time"],
            "values": {"train_loss": 0.5},
            "uploaded": [0],
        }

        api.append(claimed, range(3, 4))
        api.finish(claimed)
        rest = list(events)  # ends: the server closes the stream after the terminal status
    assert [(e.event, e.id) for e in rest] == [("metrics", "3"), ("status", None)]
    assert rest[-1].data["status"] == "succeeded"


@pytest.mark.timeout(60)
def test_stream_resumes_after_last_event_id(api: Api) -> None:
    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    claimed = api.claim()
    api.append(claimed, range(1, 6))
    api.finish(claimed)
    resumed = api.client.get(f"/v1/jobs/{job_id}/events", headers=alice | {"Last-Event-ID": "3"})
    events = list(parse_sse(resumed.text.splitlines()))
    # The current status first (DESIGN), and a finished job's stream ends with it too,
    # as a live one does: a client that stops at a terminal status has every metric.
    assert [(e.event, e.id) for e in events] == [
        ("status", None),
        ("metrics", "4"),
        ("metrics", "5"),
        ("status", None),
    ]
    assert events[0].data == events[-1].data and events[-1].data["status"] == "succeeded"


@pytest.mark.timeout(60)
def test_stream_of_a_failed_job_reports_the_error(api: Api) -> None:
    from service.store.attempts import fail
    from service.store.db import transaction

    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice, {"task": {"kind": "adding"}, "max_attempts": 1})
    with api.client.stream("GET", f"/v1/jobs/{job_id}/events", headers=alice) as response:
        events = parse_sse(response.iter_lines())
        assert next(events).data["status"] == "queued"
        claimed = api.claim()
        with transaction(api.sessions) as session:
            fail(
                session=session,
                job_id=job_id,
                token=claimed.fencing_token,
                reason="replica 2 died",
                retryable=False,
            )
        statuses = [e.data for e in events]
    assert [s["status"] for s in statuses] == ["running", "failed"]
    assert statuses[-1]["error"] == "replica 2 died"


def test_checkpoints_list_and_download(api: Api) -> None:
    from service.artifacts import artifact_url, write_once
    from service.store.checkpoints import record_checkpoint
    from service.store.db import transaction

    _uid, alice = api.create_user("alice")
    job_id = api.submit(alice)
    claimed = api.claim()
    payload = b"\x00weights\xff" * 1000
    uri = artifact_url(api.settings.artifacts_url, f"checkpoints/{job_id}/round-2.safetensors")
    write_once(uri, payload)
    with transaction(api.sessions) as session:
        ckpt = record_checkpoint(
            session=session,
            job_id=job_id,
            token=claimed.fencing_token,
            round=2,
            seq=0,
            uri=uri,
            sha256="a" * 64,
            bytes=len(payload),
        )
    listing = api.client.get(f"/v1/jobs/{job_id}/checkpoints", headers=alice).json()
    assert [(c["id"], c["round"], c["bytes"]) for c in listing["data"]] == [
        (ckpt.id, 2, len(payload))
    ]
    download = api.client.get(f"/v1/jobs/{job_id}/checkpoints/{ckpt.id}", headers=alice)
    assert download.status_code == 200 and download.content == payload
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].endswith('.safetensors"')
    missing = api.client.get(f"/v1/jobs/{job_id}/checkpoints/{ckpt.id + 1}", headers=alice)
    assert missing.status_code == 404
