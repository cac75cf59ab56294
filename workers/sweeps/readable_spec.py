"""Sweep specs a controller cannot read — stored by a newer lagtrain during a rolling
upgrade — told once per sweep and left to a controller that can read them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from service.schemas.common import error_message
from service.schemas.sweeps import SweepSpec

log = logging.getLogger("workers.sweeps.controller")


class UnreadableSpecs:
    def __init__(self) -> None:
        self._told: set[int] = set()  # sweeps whose unreadable spec was logged

    def keep_only(self, sweep_ids: Iterable[int]) -> None:
        self._told &= set(sweep_ids)

    def spec_of(self, sweep_id: int, stored: dict[str, Any]) -> SweepSpec | None:
        """The sweep's spec, or None where this controller cannot read it: one stored
        by a newer lagtrain (a field added, during a rolling upgrade). Not failed for
        it, which left its trials open and their jobs running with nobody to watch
        them: a controller that can read it steps it, and its owner can cancel it.
        Told once per sweep, not every poll."""
        try:
            spec = SweepSpec.model_validate(stored)
        except ValidationError as exc:
            if sweep_id not in self._told:
                self._told.add(sweep_id)
                errors = exc.errors()
                first = errors[0]
                where = ".".join(str(p) for p in first["loc"]) or "spec"
                more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
                log.warning(
                    "sweep %s: left to another controller: its stored spec is not one "
                    "this version of lagtrain can read (%s: %s%s); a controller that can "
                    "read it steps it, and its owner can cancel it",
                    sweep_id,
                    where,
                    error_message(first),
                    more,
                )
            return None
        self._told.discard(sweep_id)
        return spec
