"""Playwright driving Debian's chromium (its headless shell) against pytest-django's live server.

Every page's console is watched: a CSP violation or a script error fails the test. Screenshots go
to test-artifacts/screenshots/ so a person can look at each page state.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make around it
# are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Browser, Locator, Page, sync_playwright

from tests.conftest import PASSWORD, TZ_ENV

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# JPEG at quality 85, not PNG: the text and colours read as in a PNG, and chromium encodes a
# full-page JPEG in about two thirds of a PNG's time (the browser tests are CPU-bound; a run saves
# about 170 screenshots).
SCREENSHOT_FORMAT = {"type": "jpeg", "quality": 85}
# The browser's time zone: the console shows times in it. `CONSOLE_TEST_TZ` moves it (and the
# process's local zone) elsewhere, e.g. far east (docs/testing.md).
BROWSER_TIMEZONE = os.environ.get(TZ_ENV) or "Europe/Paris"
# Debian's chromium-headless-shell when it is there (`make browser` installs it): the same engine as
# its chromium without the browser's own layers, as Playwright's headless runs use, and under half
# the CPU of the full browser in headless mode (the browser tests are CPU-bound); else chromium.
CHROMIUM = (
    os.environ.get("CHROMIUM_PATH")
    or shutil.which("chromium-headless-shell")
    or shutil.which("chromium")
    or "/usr/bin/chromium"
)
# Without these, headless chromium keeps trying to reach Google's services, which this network
# refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, started only once the test database exists. It hands the
    test's own connection to its request threads when that database is in memory, and decides so
    when it starts: started earlier (the first test of a run asking for it before the database),
    it would take the file database for ":memory:" and share, then close, the test's connection
    after every request ("Cannot operate on a closed database", a segmentation fault)."""
    return live_server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"chromium not found at {CHROMIUM}: run `make browser` "
            "(apt install chromium chromium-headless-shell)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, timezone_id=BROWSER_TIMEZONE
    )
    page = context.new_page()
    problems: list[str] = []

    def on_console(message) -> None:
        # A failure page is a 4xx/5xx document on purpose; failed sub-resources are caught below.
        # htmx logs each end of a push stream (its sseError, whose detail is the EventSource's
        # error Event): ending is how the server says "poll now" (meetings/views/push.py), and
        # the browser reconnects by itself.
        if message.type == "error" and not (
            message.text.startswith("Failed to load resource") or message.text == "[object Event]"
        ):
            problems.append(message.text)

    def on_response(response) -> None:
        if response.status == 503 and response.headers.get("retry-after"):
            return  # the console asking a live page to wait, which the page does
        if response.status >= 400 and response.request.resource_type != "document":
            problems.append(f"{response.status} for {response.url}")

    page.on("console", on_console)
    page.on("response", on_response)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.set_default_timeout(10_000)
    yield page
    context.close()
    assert not problems, f"the browser console reported: {problems}"


def save_screenshot(target: Page | Locator, name: str, **options) -> Path:
    """`target` (a page, or an element of one) saved as test-artifacts/screenshots/<name>.jpg;
    `options` are Playwright's (full_page, clip)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.jpg"
    target.screenshot(path=str(path), **SCREENSHOT_FORMAT, **options)
    return path


@pytest.fixture
def screenshot(page: Page):
    def take(name: str, target: Page | None = None) -> Path:
        return save_screenshot(target or page, name, full_page=True)

    return take


@pytest.fixture
def screenshot_light_and_dark(page: Page, screenshot):
    """Screenshots of the page as it is, `<name>-light.jpg` and `<name>-dark.jpg`: the browser
    switches its colour scheme as the system's setting changing would (prefers-color-scheme), so
    one run of a test shows both without doing it all again."""

    def take(name: str) -> None:
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            screenshot(f"{name}-{scheme}")
        page.emulate_media(color_scheme="light")

    return take


@pytest.fixture
def sign_in(page: Page, live_server):
    def sign_in_as(username: str) -> None:
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

    return sign_in_as
