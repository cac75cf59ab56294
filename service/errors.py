"""Domain errors raised by the store and services; the API maps them to HTTP in one
place (NotFound -> 404, Conflict and its subclasses -> 409, ArtifactsUnavailable -> 503)."""

from __future__ import annotations


class LagtrainError(Exception):
    """Base of every domain error; the message is safe to show to the client."""


class NotFound(LagtrainError):
    """The object does not exist (or the caller may not see it)."""


class Conflict(LagtrainError):
    """The request contradicts the stored state."""


class IdempotencyConflict(Conflict):
    """The Idempotency-Key was already used with a different request body."""


class InvalidTransition(Conflict):
    """A job status change that the lifecycle forbids (terminal states never change)."""


class StaleLease(Conflict):
    """A dispatcher wrote with a fencing token that is no longer the job's current one."""


class SequenceGap(Conflict):
    """A metric batch does not continue the job's metric sequence without a gap."""


class QuotaExceeded(LagtrainError):
    """The caller's quota (or a per-user limit) does not allow this now; the message
    names the quota."""


class ArtifactsUnavailable(LagtrainError):
    """The artifacts location refused a file (full, read-only, unreachable): the
    request may succeed once an operator has made room."""
