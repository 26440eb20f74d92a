"""Live-connection counts kept in Redis (scores/connection_counts.py): a crashed server's connections stop
counting once its heartbeat lapses; a live server's keep counting; counts lost from Redis are written back, and a
release lost while Redis did not answer is corrected."""

import secrets
import shutil
import signal
import threading
import time
from socket import create_connection

import pytest
import redis
from django.conf import settings as django_settings
from rest_framework_simplejwt.tokens import AccessToken
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from deploy.throwaway import PrivateRedis
from scores import connection_limits
from scores.connection_limits import TooManyConnections
from tests.live_servers import Daphne, live_env
from tests.services_available import skip_or_fail_without

pytestmark = [pytest.mark.redis]

HEARTBEAT_SECONDS = 1


def open_socket(server: Daphne, user):
    """A WebSocket as `user` that got its first board; raises when refused."""
    socket = ws_connect(f"{server.ws_url}/ws/scoreboard?token={AccessToken.for_user(user)}", open_timeout=10, legacy=True)
    message = socket.recv(timeout=10)
    if '"top_scores_update"' not in message:
        socket.close()
        raise AssertionError(f"refused after the handshake: {message}")
    return socket


def refused(server: Daphne, user) -> bool:
    """Whether a new WebSocket of `user` is refused (4429 before the handshake becomes HTTP 403)."""
    try:
        open_socket(server, user).close()
    except (InvalidStatus, ConnectionError, AssertionError):
        return True
    return False


@pytest.fixture
def servers_env():
    prefix = f"counts-test-{secrets.token_hex(6)}"
    yield live_env(
        REDIS_KEY_PREFIX=prefix, MAX_CONNECTIONS_PER_USER="2", CONNECTION_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
        JWT_SIGNING_KEY=django_settings.SIMPLE_JWT["SIGNING_KEY"],
    )
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_sse_clients_that_leave_before_their_first_event_give_their_slots_back(servers_env, alice):
    server = Daphne(servers_env)
    try:
        server.wait_ready()
        request = (f"GET /api/v1/leaderboard/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {AccessToken.for_user(alice)}\r\n\r\n").encode()
        for _ in range(20):  # ten times the limit of 2, each client gone as soon as it asked
            with create_connection(("127.0.0.1", server.port)) as client:
                client.sendall(request)
        time.sleep(HEARTBEAT_SECONDS * 2)  # a leaked count would be rewritten by the heartbeats meanwhile
        kept = [open_socket(server, alice), open_socket(server, alice)]  # both slots are free again
        assert refused(server, alice)
        for socket in kept:
            socket.close()
    finally:
        print(f"--- daphne (shown when a test fails) ---\n{server.output()}")
        server.stop()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_a_killed_servers_connections_are_freed_and_a_live_servers_are_kept(servers_env, alice):
    first, second = Daphne(servers_env), Daphne(servers_env)
    try:
        first.wait_ready()
        second.wait_ready()
        sockets = [open_socket(first, alice) for _ in range(2)]
        time.sleep(HEARTBEAT_SECONDS * 3)  # several heartbeats: the live server's counts must still count
        assert refused(second, alice)

        first.process.send_signal(signal.SIGKILL)  # no close frames, no release
        first.process.wait(timeout=10)
        for socket in sockets:
            socket.close_socket()
        deadline = time.monotonic() + HEARTBEAT_SECONDS * 10
        while refused(second, alice):
            assert time.monotonic() < deadline, "the killed server's connections still count"
            time.sleep(0.2)
        kept = [open_socket(second, alice)]  # the first slot went to the probe that got in; take both again
        kept.append(open_socket(second, alice))
        assert refused(second, alice)  # and the limit holds again on the survivor
        for socket in kept:
            socket.close()
    finally:
        for name, server in (("first", first), ("second", second)):
            print(f"--- daphne {name} (shown when a test fails) ---\n{server.output()}")
            server.stop()


def test_counts_lost_from_redis_are_written_back_by_the_next_heartbeat(settings):
    settings.CONNECTION_HEARTBEAT_SECONDS = HEARTBEAT_SECONDS
    settings.MAX_CONNECTIONS_PER_USER = 2
    leases = [connection_limits.acquire(user_id="restarted", ip="10.0.1.1") for _ in range(2)]
    client = redis.Redis.from_url(settings.REDIS_URL)
    pattern = f"*{settings.CONNECTION_LIMIT_KEY_PREFIX}*"
    for key in client.scan_iter(pattern, count=1000):  # as if Redis restarted empty: this test's keys are gone
        client.delete(key)
    assert connection_limits.open_connections(user_id="restarted") == 0
    deadline = time.monotonic() + HEARTBEAT_SECONDS * 5
    while connection_limits.open_connections(user_id="restarted") != 2:
        assert time.monotonic() < deadline, "the counts were not written back"
        time.sleep(0.1)
    assert connection_limits.open_connections(ip="10.0.1.1") == 2
    with pytest.raises(TooManyConnections):
        connection_limits.acquire(user_id="restarted", ip="10.0.1.2")
    for lease in leases:
        connection_limits.release(lease)
    assert connection_limits.open_connections(user_id="restarted") == 0


def test_concurrent_connects_never_overshoot_the_limit(settings):
    settings.MAX_CONNECTIONS_PER_USER = 5
    outcomes: list[str] = []

    def connect() -> None:
        try:
            connection_limits.acquire(user_id="crowd", ip=f"10.0.2.{threading.get_ident() % 250}")
            outcomes.append("accepted")
        except TooManyConnections:
            outcomes.append("refused")

    threads = [threading.Thread(target=connect) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["accepted"] * 5 + ["refused"] * 15
    assert connection_limits.open_connections(user_id="crowd") == 5


def test_a_connect_that_timed_out_but_counted_later_is_corrected_by_the_next_heartbeat(settings):
    if shutil.which("redis-server") is None:
        skip_or_fail_without("needs the redis-server binary (apt-get install redis-server)")
    server = PrivateRedis()
    server.start()
    try:
        settings.CACHES = {**settings.CACHES, "private": {**settings.CACHES["ratelimit"], "LOCATION": server.url}}
        settings.RATELIMIT_USE_CACHE = "private"
        settings.CONNECTION_HEARTBEAT_SECONDS = 6  # outlives the freeze: the heartbeat itself never lapses
        settings.MAX_CONNECTIONS_PER_USER = 2
        held = [connection_limits.acquire(user_id="frozen", ip="10.0.3.1")]
        server.freeze()
        try:
            # Times out (REDIS_TIMEOUT_MS): accepted fail-open, holding nothing. The script still sits in Redis's
            # socket buffer and runs when Redis wakes, counting a connection nobody holds.
            assert connection_limits.acquire(user_id="frozen", ip="10.0.3.2").keys == ()
        finally:
            server.thaw()
        deadline = time.monotonic() + 6
        while connection_limits.open_connections(user_id="frozen") != 1:
            assert time.monotonic() < deadline, "the phantom connection still counts"
            time.sleep(0.1)
        held.append(connection_limits.acquire(user_id="frozen", ip="10.0.3.3"))  # the second slot is free
        with pytest.raises(TooManyConnections):
            connection_limits.acquire(user_id="frozen", ip="10.0.3.4")
        for lease in held:  # nothing left for this process's heartbeat to renew once the server is gone
            connection_limits.release(lease)
        assert connection_limits.open_connections(user_id="frozen") == 0
    finally:
        server.cleanup()
