"""Real daphne processes on free loopback ports, for end-to-end tests and bench/fanout.py.

Each server gets a listening socket bound to 127.0.0.1:0 by this process and inherits it (daphne --fd), so there
is no window in which another program could take the port.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.services_available import skip_or_fail_without

BASE_DIR = Path(__file__).resolve().parent.parent


class LiveServer:
    """A server process on its own loopback port; `command()` is its command line, serving the socket `fd`."""

    name = "server"

    def command(self, fd: int, extra_args: tuple[str, ...]) -> list[str]:
        raise NotImplementedError

    def __init__(self, env: dict[str, str], *, extra_args: tuple[str, ...] = ()) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        self.port = listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"{self.name}-{self.port}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            self.command(listener.fileno(), extra_args),
            cwd=BASE_DIR, env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, pass_fds=[listener.fileno()],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        listener.close()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/api/v1/leaderboard", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} on port {self.port} not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        os.unlink(self.log.name)


class Daphne(LiveServer):
    name = "daphne"

    def command(self, fd: int, extra_args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "daphne", "--fd", str(fd), *extra_args, "scoreboard_project.asgi:application"]


class Gunicorn(LiveServer):
    """One sync worker: each request reuses the connection of the one before, as production's workers do."""

    name = "gunicorn"

    def command(self, fd: int, extra_args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "1", *extra_args,
                "scoreboard_project.wsgi:application"]


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for the database Django is connected to (the test database inside a test)."""
    user = settings_dict.get("USER") or ""
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    credentials = f"{user}{password}@" if user else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{settings_dict['NAME']}"


def live_env(**overrides: str) -> dict[str, str]:
    """The environment of servers sharing this test's PostgreSQL database and Redis. Without either the test
    skips, or fails under CI=true. The abuse limits are lifted: bursts from one address are these tests' subject,
    and tests/security covers the limits."""
    from django.conf import settings
    from django.db import connection

    if not settings.REDIS_URL or connection.vendor != "postgresql":
        skip_or_fail_without("needs PostgreSQL and Redis")
    return {
        "DATABASE_URL": database_url(connection.settings_dict), "REDIS_URL": settings.REDIS_URL,
        "RATE_LIMITS_ENABLED": "false", "SUSPICION_MIN_DURATION_STREAK": "0", "SUSPICION_WINDOW_POINTS": "0",
        # Counts held by a killed server linger until its heartbeat lapses; they must not refuse the next sockets.
        "MAX_CONNECTIONS_PER_IP": "1000000",
        **overrides,
    }


@contextmanager
def daphne_pair(env: dict[str, str]) -> Iterator[list[Daphne]]:
    """Two ready daphne processes (A and B); their output is printed when the test fails."""
    pair = [Daphne(env), Daphne(env)]
    try:
        for server in pair:
            server.wait_ready()
        yield pair
    finally:
        for name, server in zip("AB", pair):
            print(f"--- daphne {name} (shown when a test fails) ---\n{server.output()}")
            server.stop()
