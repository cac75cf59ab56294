"""How the CLI writes what a job did: a metric record's line (`watch`, `show`)."""

from __future__ import annotations

from service.schemas.metric_names import HEADLINE_METRICS


def figures(raw: dict[str, float | None]) -> str:
    """A record's values as one line: loss, uploads and bytes saved, evaluations."""
    values = {k: v for k, v in raw.items() if v is not None}  # non-finite values are null
    parts = []
    if "train_loss" in values:
        parts.append(f"loss {values['train_loss']:.4g}")
    dense, uploads = values.get("dense_equiv_uploads"), values.get("uploads_total")
    if dense and uploads is not None:
        parts.append(f"uploads {uploads:.0f}/{dense:.0f} ({1 - uploads / dense:.0%} saved)")
    # LAQ uploads nearly every round but quantized: its saving shows in bytes only.
    dense_bytes, sent = values.get("dense_equiv_bytes"), values.get("bytes_up_total")
    if dense_bytes and sent is not None:
        parts.append(f"bytes {1 - sent / dense_bytes:.0%} saved")
    for key in HEADLINE_METRICS:
        if key in values:
            parts.append(f"{key} {values[key]:.4g}")
    return "  ".join(parts)
