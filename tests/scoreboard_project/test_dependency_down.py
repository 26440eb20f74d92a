"""A database that goes away under a real server (gunicorn with persistent connections, daphne with the pool): 503 with Retry-After in the one error shape, within the connect
timeout, never a 500 or a hang; the service recovers by itself when the database is back; and connections the
database closed while idle are replaced without failing a request.

The database is the suite's PostgreSQL reached through a loopback proxy that the test cuts (tests/tcp_proxy.py);
bench/faults.py does the same with a private cluster stopped and restarted by pg_ctl.
"""

import time

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from tests.live_servers import Daphne, Gunicorn, database_url
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

CONNECT_TIMEOUT = 1


@pytest.fixture
def proxy():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")  # the marker already fails this in CI
    settings_dict = connection.settings_dict
    cut = TcpProxy((settings_dict.get("HOST") or "127.0.0.1", int(settings_dict.get("PORT") or 5432)))
    yield cut
    cut.close()


@pytest.fixture(params=["persistent", "pool"])
def server(request, proxy):
    url = database_url({**connection.settings_dict, "HOST": "127.0.0.1", "PORT": proxy.port})
    # The production configuration (DEBUG off), database only: no Redis, so only the database can be down.
    # Both production database set-ups (deploy/stack.py): gunicorn's persistent connections with health checks,
    # daphne's psycopg pool (its wait for a connection bounded by DB_POOL_TIMEOUT).
    server_class = Daphne if request.param == "pool" else Gunicorn
    live = server_class({"DATABASE_URL": url, "REDIS_URL": "", "DEBUG": "false", "SECRET_KEY": "x" * 64,
                     "JWT_SIGNING_KEY": django_settings.SIMPLE_JWT["SIGNING_KEY"], "SECURE_SSL_REDIRECT": "false",
                     "DB_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT), "RATE_LIMITS_ENABLED": "false",
                     **({"DB_POOL": "true", "DB_POOL_TIMEOUT": "2"} if request.param == "pool"
                        else {"DB_CONN_MAX_AGE": "600"})})
    try:
        live.wait_ready()
        yield live
    finally:
        print(f"--- {live.name} (shown when a test fails) ---\n{live.output()}")
        live.stop()


def assert_unavailable(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"].isdigit()
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "service_unavailable" and error["details"]["dependency"] == "database"
    assert elapsed < 5


def timed_get(client: httpx.Client, path: str, **kwargs) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get(path, **kwargs)
    return response, time.monotonic() - started


def test_database_down_answers_503_with_retry_after_then_recovers(server, proxy, alice):
    bearer = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}
    with httpx.Client(base_url=server.url, timeout=15) as client:
        assert client.get("/api/v1/leaderboard").status_code == 200
        assert client.get("/api/v1/users/me/actions", headers=bearer).status_code == 200

        proxy.set_mode("refuse")  # the server restarts: open connections drop, new ones are refused
        for path, headers in (("/api/v1/leaderboard", {}), ("/api/v1/users/me/actions", bearer),
                              ("/api/v1/leaderboard/stream", bearer)):
            assert_unavailable(*timed_get(client, path, headers=headers))

        proxy.set_mode("blackhole")  # the host stops answering: only the connect timeout ends the wait
        assert_unavailable(*timed_get(client, "/api/v1/leaderboard"))

        proxy.set_mode("forward")
        deadline = time.monotonic() + 10
        while client.get("/api/v1/leaderboard").status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover by itself"
            time.sleep(0.2)
        assert client.get("/api/v1/users/me/actions", headers=bearer).status_code == 200


def terminate_other_backends() -> int:
    """What a PostgreSQL restart does to the server's idle connections: each gets a FATAL message and is closed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                       " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


def test_connections_killed_while_idle_are_replaced_without_a_failed_request(server, alice):
    bearer = {"Authorization": f"Bearer {AccessToken.for_user(alice)}"}
    with httpx.Client(base_url=server.url, timeout=15) as client:
        assert client.get("/api/v1/users/me/actions", headers=bearer).status_code == 200
        assert terminate_other_backends() >= 1
        time.sleep(0.5)  # the FATAL message and the close reach the server's sockets
        statuses = [client.get("/api/v1/users/me/actions", headers=bearer).status_code for _ in range(5)]
    assert statuses == [200] * 5


def test_health_check_sees_a_connection_the_server_closed(db):
    connection.ensure_connection()
    assert connection.is_usable()
    with connection.get_new_connection(connection.get_connection_params()) as killer:
        killer.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    deadline = time.monotonic() + 5
    while connection.is_usable():
        assert time.monotonic() < deadline, "a terminated connection still looks usable"
        time.sleep(0.05)
    connection.close()
