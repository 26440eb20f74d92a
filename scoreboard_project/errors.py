"""One error shape for the whole API: {"error": {"code", "message", "details"}}."""

import logging
import sys

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler
from django_ratelimit.exceptions import Ratelimited
from redis.exceptions import RedisError
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts.authentication import Banned
from scoreboard_project import metrics
from scores.exceptions import ScoreboardError

logger = logging.getLogger(__name__)

# A dependency that is down (the database refusing or dropping connections, a required Redis unreachable) is a
# 503 with Retry-After, never a 500: the client did nothing wrong and should retry shortly.
DEPENDENCY_RETRY_AFTER_SECONDS = 2
_DEPENDENCY_ERRORS = (OperationalError, InterfaceError, RedisError)

_CODES = {
    exceptions.ParseError: ("malformed_request", "The request body is not valid JSON."),
    exceptions.ValidationError: ("validation_error", "The request is invalid."),
    exceptions.NotAuthenticated: ("not_authenticated", "Authentication credentials were not provided."),
    InvalidToken: ("invalid_token", "The token is invalid or expired."),
    exceptions.AuthenticationFailed: ("authentication_failed", "Authentication failed."),
    Banned: ("banned", "This account is banned."),
    exceptions.PermissionDenied: ("forbidden", "You do not have permission to do this."),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", "Method not allowed."),
    exceptions.NotAcceptable: ("not_acceptable", "Not acceptable."),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", "Send the body as application/json."),
    exceptions.Throttled: ("rate_limited", "Too many requests."),
    exceptions.APIException: ("service_unavailable", "The service is unavailable."),
}


def error_body(code: str, message: str, details: object = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def dependency_down(exc: BaseException | None) -> bool:
    """True for the errors of an unreachable database or Redis (also when wrapped by another exception)."""
    while exc is not None:
        if isinstance(exc, _DEPENDENCY_ERRORS):
            return True
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return False


def unavailable_body(exc: BaseException) -> dict:
    what = "database" if isinstance(exc, (OperationalError, InterfaceError)) else "redis"
    return error_body("service_unavailable", "A service this request needs is unavailable; try again shortly.",
                      {"dependency": what, "retryAfterSeconds": DEPENDENCY_RETRY_AFTER_SECONDS})


def unavailable_response(exc: BaseException) -> JsonResponse:
    logger.warning("Dependency unavailable: %s: %s", type(exc).__name__, str(exc).strip()[:200])
    metrics.count_rejection(503)
    return JsonResponse(unavailable_body(exc), status=503,
                        headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)})


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    response = _api_response(exc, context)
    if response is not None and response.status_code < 500:
        metrics.count_rejection(response.status_code, response.data.get("error", {}).get("code", ""))
    elif response is not None and response.status_code == 503:
        metrics.count_rejection(503)
        response.setdefault("Retry-After", str(DEPENDENCY_RETRY_AFTER_SECONDS))
    return response


def _challenge(response: Response, context: dict) -> None:
    """A 401 names how to authenticate (RFC 9110), as DRF does for its own authentication errors."""
    view, request = context.get("view"), context.get("request")
    header = view.get_authenticate_header(request) if view is not None and request is not None else None
    if header:
        response["WWW-Authenticate"] = header


def _api_response(exc: Exception, context: dict) -> Response | None:
    if dependency_down(exc):
        logger.warning("Dependency unavailable: %s: %s", type(exc).__name__, str(exc).strip()[:200])
        return Response(unavailable_body(exc), status=503)
    if isinstance(exc, ScoreboardError):
        response = Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = str(exc.retry_after)
        if exc.http_status == 401:
            _challenge(response, context)
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The request body is too large."), status=413)
    if isinstance(exc, SuspiciousOperation):  # e.g. more query parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS
        return Response(error_body("malformed_request", "The request is malformed."), status=400)
    if isinstance(exc, Ratelimited):
        # django-ratelimit's own decorator raises a PermissionDenied subclass; a limit is a 429, not a 403.
        response = Response(error_body("rate_limited", "Too many requests; try again later."), status=429)
        response["Retry-After"] = "60"
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response(error_body("server_error", "Internal server error."), status=500)
    code, message = _describe(exc)
    response.data = error_body(code, message, _details(exc))
    return response


def _describe(exc: Exception) -> tuple[str, str]:
    for exc_class, (code, default_message) in _CODES.items():
        if isinstance(exc, exc_class):
            if exc_class is exceptions.APIException:
                return getattr(exc, "default_code", code), str(getattr(exc, "detail", default_message))
            detail = getattr(exc, "detail", None)
            if isinstance(detail, str) and not isinstance(exc, exceptions.ValidationError):
                return code, str(detail)
            return code, default_message
    return "error", "The request could not be processed."


def _details(exc: Exception) -> object:
    if isinstance(exc, exceptions.ValidationError):
        return exc.detail
    if isinstance(exc, InvalidToken) and isinstance(exc.detail, dict):
        return {"reason": str(exc.detail.get("detail", ""))}
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        return {"retryAfterSeconds": int(exc.wait)}
    return {}


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


@csrf_exempt  # a 404 changes nothing; without this an unknown API path POSTed to gets Django's HTML CSRF page
def api_not_found(request: HttpRequest) -> HttpResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    # Called inside Django's exception handling: a database or Redis outage raised outside a DRF view (a page,
    # the SSE stream, a middleware) is a 503 too.
    exc = sys.exc_info()[1]
    if dependency_down(exc):
        return unavailable_response(exc)
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "Bad request."), status=400)
    return defaults.bad_request(request, exception)
