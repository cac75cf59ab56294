"""Checkpoints an attempt recorded, with files whose sha256 verifies: what a resume
chooses from (tests/workers/test_checkpoint_fencing.py, test_attempt_start_reads.py)."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from service.artifacts import checkpoint_url, write_file
from service.store.attempts import ClaimedJob
from service.store.checkpoints import record_checkpoint


def record_checkpoints(
    session: Session, artifacts_url: str, claimed: ClaimedJob, rounds: tuple[int, ...]
) -> None:
    """A checkpoint after each of `rounds`, its file written and its row recorded
    under the claimed attempt's token."""
    for round_ in rounds:
        data = f"state after round {round_}".encode()
        uri = checkpoint_url(artifacts_url, claimed.job_id, round_, claimed.attempt)
        write_file(uri, data)
        record_checkpoint(
            session=session,
            job_id=claimed.job_id,
            token=claimed.fencing_token,
            round=round_,
            seq=round_ + 1,
            uri=uri,
            sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data),
        )
