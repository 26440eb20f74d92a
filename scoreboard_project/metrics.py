"""Prometheus metrics: the definitions, and the /metrics view guarded by a token or an internal network.

With several processes set PROMETHEUS_MULTIPROC_DIR to one empty directory shared by all of them (prometheus-client
multi-process mode); /metrics then aggregates every process.
"""

import hmac
import ipaddress
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

from scoreboard_project.errors import error_body

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
BROADCAST_LAG = Histogram(
    "scoreboard_broadcast_lag_seconds", "From commit to broadcast send",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BOARD_CACHE = Counter("scoreboard_leaderboard_cache_total", "Leaderboard cache reads and rebuilds", ["result"])


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
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return JsonResponse(error_body("forbidden", "Metrics need the METRICS_TOKEN or an internal address."), status=403)
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
