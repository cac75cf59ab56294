"""Dashboard page loads with plotly.js loaded only by the pages that draw charts (as
served) against the page before that change, which loaded it on every page (the same
server; the browser is handed the old index.html, with its plotly <script>, through
Playwright's routing). Real Chromium against a real `lagtrain server` (SQLite, no
dispatcher: the benchmark writes one job's metric records itself).

For each variant, alternating, --repeat times: a new browser context (an empty cache)
opens the sign-in page (cold: "sign-in"), signs in, then opens each page as a new
document (the browser's cache now holds the scripts, as a returning user's does):
navigation → the page's content shown (a job page, visited three times: every chart
drawn). Medians, the spread (min-max) and the ratio old / new per page.

    .venv/bin/python benchmarks/ui_page_load.py [--repeat 5] [--rounds 500]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from playwright.sync_api import Browser, Page, Route, sync_playwright

if TYPE_CHECKING:  # mypy names this directory's modules benchmarks.x (pyproject.toml)
    from benchmarks.local_stack import load_average
    from benchmarks.ui_responsiveness import CHARTS, served_job
else:  # run as `python benchmarks/ui_page_load.py`: benchmarks/ is on sys.path
    from local_stack import load_average
    from ui_responsiveness import CHARTS, served_job

APP_SCRIPT = '<script type="module" src="/ui/static/app.js"></script>'
# What index.html held before plotly was loaded by the chart pages alone.
EAGER_PLOTLY = '<script src="/ui/vendor/plotly.min.js" defer></script>\n  '


def eager_index(route: Route) -> None:
    """The served index.html with the old page's plotly <script> put back."""
    response = route.fetch()
    body = response.text()
    assert APP_SCRIPT in body, "index.html changed: update this benchmark's old page"
    route.fulfill(response=response, body=body.replace(APP_SCRIPT, EAGER_PLOTLY + APP_SCRIPT))


def timed(page: Page, url: str, ready: Callable[[Page], object]) -> float:
    page.goto("about:blank")
    start = time.perf_counter()
    page.goto(url)
    ready(page)
    return time.perf_counter() - start


def one_visit(
    browser: Browser, url: str, token: str, job_id: int, rounds: int, old: bool
) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    if old:
        context.route(lambda u: u.rstrip("/").split("#")[0] == url, eager_index)
    page = context.new_page()
    found = {"sign-in": timed(page, f"{url}/", lambda p: p.wait_for_selector("#token"))}
    page.fill("#token", token)
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")

    def charts_drawn(p: Page) -> None:
        for chart in CHARTS:
            p.wait_for_selector(f"{chart}[data-rounds='{rounds}'] .main-svg", timeout=120_000)

    # The job page three times: Chromium compiles a script from its code cache once it
    # has run it before, so the first job page of the new variant parses plotly cold
    # (the old one had run it on every page before).
    pages: dict[str, tuple[str, Callable[[Page], object]]] = {
        "jobs list": ("#/jobs", lambda p: p.wait_for_selector("#jobs-table tbody tr")),
        "submit": ("#/submit", lambda p: p.wait_for_selector("#spec-text")),
        "lab": ("#/lab", lambda p: p.wait_for_selector("#users tbody tr")),
        **{
            f"job page ({rounds} rounds), visit {n}": (f"#/jobs/{job_id}", charts_drawn)
            for n in (1, 2, 3)
        },
    }
    for name, (route, ready) in pages.items():
        found[name] = timed(page, f"{url}/{route}", ready)
    context.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="visits per variant")
    parser.add_argument("--rounds", type=int, default=500, help="the job's rounds")
    args = parser.parse_args()
    with served_job("lagtrain-page-load-", "page-load", args.rounds, random.Random(0)) as served:
        url, token, job_id = served.url, served.token, served.job_id
        runs: dict[str, list[dict[str, float]]] = {"new": [], "old": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            one_visit(browser, url, token, job_id, args.rounds, old=False)  # warm-up
            for _ in range(args.repeat):  # alternating, so neither runs on a quieter minute
                for variant, found in runs.items():
                    found.append(
                        one_visit(browser, url, token, job_id, args.rounds, variant == "old")
                    )
            browser.close()

    print(f"# dashboard page loads, {args.repeat} visits per variant ({load_average()})")
    print("| page | old: plotly on every page (s) | new: on chart pages only (s) | old / new |")
    print("|---|---|---|---|")
    for name in runs["new"][0]:
        cells = []
        for variant in ("old", "new"):
            times = [found[name] for found in runs[variant]]
            cells.append(f"{statistics.median(times):.2f} ({min(times):.2f}-{max(times):.2f})")
        ratio = statistics.median(f[name] for f in runs["old"]) / statistics.median(
            f[name] for f in runs["new"]
        )
        print(f"| {name} | {cells[0]} | {cells[1]} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
