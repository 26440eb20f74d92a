"""`make serve`'s command (deploy/serve.py) for real, stopped the way a terminal stops it: Ctrl-C sends SIGINT to
the whole foreground process group. The servers still stop gracefully, in order: WebSockets get 1001, every
process exits 0."""

import os
import secrets
import signal
import subprocess
import sys

import httpx
import pytest
from django.conf import settings as django_settings
from rest_framework_simplejwt.tokens import AccessToken
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from deploy.stack import BASE_DIR, free_port
from tests.live_servers import live_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def wait_started(process: subprocess.Popen) -> list[str]:
    """The output up to the line saying the stack is up (a signal before it means "stop starting", exit 1)."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Scoreboard (production) on "):
            return lines
    raise AssertionError("make serve exited before it started:\n" + "".join(lines))


def test_ctrl_c_stops_every_server_gracefully(alice):
    port = free_port()
    env = {**os.environ, **live_env(
        DEBUG="false", SECRET_KEY=secrets.token_urlsafe(60), SECURE_SSL_REDIRECT="false", LOG_LEVEL="WARNING",
        REDIS_KEY_PREFIX=f"serve-test-{secrets.token_hex(6)}", JWT_SIGNING_KEY=django_settings.SIMPLE_JWT["SIGNING_KEY"],
    )}
    serve = subprocess.Popen(
        [sys.executable, "-m", "deploy.serve", "--port", str(port), "--wsgi-workers", "1", "--asgi-processes", "1"],
        cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        started = wait_started(serve)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        with ws_connect(f"ws://127.0.0.1:{port}/ws/scoreboard?token={AccessToken.for_user(alice)}", open_timeout=10) as socket:
            assert '"top_scores_update"' in socket.recv(timeout=10)
            os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C does: the whole group
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    socket.recv(timeout=20)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        output = "".join(started) + serve.communicate(timeout=60)[0]
    finally:
        if serve.poll() is None:  # SIGTERM: make serve stops its servers (they are not in its process group)
            serve.terminate()
            serve.wait(timeout=60)
    assert serve.returncode == 0, output
    stop_line = next(line for line in output.splitlines() if line.startswith("Stopping: "))
    assert stop_line == "Stopping: -m gunicorn=0, -m daphne=0, nginx=0", output
