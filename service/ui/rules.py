"""The rules the dashboard's pages share with the API, written once in Python and
served to the pages as a JavaScript module (`GET /ui/rules.js`): the job statuses and
which are finished, a finished trial, the listing's largest pages, the headline,
baseline and byte-counted metric names, the headlines that grow as a model improves,
the audit log's actions and their prefixes. A page that needs one of these imports it
from there rather than keeping its own copy that could drift from the server's."""

from __future__ import annotations

import json
from functools import cache

from service.api.deps import MAX_METRICS_PAGE
from service.schemas.audit import AuditAction
from service.schemas.common import MAX_PAGE
from service.schemas.jobs import TERMINAL, JobStatus
from service.schemas.metric_names import (
    BASELINES,
    BYTE_METRICS,
    HEADLINE_METRICS,
    HIGHER_IS_BETTER,
)
from service.schemas.sweeps import FINISHED_TRIAL_STATUSES


def rules() -> dict[str, object]:
    return {
        "JOB_STATUSES": [status.value for status in JobStatus],
        "TERMINAL_STATUSES": sorted(TERMINAL),  # sets in the pages: order for a stable text
        "FINISHED_TRIAL_STATUSES": sorted(FINISHED_TRIAL_STATUSES),
        "MAX_PAGE": MAX_PAGE,
        "MAX_METRICS_PAGE": MAX_METRICS_PAGE,
        "HEADLINE_METRICS": list(HEADLINE_METRICS),
        "BASELINES": BASELINES,
        "HIGHER_IS_BETTER": sorted(HIGHER_IS_BETTER),
        "BYTE_METRICS": list(BYTE_METRICS),
        "AUDIT_ACTIONS": sorted(action.value for action in AuditAction),
        # What GET /v1/audit's ?action= takes as a prefix: each action's subject and dot.
        "AUDIT_PREFIXES": sorted({action.partition(".")[0] + "." for action in AuditAction}),
    }


@cache
def rules_js() -> str:
    lines = ["// Written by the server from its own rules (service/ui/rules.py): do not edit."]
    lines += [f"export const {name} = {json.dumps(value)};" for name, value in rules().items()]
    return "\n".join(lines) + "\n"
