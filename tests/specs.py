"""Resolved spec parts for tests that exercise one piece (an optimizer step, a
model): built through the resolver like every real spec, so tests never construct
a half-filled configuration by hand."""

from __future__ import annotations

from typing import Any

from service.schemas.resolve import resolve
from service.schemas.resolved import ResolvedModel, ResolvedOptimizer


def resolved_optimizer(**fields: Any) -> ResolvedOptimizer:
    return resolve({"task": {"kind": "adding"}, "optimizer": fields}).optimizer


def resolved_model(**fields: Any) -> ResolvedModel:
    return resolve({"task": {"kind": "adding"}, "model": fields}).model
