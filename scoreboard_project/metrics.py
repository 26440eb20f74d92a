"""Prometheus metrics: the definitions, and the /metrics view guarded by a token or an internal network.

With several processes set PROMETHEUS_MULTIPROC_DIR to one empty directory shared by all of them (prometheus-client
multi-process mode); /metrics then aggregates every process.
"""

import hmac
import ipaddress
import os
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

from scoreboard_project.client_ip import client_ip

REQUEST_LATENCY = Histogram(
    "scoreboard_http_request_duration_seconds", "HTTP request latency", ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
COMPLETIONS = Counter("scoreboard_completions_total", "Actions completed and paid", ["action_type"])
POINTS_AWARDED = Counter("scoreboard_points_awarded_total", "Points awarded", ["action_type"])
REJECTED = Counter("scoreboard_rejected_requests_total", "API requests refused", ["reason"])
WEBSOCKETS_OPEN = Gauge("scoreboard_websocket_connections", "Open WebSocket connections", multiprocess_mode="livesum")
SSE_OPEN = Gauge("scoreboard_sse_connections", "Open SSE streams", multiprocess_mode="livesum")
BROADCASTS = Counter("scoreboard_broadcasts_total", "Board broadcasts sent to the channel layer")
RANK_UPDATES = Counter("scoreboard_rank_updates_total", "Per-user rank messages sent to the channel layer")
BROADCAST_LAG = Histogram(
    "scoreboard_broadcast_lag_seconds", "From commit to broadcast send",
    # It includes the coalescing window (LIVE_COALESCE_MS, 100 ms by default): finer steps just above it.
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.11, 0.125, 0.15, 0.2, 0.25, 0.5, 1, 2.5),
)
BOARD_CACHE = Counter("scoreboard_leaderboard_cache_total", "Leaderboard cache reads and rebuilds", ["result"])

# Refusals by reason, from the HTTP status (and the error code where one status has several meanings). A fixed
# set of labels, so a client cannot grow the series by sending odd requests.
_REASONS_BY_STATUS = {
    400: "validation", 401: "auth", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limit",
    503: "unavailable",
}
_REASONS_BY_CODE = {"action_too_fast": "too_fast", "daily_cap_reached": "daily_cap", "banned": "banned"}


def rejection_reason(status: int, code: str = "") -> str:
    """The `reason` label of a refused request."""
    return _REASONS_BY_CODE.get(code) or _REASONS_BY_STATUS.get(status, "other")


def count_rejection(status: int, code: str = "") -> None:
    REJECTED.labels(reason=rejection_reason(status, code)).inc()


def count_completion(action_type: str, points: int) -> None:
    """Called on commit: a rolled-back payment is never counted."""
    COMPLETIONS.labels(action_type=action_type).inc()
    POINTS_AWARDED.labels(action_type=action_type).inc(points)


def _registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    # Behind nginx, REMOTE_ADDR is nginx's own loopback address: the client is the one the proxies vouch for.
    try:
        address = ipaddress.ip_address(client_ip(request) or "")
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    from scoreboard_project.errors import error_body  # errors counts refusals here: import it late

    if not _allowed(request):
        return JsonResponse(error_body("forbidden", "Metrics need the METRICS_TOKEN or an internal address."), status=403)
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def count_broadcast(events: list, noted_at: float | None) -> None:
    """One flush that sent the board `events`; its lag is from the first commit of its window to now."""
    if not events:
        return
    BROADCASTS.inc()
    if noted_at is not None:
        BROADCAST_LAG.observe(max(0.0, time.monotonic() - noted_at))


def count_rank_updates(events: list) -> None:
    if events:
        RANK_UPDATES.inc(len(events))
