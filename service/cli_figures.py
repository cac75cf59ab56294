"""How the CLI writes what a job did: a metric record's line (`watch`, `show`) and
the saved columns of `lagtrain jobs`, which are the dashboard's jobs list's
(docs/decisions.md: why the two clients each read the summary)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from service.schemas.metric_names import BASELINES, HEADLINE_METRICS

PERCENT_FIGURES = 3


def saved_fractions(summary: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """(uploads, bytes) a job saved against dense, as its summary carries them and the
    dashboard's jobs list reads them (dom.js bytesSaved): none without a summary (not
    ended, or no round ran), and no bytes figure from a summary whose
    dense_equiv_bytes is absent or 0 (written before it existed, or resumed from
    records without it): its bytes_saved_fraction then measures nothing."""
    if not summary:
        return None, None
    uploads = summary.get("uploads_saved_fraction")
    saved_bytes = summary.get("bytes_saved_fraction") if summary.get("dense_equiv_bytes") else None
    return uploads, saved_bytes


def percent(fraction: float | None) -> str:
    """A fraction as the dashboard writes it (dom.js percent): 3 significant figures,
    no trailing zeros, "91.8 %"; "" for none. Rounded half up, as JavaScript's
    toPrecision does (Python's own format rounds 81.25 to even, "81.2", where the
    dashboard shows 81.3)."""
    if fraction is None:
        return ""
    value = Decimal(100 * fraction)  # the double's exact value, which toPrecision rounds
    if value == 0:
        return "0 %"
    step = Decimal(1).scaleb(value.adjusted() - PERCENT_FIGURES + 1)
    rounded = value.quantize(step, rounding=ROUND_HALF_UP).normalize()
    return f"{rounded:f} %"


def figures(raw: dict[str, float | None]) -> str:
    """A record's values as one line: loss, uploads and bytes saved (as `jobs` and the
    dashboard write a percentage), evaluations."""
    values = {k: v for k, v in raw.items() if v is not None}  # non-finite values are null
    parts = []
    if "train_loss" in values:
        parts.append(f"loss {values['train_loss']:.4g}")
    dense, uploads = values.get("dense_equiv_uploads"), values.get("uploads_total")
    if dense and uploads is not None:
        parts.append(f"uploads {uploads:.0f}/{dense:.0f} ({percent(1 - uploads / dense)} saved)")
    # LAQ uploads nearly every round but quantized: its saving shows in bytes only.
    dense_bytes, sent = values.get("dense_equiv_bytes"), values.get("bytes_up_total")
    if dense_bytes and sent is not None:
        parts.append(f"bytes {percent(1 - sent / dense_bytes)} saved")
    for key in HEADLINE_METRICS:
        if key in values:
            baseline = BASELINES.get(key)
            against = f" ({baseline} {values[baseline]:.4g})" if baseline in values else ""
            parts.append(f"{key} {values[key]:.4g}{against}")
    return "  ".join(parts)
