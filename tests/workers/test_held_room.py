"""The maintenance's packing question is advice to the claim (workers.held_room): a
failure of its own is logged and the names it had stay; a store outage goes up to the
dispatcher's loop, which rides it (and counts it for the reaper's grace)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from service.schemas.node_fit import ClusterRoom, NodeShape
from tests.workers.dispatcher_seams import GiB, dispatcher_store
from workers import held_room
from workers.held_room import name_unpackable

ROOM = ClusterRoom(10.0, 0.0, (NodeShape(5.0, 0.0, 64 * GiB),) * 2)


def test_its_own_failure_keeps_the_names_and_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings, sessions = dispatcher_store(tmp_path)

    def broken(**_: Any) -> tuple[int, ...]:
        raise ValueError("a spec this version cannot read")

    monkeypatch.setattr(held_room, "holds_that_cannot_pack", broken)
    with caplog.at_level(logging.WARNING, logger="workers.held_room"):
        room, named = name_unpackable(sessions, ROOM, settings, (7, 9))
    assert named == (7, 9) and room is not None and room.unplaceable == (7, 9)
    assert "could not test the jobs that would hold the room" in caplog.text


def test_a_store_outage_goes_to_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, sessions = dispatcher_store(tmp_path)

    def locked(**_: Any) -> tuple[int, ...]:
        raise sqlalchemy.exc.OperationalError(
            "SELECT", {}, sqlite3.OperationalError("database is locked")
        )

    monkeypatch.setattr(held_room, "holds_that_cannot_pack", locked)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        name_unpackable(sessions, ROOM, settings, (7,))
