"""The production stack (deploy/stack.py) for real: nginx -> gunicorn (HTTP) + daphne (/ws/, SSE), DEBUG off,
against the suite's PostgreSQL and Redis.

- a completion served by a gunicorn (WSGI) worker reaches a WebSocket viewer and an SSE viewer on daphne;
- SIGTERM: the WebSocket gets close code 1001 ("going away"), and the live-connection counts are given back;
- static files come from WhiteNoise after collectstatic;
- with a live port, the daphne processes also serve WebSockets straight (for a load balancer), and close them with
  1001 on SIGTERM too.
"""

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from deploy.stack import BASE_DIR, Stack, free_port
from tests.live_servers import live_env

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
]


@contextmanager
def running_stack(env: dict | None = None, **options) -> Iterator[Stack]:
    # Its own Redis key prefix (boards, counters, layer), deleted afterwards.
    prefix = f"stack-test-{secrets.token_hex(6)}"
    env = live_env(
        REDIS_KEY_PREFIX=prefix, DEBUG="false", SECRET_KEY=secrets.token_urlsafe(60), SECURE_SSL_REDIRECT="false",
        JWT_SIGNING_KEY=django_settings.SIMPLE_JWT["SIGNING_KEY"], LOG_LEVEL="WARNING", **(env or {}),
    )
    running = Stack(mode="split", env=env, **options)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        print(f"--- stack logs (shown when a test fails) ---\n{running.output()}")
        running.cleanup()
        client = redis.Redis.from_url(django_settings.REDIS_URL)
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)


@pytest.fixture
def stack(django_db_setup, django_db_blocker):
    with running_stack(wsgi_workers=2, asgi_processes=1) as running:
        yield running


def open_connections(stack: Stack, scope: str, value: object) -> int:
    """A live-connection count as the servers keep it: a hash of per-process counts under Django's Redis cache key
    (prefix, version, key)."""
    shares = redis.Redis.from_url(django_settings.REDIS_URL).hvals(f"{stack.env['REDIS_KEY_PREFIX']}:rl:1:conn:{scope}:{value}")
    return sum(int(share) for share in shares)


def token(user) -> str:
    return str(AccessToken.for_user(user))


async def first_board(socket) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 10))
        if message["type"] == "top_scores_update":
            return message


async def stop_and_expect_going_away(stack: Stack, sockets: list) -> None:
    """SIGTERM the stack: every process exits 0 and every socket gets close code 1001."""
    codes = await asyncio.to_thread(stack.stop)
    assert all(code == 0 for code in codes.values()), codes
    for socket in sockets:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


