"""Limits on open live connections (WebSocket and SSE): at most MAX_CONNECTIONS_PER_USER per user and
MAX_CONNECTIONS_PER_IP per client IP, counted in the `ratelimit` cache so every server process shares the counts
(Redis when REDIS_URL is set; the embedded default is one process). How the counts are kept, and how a crashed
server's counts are freed within CONNECTION_HEARTBEAT_SECONDS: scores/connection_counts.py.

A consumer calls `aacquire` before accepting and `arelease` on disconnect; an SSE view does the same around its
stream. A refused WebSocket is closed with code 4429; a refused SSE request gets 429. Cache failures follow
RATELIMIT_FAIL_OPEN, like the request rate limits (fail-closed: close code 1013, or 503 with Retry-After).
"""

import logging
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from scores import connection_counts
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
    keys = tuple(key for key, _, _ in limits)
    try:
        refused = connection_counts.store().take(keys, [limit for _, limit, _ in limits])
    except Exception:  # noqa: BLE001 - the counter store failed: apply the explicit fail-open/closed choice
        if not settings.RATELIMIT_FAIL_OPEN:
            raise LimiterUnavailable() from None
        logger.warning("Connection limiter unavailable; accepting (fail-open)", exc_info=True)
        return Lease()
    if refused is not None:
        _, limit, scope = limits[refused]
        raise TooManyConnections(scope=scope, limit=limit)
    return Lease(keys)


def release(lease: Lease) -> None:
    """Give back the counters of a closed connection (safe to call twice only if the lease is dropped after)."""
    if not lease.keys:
        return
    try:
        connection_counts.store().give_back(lease.keys)
    except Exception:  # noqa: BLE001 - a failed release is corrected by the next heartbeat, or frees at the TTL
        logger.warning("Could not release connection counts %s", lease.keys, exc_info=True)


def open_connections(*, user_id: Any = None, ip: str | None = None) -> int:
    """The current count for a user or an IP (for tests and the admin)."""
    scope, value = ("user", user_id) if user_id is not None else ("ip", ip)
    return connection_counts.store().count(_key(scope, value))


aacquire = sync_to_async(acquire, thread_sensitive=False)
arelease = sync_to_async(release, thread_sensitive=False)


def _key(scope: str, value: Any) -> str:
    return f"{settings.CONNECTION_LIMIT_KEY_PREFIX}{scope}:{value}"
