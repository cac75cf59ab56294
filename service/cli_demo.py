"""`lagtrain demo`: the dashboard's showcase — a dense-Adam / CADA2 pair on non-IID
digits (examples/digits-*.yaml), then the URL of their comparison page."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from service import spec_yaml
from service.cli_common import api_failure, client_session, console, fail, one_line, visible
from service.client import ApiError, ClientSettings
from service.ui.assets import EXAMPLES_DIR, example_specs

demo_app = typer.Typer(add_completion=False)

# The baseline first: the comparison page measures the other against it.
DEMO_PAIR = ("digits-dense-adam", "digits-cada2")


def demo_specs(rounds: int | None) -> list[dict[str, Any]]:
    examples = example_specs()
    missing = [name for name in DEMO_PAIR if name not in examples]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)}.yaml not found in {EXAMPLES_DIR}")
    specs = [spec_yaml.load(examples[name]) for name in DEMO_PAIR]
    if rounds is not None:
        for spec in specs:
            schedule = spec.setdefault("schedule", {})
            schedule["rounds"] = rounds
            # Keep a few evaluations and a checkpoint inside a shortened run.
            schedule["eval_every"] = max(1, min(schedule.get("eval_every", rounds), rounds // 4))
            schedule["checkpoint_every"] = min(schedule.get("checkpoint_every", rounds), rounds)
    return specs


def compare_url(base_url: str, job_ids: list[int]) -> str:
    ids = ",".join(str(i) for i in job_ids)
    return f"{base_url.rstrip('/')}/#/compare?ids={ids}&baseline={job_ids[0]}"


@demo_app.command()
def demo(
    rounds: Annotated[
        int | None,
        typer.Option(
            min=4,
            help="shorten both runs (default: the examples'; a short run may show no saving)",
        ),
    ] = None,
) -> None:
    """Submit dense Adam and CADA2 on non-IID digits; print their comparison page."""
    settings = ClientSettings()
    try:
        specs = demo_specs(rounds)
    except FileNotFoundError as exc:
        raise fail(str(exc), code=2) from exc
    jobs: list[dict[str, Any]] = []
    with client_session(settings) as client:
        for spec in specs:
            try:
                job = client.submit(spec)
            except ApiError as exc:
                # The jobs made before it run on: say which, to watch or cancel them.
                if jobs:
                    made = ", ".join(str(j["id"]) for j in jobs)
                    which = "jobs" if len(jobs) > 1 else "job"
                    exc.detail = f"{one_line(exc.detail)} (already submitted: {which} {made})"
                raise api_failure(exc) from exc
            jobs.append(job)  # each printed as made: a lost connection hides none
            console.print(
                Text.assemble(
                    "job ", (str(job["id"]), "bold"), f" {visible(job['name'])} {job['status']}"
                )
            )
    full = min(int(spec["schedule"]["rounds"]) for spec in demo_specs(None))
    if rounds is not None and rounds < full:
        # A walkthrough's `--rounds 50` showed two identical columns on the page.
        console.print(
            f"Note: {rounds} rounds may show no saving yet — CADA2 skips uploads once "
            f"training settles; the examples' {full} rounds show it."
        )
    console.print("Compare them (sign in with your token) at:")
    typer.echo(compare_url(settings.url, [int(job["id"]) for job in jobs]))
