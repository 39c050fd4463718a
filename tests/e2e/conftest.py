"""End-to-end fixtures: the real ASGI server (daphne), the real Celery worker
(``celery_worker_process`` from tests/conftest.py) and Debian's Chromium with a
fake webcam that plays a clip made from the test photos.

Playwright's sync API keeps an asyncio loop registered as running in the test
thread, so Django's async-safety check would refuse the test's own ORM calls
while a browser is open. ``browsers`` therefore starts Playwright lazily, after
every fixture (and every child process) is set up, and only then allows sync
ORM calls in this process. The server and the worker never get that switch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, daphne_start, free_port, has_failed, process_stop, service_env
from tests.e2e.fake_webcam import write_clip

ROOT = Path(__file__).resolve().parents[2]
# The README's images are tracked; a test run writes its screenshots into the
# ignored test-artifacts/ unless asked (`make screenshots` sets UPDATE_SCREENSHOTS=1).
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
ARTIFACT_SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


def screenshot_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the browser tests save their screenshots: docs/screenshots only with
    UPDATE_SCREENSHOTS=1, otherwise test-artifacts/screenshots."""
    return DOCS_SCREENSHOTS if environ.get("UPDATE_SCREENSHOTS") == "1" else ARTIFACT_SCREENSHOTS


SCREENSHOTS = screenshot_dir()
PASSWORD = "correct-horse-1"  # the named actors' password in tests/conftest.py
LAPTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


@pytest.fixture
def server_url(transactional_db, tmp_path, request) -> Iterator[str]:
    """``http://127.0.0.1:<port>``: daphne serving proctor.asgi against the test database."""
    port = free_port()
    log = tmp_path / "daphne.log"
    proc = daphne_start(port=port, env=service_env(), log=log)
    yield f"http://127.0.0.1:{port}"
    process_stop(proc, timeout=10)
    if has_failed(request):
        print(f"\n---- daphne log ----\n{log.read_text()[-6000:]}")


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Fake webcam clips. Chromium restarts the file each time a page opens the camera.

    ``joined``: the candidate alone for 5 s, then a second person beside them
    for 10 s, in a loop.
    """
    folder = tmp_path_factory.mktemp("clips")
    return {
        "alone": write_clip(folder / "alone.y4m", (7.4, ("obama.jpg",))),
        "joined": write_clip(folder / "joined.y4m", (5, ("obama.jpg",)), (10.2, ("obama.jpg", "biden.jpg"))),
    }


def wait_for_js(page, expression: str, arg=None, *, timeout: float = 15_000, every_ms: float = 50) -> None:
    """``page.wait_for_function`` that works under the product's CSP: Playwright builds
    that predicate with eval inside the page, which ``script-src 'self'`` (no
    'unsafe-eval') refuses, whereas ``page.evaluate`` goes through the DevTools
    protocol. Polls every ``every_ms`` until the expression is truthy."""
    import time

    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout / 1000:g} s: {expression}")
        page.wait_for_timeout(every_ms)


@dataclass
class Browsers:
    """Chromium processes, one per fake camera clip, and the pages' JS errors."""

    base_url: str
    monkeypatch: pytest.MonkeyPatch
    errors: list[str] = field(default_factory=list)
    _playwright: object = None
    _browsers: list = field(default_factory=list)

    def launch(self, clip: Path):
        if self._playwright is None:
            from playwright.sync_api import sync_playwright

            self.monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
            self._playwright = sync_playwright().start()
        browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={clip}"],
        )
        self._browsers.append(browser)
        return browser

    def context(self, browser, viewport: dict | None = None, **options):
        """A fresh browser context (cookies of its own) that records console errors
        and uncaught exceptions. ``options`` go to Playwright (``timezone_id``, ``locale``)."""
        context = browser.new_context(base_url=self.base_url, viewport=viewport or LAPTOP, **options)
        context.set_default_timeout(15_000)
        context.on("console", self._console)
        context.on("weberror", lambda err: self.errors.append(f"pageerror: {err.error}"))
        return context

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({message.location.get('url')})")

    def login(self, browser, username: str, viewport: dict | None = None, **options):
        context = self.context(browser, viewport, **options)
        page = context.new_page()
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        return page

    def close(self) -> None:
        for browser in self._browsers:
            browser.close()
        if self._playwright is not None:
            from django.db import connections

            # While Playwright runs, Django hands this thread a connection of its
            # own (its asgiref Local sees another context). Close it here, or it
            # outlives the test and blocks dropping the test database.
            connections.close_all()
            self._playwright.stop()


@pytest.fixture
def browsers(server_url, transactional_db, monkeypatch) -> Iterator[Browsers]:
    """Start Chromium with ``browsers.launch(clip)``; it is closed before the database is flushed."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pool = Browsers(base_url=server_url, monkeypatch=monkeypatch)
    try:
        yield pool
    finally:
        pool.close()
