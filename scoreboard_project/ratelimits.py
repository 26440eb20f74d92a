"""Rate limits for DRF views, counted by django-ratelimit in the `ratelimit` cache (Redis when REDIS_URL is set).

django-ratelimit's own decorator raises a PermissionDenied subclass (a 403 under DRF) and lets cache errors
escape; this wrapper answers 429 with Retry-After and applies the explicit fail-open/fail-closed choice
(settings.RATELIMIT_FAIL_OPEN).
"""

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from scoreboard_project.client_ip import client_ip
from scores.exceptions import ScoreboardError

logger = logging.getLogger(__name__)


class RateLimited(ScoreboardError):
    http_status = 429
    code = "rate_limited"
    message = "Too many requests; try again later."

    def __init__(self, retry_after: int, limit: int) -> None:
        super().__init__(retryAfterSeconds=retry_after, limit=limit)
        self.retry_after = retry_after


class RateLimitUnavailable(APIException):
    status_code = 503
    default_code = "rate_limit_unavailable"
    default_detail = "The rate limiter is unavailable; try again shortly."


def by_user(request: Request) -> str:
    return f"user:{request.user.pk}" if request.user.is_authenticated else f"ip:{client_ip(request)}"


def by_ip(request: Request) -> str:
    return f"ip:{client_ip(request)}"


def enforce(request: Request, *, group: str, rate_setting: str, key: Callable[[Request], str]) -> None:
    """Count this request against `group`; raise RateLimited (429) once the rate named by `rate_setting` is spent."""
    rate = getattr(settings, rate_setting)
    value = key(request)
    try:
        usage = get_usage(request, group=group, key=lambda _group, _request: value, rate=rate, increment=True)
    except Exception:  # noqa: BLE001 - any cache failure (Redis down, timeout) takes the explicit path below
        if settings.RATELIMIT_FAIL_OPEN:
            logger.warning("Rate limiter unavailable; letting %s through (fail-open)", group, exc_info=True)
            return
        raise RateLimitUnavailable() from None
    if usage and usage["should_limit"]:
        if usage["limit"] == 0:  # django-ratelimit's own marker of an unreadable counter (fail-closed)
            raise RateLimitUnavailable()
        raise RateLimited(retry_after=max(1, usage["time_left"]), limit=usage["limit"])


def rate_limit(group: str, *, rate_setting: str, key: Callable[[Request], str] = by_user) -> Callable:
    """Decorate a DRF view method: the request is counted (and possibly refused) before the method runs."""

    def decorator(method: Callable) -> Callable:
        @wraps(method)
        def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
            enforce(request, group=group, rate_setting=rate_setting, key=key)
            return method(view, request, *args, **kwargs)

        return wrapper

    return decorator
