"""Real-browser tests: Debian's chromium driven by Playwright against a real daphne server on a free loopback port.

Run in their own pytest invocation (`make test-browser`): Playwright's sync API and pytest-asyncio clash in one
process. The daphne subprocess must see the test's data, so the test database is named explicitly: PostgreSQL via
TEST_DATABASE_NAME, or a SQLite file on the embedded default. Tests use `transaction=True` so rows are committed.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.conf import settings
from django.db import connection

# Playwright's sync API runs an event loop in this thread; Django would refuse the tests' own ORM calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct-horse-battery"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    browser_items = [item for item in items if here in Path(str(item.fspath)).parents]
    if not browser_items:
        return
    reason = None
    if len(browser_items) < len(items):
        # Playwright's sync API and pytest-asyncio's loops cannot share a process.
        reason = "browser tests run in their own pytest process: `make test-browser` or `pytest tests/browser`"
    elif not Path(CHROMIUM).exists() and os.environ.get("CI", "").lower() not in {"1", "true", "yes"}:
        # Outside CI a machine without chromium skips these; in CI the launch fails loudly instead.
        reason = f"needs Debian's chromium at {CHROMIUM} (`apt-get install -y chromium`; `make test-browser` does it)"
    if reason:
        for item in browser_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None, tmp_path_factory) -> None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        # An in-memory SQLite test database is invisible to the server process: use a file.
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("browser-db") / "scoreboard.sqlite3")
    elif not (db.get("TEST") or {}).get("NAME"):
        pytest.fail("Name the test database (TEST_DATABASE_NAME) so the server process can open it.")


def _database_url() -> str:
    name = connection.settings_dict["NAME"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{name}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class Server:
    """A daphne process serving the project on 127.0.0.1; stop() and start() keep the same port."""

    def __init__(self, log_path: Path) -> None:
        self.port = 0
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        # REDIS_KEY_PREFIX is inherited: the server must read the same Redis keys (boards, layer) as this process.
        self.env = os.environ | {
            "DATABASE_URL": _database_url(),
            "DEBUG": "true",
            "PYTHONUNBUFFERED": "1",
            # Every browser signs in from 127.0.0.1; the per-IP sign-in limits are tested elsewhere.
            "RATE_LIMIT_LOGIN": "1000/m",
            "RATE_LIMIT_REGISTER": "1000/m",
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> None:
        # This process binds the socket (port 0 the first time, the same port after a stop) and daphne inherits
        # it, so no other program can take the port between choosing it and listening on it.
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        command = [sys.executable, "-m", "daphne", "--fd", str(listener.fileno()), "scoreboard_project.asgi:application"]
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            pass_fds=[listener.fileno()])
        listener.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.process.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/login", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not answer within {timeout} s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def server(transactional_db, tmp_path: Path) -> Iterator[Server]:
    live = Server(tmp_path / "daphne.log")
    try:
        live.start()
        yield live
    finally:
        live.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(live.log_path, ARTIFACTS / "daphne-last.log")


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    chromium = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Each call is a separate browser profile (its own cookies): one per person in the test."""
    contexts: list[BrowserContext] = []

    def make(**options) -> BrowserContext:  # noqa: ANN003
        context = browser.new_context(**({"viewport": {"width": 1000, "height": 900}} | options))
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


def sign_in(context: BrowserContext, server: Server, username: str, *, then: str = "/") -> Page:
    """Sign in through the /login form, as a person would, and open `then`."""
    page = context.new_page()
    page.goto(f"{server.url}/login?next={then}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}{then}")
    return page


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(autouse=True)
def _fast_password_hashing() -> None:
    """Keep Django's real password hasher: the server process must verify the passwords these tests set."""


def play_via_api(server: Server, username: str, action_type_code: str) -> dict:
    """Start and complete one action for `username` through the server's JSON API (so the server broadcasts it)."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        login = http.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        started = http.post("/api/v1/users/me/actions", json={"actionType": action_type_code}, headers=headers)
        assert started.status_code == 201, started.text
        completed = http.put(f"/api/v1/users/me/actions/{started.json()['actionId']}", json={"status": "completed"},
                             headers=headers)
        assert completed.status_code == 200, completed.text
        return completed.json()