async def sse_events(stack: Stack, user, found: list[dict], stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("GET", f"{stack.url}/api/v1/leaderboard/stream", headers=headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    found.append(json.loads(line[6:]))
                if stop.is_set():
                    return


@pytest.mark.asyncio
async def test_completion_on_a_wsgi_worker_reaches_websocket_and_sse_viewers(stack, alice, bob, quick_type):
    found: list[dict] = []
    stop = asyncio.Event()
    sse = asyncio.create_task(sse_events(stack, bob, found, stop))
    async with ws_connect(f"{stack.ws_url}/ws/scoreboard?token={token(bob)}") as socket:
        assert (await first_board(socket))["payload"] == []
        async with httpx.AsyncClient(base_url=stack.url, headers={"Authorization": f"Bearer {token(alice)}"}) as api:
            started = await api.post("/api/v1/users/me/actions", json={"actionType": "quick"})
            assert started.status_code == 201, started.text
            done = await api.put(f"/api/v1/users/me/actions/{started.json()['actionId']}", json={"status": "completed"})
            assert done.status_code == 200, done.text
            assert done.json()["score"] == 10
        board = await first_board(socket)
        assert [(row["username"], row["score"]) for row in board["payload"]] == [("alice", 10)]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(event["data"] for event in found):
        await asyncio.sleep(0.1)
    stop.set()
    sse.cancel()
    assert [(row["username"], row["score"]) for row in found[-1]["data"]] == [("alice", 10)]


@pytest.mark.asyncio
async def test_sigterm_closes_websockets_with_going_away_and_releases_their_counts(stack, alice):
    sockets = [await ws_connect(f"{stack.ws_url}/ws/scoreboard?token={token(alice)}") for _ in range(2)]
    for socket in sockets:
        await first_board(socket)
    found: list[dict] = []
    sse = asyncio.create_task(sse_events(stack, alice, found, asyncio.Event()))
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert found, "the SSE snapshot"
    assert open_connections(stack, "user", alice.pk) == 3
    assert open_connections(stack, "ip", "127.0.0.1") == 3

    await stop_and_expect_going_away(stack, sockets)
    await asyncio.wait_for(sse, 10)  # the stream ended cleanly (no error from the client)
    assert open_connections(stack, "user", alice.pk) == 0
    assert open_connections(stack, "ip", "127.0.0.1") == 0


def test_static_files_and_pages_with_debug_off(stack):
    page = httpx.get(f"{stack.url}/")
    assert page.status_code == 200
    css = next(part.split('"')[0] for part in page.text.split('href="')[1:] if ".css" in part.split('"')[0])
    assert css.startswith("/static/") and css != "/static/scores/board.css"  # hashed by the manifest storage
    asset = httpx.get(f"{stack.url}{css}")
    assert asset.status_code == 200 and "max-age=315360000" in asset.headers["cache-control"]
    assert httpx.get(f"{stack.url}/healthz").json() == {"status": "ok"}


@pytest.mark.asyncio
async def test_a_live_port_serves_websockets_straight_from_the_daphne_processes(django_db_setup, alice, bob, quick_type):
    with running_stack(wsgi_workers=1, asgi_processes=2, live_port=free_port()) as stack:
        bobs = token(bob)
        sockets = [await ws_connect(f"{stack.live_url}/ws/scoreboard?token={bobs}") for _ in range(4)]
        for socket in sockets:
            assert (await first_board(socket))["payload"] == []
        refused = httpx.get(f"{stack.live_url.replace('ws:', 'http:')}/api/v1/leaderboard/stream?period=x&token={bobs}")
        assert refused.status_code == 400
        async with httpx.AsyncClient(base_url=stack.url, headers={"Authorization": f"Bearer {token(alice)}"}) as api:
            started = await api.post("/api/v1/users/me/actions", json={"actionType": "quick"})
            done = await api.put(f"/api/v1/users/me/actions/{started.json()['actionId']}", json={"status": "completed"})
            assert done.status_code == 200, done.text
        for socket in sockets:
            board = await first_board(socket)
            assert [(row["username"], row["score"]) for row in board["payload"]] == [("alice", 10)]

        await stop_and_expect_going_away(stack, sockets)
        assert bobs not in stack.output()  # no server logs a token from a query string


def test_a_backend_that_is_down_gets_a_json_503_and_nginx_does_not_log_the_token(stack, alice):
    """nginx's error lines quote the request line, query string included, so it logs only critical errors."""
    secret = token(alice)
    for daphne in stack.daphnes:
        daphne.kill()
        daphne.wait(timeout=10)
    for path in ("/ws/scoreboard", "/api/v1/leaderboard/stream"):
        refused = httpx.get(f"{stack.url}{path}?token={secret}", timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "service_unavailable"
        assert refused.json()["error"]["details"]["dependency"] == "backend"
    assert httpx.get(f"{stack.url}/healthz", timeout=10).status_code == 200  # gunicorn still serves
    stack.stop()
    assert secret not in stack.output()


def test_a_restart_does_not_sum_the_previous_runs_metrics(django_db_setup, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    previous_run = (
        "from scoreboard_project import metrics; "
        "metrics.WEBSOCKETS_OPEN.inc(5); metrics.count_completion('quick', 70)"
    )
    subprocess.run([sys.executable, "-c", previous_run], check=True, cwd=BASE_DIR,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    assert list(metrics_dir.glob("*.db"))
    with running_stack(env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, wsgi_workers=1, asgi_processes=1) as stack:
        scraped = httpx.get(f"{stack.url}/metrics", timeout=10)
    assert scraped.status_code == 200
    assert "scoreboard_websocket_connections 0.0" in scraped.text
    assert 'scoreboard_completions_total{action_type="quick"}' not in scraped.text
