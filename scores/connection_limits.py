"""Limits on open live connections (WebSocket and SSE): at most MAX_CONNECTIONS_PER_USER per user and
MAX_CONNECTIONS_PER_IP per client IP, counted in the `ratelimit` cache so every server process shares the counts
(Redis when REDIS_URL is set; the embedded default is one process).

A consumer calls `aacquire` before accepting and `arelease` on disconnect; an SSE view does the same around its
stream. A refused WebSocket is closed with code 4429; a refused SSE request gets 429. Counts carry a TTL so a process
that dies without releasing leaks them for CONNECTION_COUNT_TTL_SECONDS at most. Cache failures follow
RATELIMIT_FAIL_OPEN, like the request rate limits (fail-closed: close code 1013, or 503 with Retry-After).
"""

import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches

from scores.exceptions import ScoreboardError

logger = logging.getLogger(__name__)

CLOSE_CODE_TOO_MANY_CONNECTIONS = 4429


class TooManyConnections(ScoreboardError):
    http_status = 429
    code = "too_many_connections"
    message = "Too many open live connections; close one first."
    close_code = CLOSE_CODE_TOO_MANY_CONNECTIONS
    retry_after = 30


class LimiterUnavailable(TooManyConnections):
    """The counter store is down and RATELIMIT_FAIL_OPEN is off: a dependency outage (503), not the client's fault."""

    http_status = 503
    code = "connection_limit_unavailable"
    message = "Connection limits are unavailable; try again shortly."
    close_code = 1013  # "Try Again Later"
    retry_after = 2


@dataclass(frozen=True)
class Lease:
    """The counters one accepted connection holds; give it back to `release`."""

    keys: tuple[str, ...] = ()


def acquire(*, user_id: Any = None, ip: str | None = None) -> Lease:
    """Count one more connection for the user (if any) and the IP; raise TooManyConnections over either limit."""
    limits = []
    if user_id is not None:
        limits.append((_key("user", user_id), settings.MAX_CONNECTIONS_PER_USER, "user"))
    if ip:
        limits.append((_key("ip", ip), settings.MAX_CONNECTIONS_PER_IP, "ip"))
    taken: list[str] = []
    try:
        for key, limit, scope in limits:
            count = _increment(key)
            taken.append(key)
            if count > limit:
                release(Lease(tuple(taken)))
                raise TooManyConnections(scope=scope, limit=limit)
    except TooManyConnections:
        raise
    except Exception:  # noqa: BLE001 - the counter store failed: apply the explicit fail-open/closed choice
        if not settings.RATELIMIT_FAIL_OPEN:
            raise LimiterUnavailable() from None
        logger.warning("Connection limiter unavailable; accepting (fail-open)", exc_info=True)
        return Lease()
    return Lease(tuple(taken))


def release(lease: Lease) -> None:
    """Give back the counters of a closed connection (safe to call twice only if the lease is dropped after)."""
    cache = caches[settings.RATELIMIT_USE_CACHE]
    for key in lease.keys:
        try:
            if cache.decr(key) < 0:
                cache.set(key, 0, settings.CONNECTION_COUNT_TTL_SECONDS)
        except ValueError:
            pass  # the count expired meanwhile: nothing to give back
        except Exception:  # noqa: BLE001 - a failed release only delays a slot until the TTL frees it
            logger.warning("Could not release connection count %s", key, exc_info=True)


def open_connections(*, user_id: Any = None, ip: str | None = None) -> int:
    """The current count for a user or an IP (for tests and the admin)."""
    scope, value = ("user", user_id) if user_id is not None else ("ip", ip)
    return caches[settings.RATELIMIT_USE_CACHE].get(_key(scope, value), 0)


aacquire = sync_to_async(acquire, thread_sensitive=False)
arelease = sync_to_async(release, thread_sensitive=False)


def _increment(key: str) -> int:
    cache = caches[settings.RATELIMIT_USE_CACHE]
    ttl = settings.CONNECTION_COUNT_TTL_SECONDS
    cache.add(key, 0, ttl)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, ttl)
        return 1
    cache.touch(key, ttl)
    return count


def _key(scope: str, value: Any) -> str:
    return f"{getattr(settings, 'CONNECTION_LIMIT_KEY_PREFIX', 'conn:')}{scope}:{value}"
