"""ORM models: the store's tables. Migrations in migrations/versions mirror these
exactly (a test compares them). Importing this package registers every table on
Base.metadata."""

from service.store.models.base import (
    ACTIVE,
    IDS_NEVER_REUSED,
    NAMING_CONVENTION,
    TERMINAL,
    Base,
    IdType,
    JobStatus,
    UtcDateTime,
    json_safe,
    table_of,
    utcnow,
)
from service.store.models.sweeps import Sweep, SweepStatus, SweepTrial, TrialState
from service.store.models.tables import (
    ApiToken,
    AuditEvent,
    Checkpoint,
    Dataset,
    Dispatcher,
    Job,
    JobAttempt,
    JobEvent,
    Metric,
    User,
)

__all__ = [
    "ACTIVE",
    "IDS_NEVER_REUSED",
    "NAMING_CONVENTION",
    "TERMINAL",
    "ApiToken",
    "AuditEvent",
    "Base",
    "Checkpoint",
    "Dataset",
    "Dispatcher",
    "IdType",
    "Job",
    "JobAttempt",
    "JobEvent",
    "JobStatus",
    "Metric",
    "Sweep",
    "SweepStatus",
    "SweepTrial",
    "TrialState",
    "User",
    "UtcDateTime",
    "json_safe",
    "table_of",
    "utcnow",
]
