"""Client commands for what a user stores: upload, datasets, delete-dataset,
delete-checkpoints, and usage (quota in force against what counts towards it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from service.cli_common import binary_size, call, console, each_id, when
from service.cli_sizes import size_and_bytes

data_app = typer.Typer(add_completion=False)


@data_app.command()
def upload(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    fmt: str | None = typer.Option(
        None, "--format", help="text or csv (default: from the file name)"
    ),
) -> None:
    """Upload a text or CSV dataset; prints the reference to put in a spec."""
    dataset = call(lambda client: client.upload_dataset(file, fmt=fmt))
    console.print(
        f"dataset {dataset['id']}: {dataset['ref']}, {dataset['format']}, "
        f"{size_and_bytes(dataset['bytes'])}",
        highlight=False,
    )


@data_app.command()
def datasets() -> None:
    """List your uploads (admins see everyone's)."""
    rows = call(lambda client: client.datasets())
    table = Table("id", "ref", "owner", "file", "format", "size", "contents", "uploaded (UTC)")
    for d in rows:
        table.add_row(
            str(d["id"]),
            d["ref"],
            d["owner"],
            d["filename"],
            d["format"],
            binary_size(d["bytes"]),
            contents(d.get("shape")),
            when(d["created_at"]),
        )
    console.print(table)


def contents(shape: dict[str, Any] | None) -> str:
    """An upload's shape as the dashboard's Data page writes it (data.js contents):
    "1,797 rows, 65 columns, 10 classes", "1,519,392 chars, 80 distinct"; "" for an
    upload stored before shapes were kept. Labels that are not integers say so: no
    sequence_classification spec can use that CSV."""
    if shape is None:
        return ""
    if "rows" in shape:
        grid = f"{_count(shape['rows'], 'row')}, {_count(shape['columns'], 'column')}"
        if not shape["integer_labels"]:
            return f"{grid}, labels not integers"
        return f"{grid}, {_count(shape['classes'], 'class', 'classes')}"
    return f"{_count(shape['chars'], 'char')}, {shape['distinct_chars']:,} distinct"


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number:,} {one if number == 1 else many or one + 's'}"


@data_app.command("delete-dataset")
def delete_dataset(
    dataset_ids: list[int] = typer.Argument(..., metavar="DATASET_ID..."),
) -> None:
    """Delete uploads, freeing their storage (not while an unfinished job or sweep uses one)."""
    each_id(
        lambda client, one: client.delete_dataset(one), dataset_ids, "dataset {} deleted".format
    )


@data_app.command("delete-checkpoints")
def delete_checkpoints(job_ids: list[int] = typer.Argument(..., metavar="JOB_ID...")) -> None:
    """Delete finished jobs' checkpoints, freeing their storage (metrics stay)."""
    each_id(
        lambda client, one: client.delete_checkpoints(one),
        job_ids,
        "checkpoints of job {} deleted".format,
    )


@data_app.command()
def usage() -> None:
    """Your quotas and what counts against them.

    Storage reads "1.2 GiB (1,288,490,188 bytes)": readable, and the exact count that
    `--quota max_storage_bytes=` takes."""
    me = call(lambda client: client.me())
    quota, used = me["quota"], me["usage"]
    table = Table("quota", "used", "limit")
    table.add_row(
        "storage",
        size_and_bytes(used["storage_bytes"]),
        size_and_bytes(quota["max_storage_bytes"]),
    )
    table.add_row("queued jobs", str(used["queued_jobs"]), str(quota["max_queued_jobs"]))
    table.add_row("running jobs", str(used["running_jobs"]), str(quota["max_running_jobs"]))
    table.add_row("CPUs", f"{used['cpus']:g}", f"{quota['max_cpus']:g}")
    table.add_row("GPUs", f"{used['gpus']:g}", f"{quota['max_gpus']:g}")
    table.add_row("hours a job", "", f"{quota['max_job_hours']:g}")
    console.print(table)
