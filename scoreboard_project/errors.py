"""One error shape for the whole API: {"error": {"code", "message", "details"}}."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler
from django_ratelimit.exceptions import Ratelimited
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts.authentication import Banned
from scores.exceptions import ScoreboardError

logger = logging.getLogger(__name__)

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


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ScoreboardError):
        response = Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
        if getattr(exc, "retry_after", None):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The request body is too large."), status=413)
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


def api_not_found(request: HttpRequest) -> HttpResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("server_error", "Internal server error."), status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "Bad request."), status=400)
    return defaults.bad_request(request, exception)
