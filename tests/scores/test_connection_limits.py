import asyncio

import pytest

from scores import connection_limits
from scores.connection_limits import TooManyConnections


def test_sixth_connection_of_a_user_is_refused_with_4429(settings):
    leases = [connection_limits.acquire(user_id="u1", ip=f"10.0.0.{n}") for n in range(5)]
    with pytest.raises(TooManyConnections) as raised:
        connection_limits.acquire(user_id="u1", ip="10.0.0.99")
    assert raised.value.close_code == 4429
    assert raised.value.details == {"scope": "user", "limit": 5}
    # The refused attempt holds nothing, on either counter.
    assert connection_limits.open_connections(user_id="u1") == 5
    assert connection_limits.open_connections(ip="10.0.0.99") == 0
    connection_limits.release(leases[0])
    connection_limits.acquire(user_id="u1", ip="10.0.0.99")


def test_per_ip_limit_counts_everyone_behind_the_address(settings):
    settings.MAX_CONNECTIONS_PER_IP = 3
    for n in range(3):
        connection_limits.acquire(user_id=f"user{n}", ip="203.0.113.5")
    with pytest.raises(TooManyConnections) as raised:
        connection_limits.acquire(user_id="another", ip="203.0.113.5")
    assert raised.value.details["scope"] == "ip"
    assert connection_limits.open_connections(user_id="another") == 0
    with pytest.raises(TooManyConnections):
        connection_limits.acquire(ip="203.0.113.5")  # anonymous viewers count per IP


def test_release_frees_the_slot_and_never_goes_negative(settings):
    lease = connection_limits.acquire(user_id="u2", ip="10.0.0.1")
    connection_limits.release(lease)
    connection_limits.release(lease)
    assert connection_limits.open_connections(user_id="u2") == 0


def test_async_helpers_for_consumers(settings):
    async def scenario() -> int:
        lease = await connection_limits.aacquire(user_id="u3", ip="10.0.0.2")
        during = connection_limits.open_connections(user_id="u3")
        await connection_limits.arelease(lease)
        return during

    assert asyncio.run(scenario()) == 1
    assert connection_limits.open_connections(user_id="u3") == 0


@pytest.mark.redis
def test_counts_are_shared_through_redis(settings):
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    assert isinstance(caches[settings.RATELIMIT_USE_CACHE], RedisCache)
    settings.MAX_CONNECTIONS_PER_USER = 2
    connection_limits.acquire(user_id="shared", ip="10.0.0.3")
    # Another process: a separate cache alias with its own Redis connection pool.
    settings.CACHES = {**settings.CACHES, "another_process": dict(settings.CACHES["ratelimit"])}
    settings.RATELIMIT_USE_CACHE = "another_process"
    connection_limits.acquire(user_id="shared", ip="10.0.0.4")
    with pytest.raises(TooManyConnections):
        connection_limits.acquire(user_id="shared", ip="10.0.0.5")
