"""Sizes in bytes as the CLI reads them where an option takes one (`--quota
max_storage_bytes=10GiB`), and prints a quota's: "1.2 GiB (1,288,490,188 bytes)",
cli_common.binary_size's figure with the exact count beside it."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from service.cli_common import binary_size

# Decimal units are powers of 1000 and binary ones of 1024, as the IEC defines them:
# "10GB" is 10,000,000,000 bytes, "10GiB" 10,737,418,240. A bare "G" or "M" is left
# out: which of the two a person meant cannot be told.
UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
UNIT_NAMES = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]+)\s*$")


class NotASize(ValueError):
    """Text that is no number of bytes; the message says what a size may be."""


def byte_count(text: str) -> int:
    """The bytes a size names: "10GiB", "500MB", "1.5 GiB", "2048 B" (units in any
    case; a fraction rounds to the nearest byte). Raises NotASize."""
    found = _SIZE.match(text)
    unit = UNITS.get(found.group(2).lower()) if found else None
    if found is None or unit is None:
        raise NotASize(
            f"{text!r} is no size: give a whole number of bytes or a number with a unit, "
            f"e.g. 500MB or 10GiB ({UNIT_NAMES})"
        )
    # Decimal: 1.1GB is 1,100,000,000 bytes, not float's 1,100,000,000.0000002.
    return int((Decimal(found.group(1)) * unit).to_integral_value(ROUND_HALF_UP))


def size_and_bytes(count: int) -> str:
    """A quota's figure: "1.2 GiB (1,288,490,188 bytes)", readable and exact (what
    `--quota max_storage_bytes=` takes back); "512 B" alone where the two are one."""
    shown = binary_size(count)
    return shown if shown == f"{count} B" else f"{shown} ({count:,} bytes)"
