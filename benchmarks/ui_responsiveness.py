"""Dashboard responsiveness on a long job, in real Chromium (Playwright) against a
real `lagtrain server` (SQLite, no dispatcher: the benchmark writes the job's metric
records into the store itself, as a dispatcher would).

A running job of ROUNDS rounds (9 replicas, evaluation every 50 rounds) gets all its
records; the job page is then opened twice: downsampled (the default: ≤ 2,000 points
per curve, ≤ 600 raster columns) and with every point and column drawn
(#…?points=all), alternating, --repeat times each; medians per mode:
  load      navigation → every record drawn on every chart;
  longest   the longest main-thread task during that (PerformanceObserver longtask);
  zoom      one Plotly relayout (a zoom) of the loss chart;
  redraw    the page's own timing of one full redraw (4 charts) after a new record;
  live      new record committed → drawn on the page (median and max of --live
            appends; the SSE poll is 0.25 s and redraws are throttled to 5/s).

    .venv/bin/python benchmarks/ui_responsiveness.py [--rounds 10000] [--live 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from playwright.sync_api import Page, sync_playwright

from service.store.attempts import ClaimedJob, claim_next
from service.store.db import make_engine, make_sessionmaker, transaction
from service.store.metrics import MetricIn, append_metrics

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import load_average, spawn_server, workspace
else:  # run as `python benchmarks/ui_responsiveness.py`: benchmarks/ is on sys.path
    from local_stack import load_average, spawn_server, workspace

BIN = Path(sys.executable).parent
REPLICAS = 9
CHARTS = ("#chart-loss", "#chart-eval", "#chart-uploads", "#chart-raster")


def records(start: int, count: int, rng: random.Random) -> list[MetricIn]:
    out = []
    uploads_total = 0
    for seq in range(start, start + count):
        r = seq - 1
        uploaded = sorted(rng.sample(range(REPLICAS), rng.randint(0, 3)))
        uploads_total += len(uploaded)
        values: dict[str, float | int | None] = {
            "train_loss": 2.0 / (1 + 0.01 * r) + 0.05 * rng.random(),
            "uploads": len(uploaded),
            "uploads_total": uploads_total,
            "dense_equiv_uploads": REPLICAS * seq,
            "bytes_up_total": 4096 * uploads_total,
        }
        if r % 50 == 0:
            values["val_loss"] = 2.0 / (1 + 0.01 * r)
        out.append(MetricIn(seq=seq, round=r, values=values, uploaded=uploaded))
    return out


def append(sessions: Any, claimed: ClaimedJob, batch: list[MetricIn]) -> None:
    with transaction(sessions) as session:
        append_metrics(
            session=session,
            job_id=claimed.job_id,
            token=claimed.fencing_token,
            attempt=claimed.attempt,
            records=batch,
        )


@dataclass
class ServedJob:
    """A `lagtrain server` with one running job whose records this process writes."""

    url: str
    token: str
    job_id: int
    sessions: Any
    claimed: ClaimedJob


@contextmanager
def served_job(prefix: str, name: str, rounds: int, rng: random.Random) -> Iterator[ServedJob]:
    """A migrated SQLite file, a server on it (no dispatcher) and a lag_paper_linreg
    job of `rounds` rounds, claimed here, with its first `rounds` records written."""
    with workspace(prefix) as (workdir, processes):
        db = f"sqlite:///{workdir / 'lagtrain.db'}"
        token = secrets.token_urlsafe(32)
        env = {
            "LAGTRAIN_DATABASE_URL": db,
            "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": token,
            "LAGTRAIN_STATE_DIR": str(workdir / "state"),
            "PATH": str(BIN),
        }
        subprocess.run(
            [str(BIN / "lagtrain"), "db", "upgrade"], env=env, check=True, capture_output=True
        )
        url = f"http://127.0.0.1:{spawn_server(processes, env)}"
        spec = {
            "name": name,
            "task": {"kind": "lag_paper_linreg"},
            "aggregation": {"strategy": "lag_wk"},
            "schedule": {"rounds": rounds},
        }
        headers = {"Authorization": f"Bearer {token}"}
        job_id = httpx.post(f"{url}/v1/jobs", json=spec, headers=headers).json()["id"]
        engine = make_engine(db)
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session:
            claimed = claim_next(
                session=session,
                dispatcher_id="bench",
                lease_seconds=3600,
                free_cpus=64,
                free_gpus=0,
            )
        assert claimed is not None and claimed.job_id == job_id
        for first in range(1, rounds + 1, 1000):
            append(sessions, claimed, records(first, min(1000, rounds + 1 - first), rng))
        try:
            yield ServedJob(url, token, job_id, sessions, claimed)
        finally:
            engine.dispose()


def drawn(page: Page, rounds: int) -> None:
    # Selectors, not wait_for_function: the page's CSP forbids evaluating strings.
    for chart in CHARTS:
        page.wait_for_selector(f"{chart}[data-rounds='{rounds}']", timeout=120_000)


def measure(page: Page, url: str, job_id: int, rounds: int, mode: str) -> dict[str, float]:
    suffix = "?points=all" if mode == "all points" else ""
    page.evaluate("window.longest = 0")
    page.goto(f"{url}/#/jobs/{job_id}{suffix}")
    start = time.perf_counter()
    drawn(page, rounds)
    load = time.perf_counter() - start
    zoom = page.evaluate(
        f"""async () => {{ const t = performance.now();
        await Plotly.relayout('chart-loss', {{'xaxis.range': [{rounds // 4}, {rounds // 2}]}});
        return performance.now() - t; }}"""
    )
    return {"load": load, "longest": page.evaluate("window.longest") / 1000, "zoom": zoom / 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--live", type=int, default=10, help="live appends to time")
    parser.add_argument("--repeat", type=int, default=3, help="page loads per mode (median)")
    args = parser.parse_args()
    rng = random.Random(0)
    with served_job("lagtrain-ui-bench-", "long-run", args.rounds, rng) as served:
        url, token, job_id = served.url, served.token, served.job_id
        sessions, claimed = served.sessions, served.claimed
        live: dict[str, list[float]] = {"downsampled": [], "all points": []}
        redraw: dict[str, list[float]] = {"downsampled": [], "all points": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.goto(f"{url}/")
            page.fill("#token", token)
            page.click("form.signin button[type=submit]")
            page.wait_for_selector("#nav:not([hidden])")
            # One document for the whole run (the dashboard routes by #hash).
            page.evaluate(
                """() => { window.longest = 0;
                new PerformanceObserver((list) => { for (const e of list.getEntries())
                  window.longest = Math.max(window.longest, e.duration); })
                  .observe({type: 'longtask'}); }"""
            )
            runs: dict[str, list[dict[str, float]]] = {"downsampled": [], "all points": []}
            for _ in range(args.repeat):  # alternating, so neither mode runs cold only
                for mode, found in runs.items():
                    found.append(measure(page, url, job_id, args.rounds, mode))
            results = {
                mode: {k: statistics.median(r[k] for r in found) for k in found[0]}
                for mode, found in runs.items()
            }
            total = args.rounds
            for mode, suffix in (("downsampled", ""), ("all points", "?points=all")):
                page.goto(f"{url}/#/jobs/{job_id}{suffix}")
                drawn(page, total)
                for _ in range(args.live):
                    start = time.perf_counter()
                    append(sessions, claimed, records(total + 1, 1, rng))
                    total += 1
                    drawn(page, total)
                    live[mode].append(time.perf_counter() - start)
                    redraw[mode].append(float(page.get_attribute(".view-job", "data-draw-ms") or 0))
            browser.close()

    print(
        f"# dashboard, job page of {args.rounds:,} rounds x {REPLICAS} replicas ({load_average()})"
    )
    print(
        "| mode | load → all drawn (s) | longest task (s) | zoom relayout (s) "
        "| one redraw (ms, median) | new record → drawn (s, median / max) |"
    )
    print("|---|---|---|---|---|---|")
    for mode, r in results.items():
        print(
            f"| {mode} | {r['load']:.2f} | {r['longest']:.2f} | {r['zoom']:.3f} "
            f"| {statistics.median(redraw[mode]):.0f} "
            f"| {statistics.median(live[mode]):.2f} / {max(live[mode]):.2f} |"
        )


if __name__ == "__main__":
    main()
