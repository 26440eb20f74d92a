"""Liveness and readiness probes.

/healthz answers 200 whenever the process serves requests. /readyz checks what requests depend on (the database,
the leaderboard's Redis, the channel layer) with short timeouts and answers 503 when any is down: "down" when the
database is (nothing works), "degraded" when only Redis or the channel layer is (scores still commit and boards
are read from the database, but live pushes and the fast board are gone). The probe is unauthenticated, so a failure
is named by its exception class only; the message, which names hosts and ports, goes to the log.
"""

import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
import redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from scores import leaderboard

PROBE_TIMEOUT_SECONDS = 0.5

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "redis": leaderboard.redis_status(), "channelLayer": _channel_layer()}
    if checks["database"]["status"] != "ok":
        state = "down"
    elif any(check["status"] == "down" for check in checks.values()):
        state = "degraded"
    else:
        state = "ok"
    return JsonResponse({"status": state, "checks": checks}, status=200 if state == "ok" else 503)


def _database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return _down("database", exc)
    return {"status": "ok", "vendor": connection.vendor}


def _channel_layer() -> dict:
    config = settings.CHANNEL_LAYERS.get("default", {})
    backend = config.get("BACKEND", "")
    if backend.endswith("InMemoryChannelLayer"):
        return {"status": "ok", "backend": "in-memory"}
    hosts = config.get("CONFIG", {}).get("hosts", [])
    try:
        for host in hosts:
            address = host["address"] if isinstance(host, dict) else host
            _ping(address if isinstance(address, str) else "redis://{}:{}".format(*address))
    except RedisError as exc:
        return _down("channel layer", exc, backend="redis")
    return {"status": "ok", "backend": "redis", "hosts": len(hosts)}


def _down(dependency: str, exc: Exception, **details: str) -> dict:
    logger.warning("Readiness probe: the %s is down: %s", dependency, exc)
    return {"status": "down", **details, "error": type(exc).__name__}


def _ping(address: str) -> None:
    client = redis.Redis.from_url(
        address,
        socket_timeout=PROBE_TIMEOUT_SECONDS,
        socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    finally:
        client.close()
