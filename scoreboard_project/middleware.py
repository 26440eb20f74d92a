"""One log line and one latency sample per request, tagged with a request id."""

import logging
import re
import time
import uuid
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from scoreboard_project.errors import dependency_down, unavailable_response
from scoreboard_project.metrics import REQUEST_LATENCY

logger = logging.getLogger("scoreboard.request")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestLogMiddleware:
    """Accept or mint X-Request-ID, echo it, log the request without its query string, time it by route."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if iscoroutinefunction(self):
            return self._acall(request)
        started = self._begin(request)
        return self._finish(request, self.get_response(request), started)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = self._begin(request)
        return self._finish(request, await self.get_response(request), started)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # A view outside DRF (a page, the SSE stream) hit a database or Redis outage: 503, even with DEBUG on.
        return unavailable_response(exception) if dependency_down(exception) else None

    @staticmethod
    def _begin(request: HttpRequest) -> float:
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex
        return time.perf_counter()

    @staticmethod
    def _finish(request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        route = match.route if match else "unmatched"
        REQUEST_LATENCY.labels(route=route, method=_method_label(request.method), status=response.status_code).observe(
            elapsed
        )
        response["X-Request-ID"] = request.request_id
        # The path only: query strings may carry tokens (?token=) and are never logged.
        logger.info(
            "%s %s %s %.1fms", request.method, request.path, response.status_code, elapsed * 1000,
            extra={"request_id": request.request_id, "method": request.method, "path": request.path,
                   "status": response.status_code, "duration_ms": round(elapsed * 1000, 2), "route": route},
        )
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(method: str | None) -> str:
    # Clients may send any word as a method; one label value each would grow the metric without bound.
    return method if method in _METHODS else "other"
