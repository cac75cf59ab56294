"""What a size may be where the CLI takes one (`--quota max_storage_bytes=10GiB`):
a value that is none is one line naming the units, before any request."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.cli_sizes import NotASize, byte_count

runner = CliRunner()
# Nothing listens on the discard port: a request sent would be an error of its own.
NO_SERVER = {"LAGTRAIN_URL": "http://127.0.0.1:9", "LAGTRAIN_TOKEN": "t" * 40}


@pytest.mark.parametrize("value", ["10G", "ten GiB", "10XB", "-1GiB", "1e3MB"])
def test_a_size_that_is_none_is_one_line_naming_the_units(value: str) -> None:
    refused = runner.invoke(
        app, ["user-add", "carol", "--quota", f"max_storage_bytes={value}"], env=NO_SERVER
    )
    assert refused.exit_code == 2, (refused.output, refused.exception)
    assert refused.stdout == ""
    assert refused.stderr.strip() == (
        f"error: --quota 'max_storage_bytes={value}': {value!r} is no size: give a whole "
        "number of bytes or a number with a unit, e.g. 500MB or 10GiB (B, KB, MB, GB, TB, "
        "KiB, MiB, GiB, TiB), or 'default'"
    )


def test_only_a_size_takes_a_unit() -> None:
    refused = runner.invoke(app, ["user-add", "carol", "--quota", "max_cpus=2GiB"], env=NO_SERVER)
    assert refused.exit_code == 2
    assert "'2GiB' is no number (or 'default')" in refused.stderr


def test_byte_count_rounds_a_fraction_to_the_nearest_byte() -> None:
    assert byte_count("1.1GB") == 1_100_000_000
    assert byte_count("0.5 KiB") == 512 and byte_count(".5B") == 1
    with pytest.raises(NotASize):
        byte_count("5 bits")
