"""The audit log's actions (docs/operations.md "The audit log").

No store import here, so the schema layer and the dashboard's rules
(service.ui.rules) can import these without the store."""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """Every action the server writes to the audit log: service.store.audit.record
    takes only these, the dashboard's audit page offers them (service.ui.rules), and
    the row holds the value, a plain lower-case `subject.verb` string. Each must fit
    the column (40 characters) and GET /v1/audit's `?action=` filter (lower-case
    letters, dots and underscores). The filter still takes any such text, and the API
    answers an action as plain text: rows written by another version of the server
    may name an action that is not here."""

    USER_CREATED = "user.created"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    QUOTA_CHANGED = "quota.changed"
    SHARE_CHANGED = "share.changed"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    JOB_SUBMITTED = "job.submitted"
    JOB_CANCELLED = "job.cancelled"
    JOB_DELETED = "job.deleted"
    SWEEP_SUBMITTED = "sweep.submitted"
    SWEEP_CANCELLED = "sweep.cancelled"
    SWEEP_DELETED = "sweep.deleted"
    DATASET_UPLOADED = "dataset.uploaded"
    DATASET_DELETED = "dataset.deleted"
    CHECKPOINTS_DELETED = "checkpoints.deleted"
    ARTIFACTS_ORPHANS_REMOVED = "artifacts.orphans_removed"
