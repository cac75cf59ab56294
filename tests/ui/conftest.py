"""Dashboard tests: real Chromium (Debian's package, driven by Playwright) against a
real `lagtrain server` and one `lagtrain worker` on the session's local Ray.

One service and one Chromium for all of them (starting a server, a worker and its
warm actors costs seconds): tests create their own users and jobs, and cancel the
long ones they start, so each test finds the cluster free. The store is a migrated
SQLite file; the API tests in tests/api cover the new routes on both databases."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    Route,
    sync_playwright,
)

from service.client import Client
from service.store.migrate import upgrade
from tests.e2e.conftest import Stack
from tests.ray_cluster import ray_address

__all__ = ["ray_address"]

# Screenshots go to the test's temporary directory; UI_SCREENSHOTS=docs/screenshots
# refreshes the ones the README shows.
SCREENSHOTS_ENV = "UI_SCREENSHOTS"
CHROMIUM = shutil.which("chromium")


# Package scope: the service ends with the last dashboard test, not idling (a polling
# dispatcher, warm actors on the shared Ray) through the rest of the session.
@pytest.fixture(scope="package")
def stack(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ui")
    url = f"sqlite:///{tmp / 'lagtrain.db'}"
    upgrade(url)
    env = {
        **{k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"},
        "LAGTRAIN_DATABASE_URL": url,
        "LAGTRAIN_ARTIFACTS_URL": str(tmp / "artifacts"),
        "LAGTRAIN_STATE_DIR": str(tmp / "state"),
        "LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "LAGTRAIN_LEASE_SECONDS": "4",
        "LAGTRAIN_HEARTBEAT_SECONDS": "0.5",
        # SQLite has no NOTIFY: the dispatcher sees a submitted job at its next poll,
        # and the sweep controller steps at its own; the tests submit a dozen of each.
        "LAGTRAIN_POLL_SECONDS": "0.2",
        "LAGTRAIN_SWEEP_POLL_SECONDS": "0.2",
        # The pages under test need jobs, not cold gangs: a job that ends cleanly hands
        # its actors (torch imported) to the next one (workers.warm_pool). Cold gangs
        # are the e2e tests' subject. 8, not 4: two jobs of 3-4 actors often end
        # together (a compare's pair), and a pool of 4 killed the surplus that the
        # next pair then started afresh (tests/ui: 64 actor starts with 4, 52 with 8).
        "LAGTRAIN_WARM_POOL_SIZE": "8",
        # At teardown a job may still be starting its gang: the worker's drain (25 s
        # by default; the drain is tests/e2e's subject) would outlast Stack.stop's wait.
        "LAGTRAIN_DRAIN_SECONDS": "2",
        # A trial whose gang the cluster cannot hold fails once the worker has watched
        # its capacity window whole (workers.capacity; 600 s by default).
        "LAGTRAIN_CAPACITY_WINDOW_SECONDS": "1",
        # A disabled user's open page is signed out within seconds (15 s by default).
        "LAGTRAIN_STREAM_AUTH_RECHECK_SECONDS": "1",
        "RAY_ADDRESS": ray_address,
        "PYTHONUNBUFFERED": "1",
    }
    service = Stack(env, tmp)
    service.start_server()
    service.start_worker()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the dashboard tests; each test gets its own context."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: `make .venv/.installed` installs it (as root)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Console:
    """The page's console errors (CSP violations among them); a test fails on any it
    did not allow."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        # 4xx answers the page handles (a bad token, a 422 it shows) still log a line.
        self.allowed = ["the server responded with a status of 4"]

    def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def allow(self, text: str) -> None:
        self.allowed.append(text)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, console: Console) -> Iterator[Page]:
    page = context.new_page()
    console.attach(page)
    yield page
    # A route handler still answering a poll when the test ends fails on a response
    # disposed with the context, and Playwright raised that into the next test's
    # set-up (fresh-clone CI at 7326efa: test_sweep_errors' handler, in
    # test_sweep_page_live's `context`). Handlers are the test's business, not the next.
    page.unroute_all(behavior="ignoreErrors")
    assert not console.unexpected(), console.errors


def sign_in(page: Page, url: str, token: str, route: str = "#/jobs") -> None:
    page.goto(f"{url}/{route}")
    page.fill("#token", token)
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")


def press(page: Page, target: Locator) -> None:
    """The mouse pressed (not yet released) on the middle of `target`: what the page
    does before `page.mouse.up()` happens between a click's two halves."""
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    assert box is not None, f"{target} is not shown"
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()


def hold(page: Page, pattern: str) -> Callable[[], None]:
    """Holds the page's requests matching `pattern`; the returned call waits for the
    first (route handlers run while Playwright waits) and sends them all on."""
    held: list[Route] = []
    page.route(pattern, lambda route: held.append(route))

    def release() -> None:
        deadline = time.monotonic() + 30
        while not held:
            assert time.monotonic() < deadline, f"the page never asked for {pattern}"
            page.wait_for_timeout(50)
        for route in held:
            route.continue_()
        page.unroute(pattern)

    return release


def new_user(stack: Stack, name: str) -> tuple[str, Client]:
    """A user and their own API client; names get a suffix (one service for every test)."""
    with stack.admin() as admin:
        created: dict[str, Any] = admin._request(
            "POST", "/v1/users", json={"name": f"{name}-{secrets.token_hex(3)}"}
        )
    return created["token"], Client(stack.url, created["token"])


def screenshot(page: Page, name: str) -> None:
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or Path(tempfile.gettempdir()) / "lagtrain-ui")
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
