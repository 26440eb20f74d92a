"""X-API-Key authentication for trusted game servers, with optional HMAC request signing per client."""

import hashlib
import hmac
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from integrations.models import ApiClient, hash_key


class BadSignature(exceptions.AuthenticationFailed):
    default_code = "bad_signature"
    default_detail = "The request signature is missing or wrong, or its timestamp is too far from the server's clock."


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`request.auth` becomes the ApiClient; `request.user` stays anonymous (a server is not a player)."""

    def authenticate(self, request: Request) -> tuple[Any, ApiClient] | None:
        raw_key = request.META.get("HTTP_X_API_KEY", "")
        if not raw_key:
            return None
        client = ApiClient.objects.filter(key_hash=hash_key(raw_key), is_active=True).first()
        if client is None:
            raise exceptions.AuthenticationFailed("The API key is invalid or inactive.")
        if client.requires_signature:
            verify_signature(request, secret=client.signing_secret)
        ApiClient.objects.filter(pk=client.pk).update(last_used_at=timezone.now())
        return AnonymousUser(), client

    def authenticate_header(self, request: Request) -> str:
        return "X-API-Key"


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    """The X-Signature value for a body sent at `timestamp`: sha256=<hex HMAC of timestamp + "." + body>."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(request: Request, *, secret: str) -> None:
    """Raise BadSignature unless X-Signature signs X-Timestamp and the raw body, and the timestamp is fresh."""
    timestamp = request.META.get("HTTP_X_TIMESTAMP", "")
    signature = request.META.get("HTTP_X_SIGNATURE", "")
    try:
        skew = abs(time.time() - int(timestamp))
    except (ValueError, OverflowError):  # OverflowError: more digits than a float holds
        raise BadSignature("X-Timestamp must be the Unix time in seconds.") from None
    if skew > settings.API_SIGNATURE_MAX_SKEW_SECONDS:
        raise BadSignature("X-Timestamp is too far from the server's clock.")
    # The raw bytes as sent: read before DRF parses them (Django keeps a copy for the parser).
    expected = sign(secret=secret, timestamp=timestamp, body=request._request.body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise BadSignature("X-Signature does not match the request.")


class HasScope(permissions.BasePermission):
    """Only an authenticated API client holding the view's `required_scope`."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request: Request, view: Any) -> bool:
        # Without a key DRF answers 401 (there is no successful authenticator), with a key but no scope 403.
        return isinstance(request.auth, ApiClient) and request.auth.has_scope(view.required_scope)
