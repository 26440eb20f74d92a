"""Who is watching: the credential rules shared by the WebSocket consumer and the SSE stream.

A token (`?token=`, `Authorization: Bearer`, or the `bearer, <jwt>` subprotocol) wins over the session cookie; a
token that is present but bad is refused even if a cookie is valid. The Origin check protects cookie sessions.
"""

from typing import Any
from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from accounts.authentication import Banned, JWTAuthentication


class Refused(Exception):
    """The viewer may not watch: `code` is the error code, `message` says why."""

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(message)


def origin_allowed(origin: str) -> bool:
    """True if a browser Origin names one of ALLOWED_HOSTS (any port, http or https)."""
    try:
        parts = urlsplit(origin)
    except ValueError:  # e.g. "http://[": not a URL at all
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    domain, _port = split_domain_port(parts.netloc)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


def token_from_query(query_string: bytes | str) -> str | None:
    if isinstance(query_string, bytes):
        query_string = query_string.decode("latin-1")
    values = parse_qs(query_string).get("token")
    return values[0] if values else None


def _user_for_token_sync(raw: str) -> Any:
    auth = JWTAuthentication()
    try:
        user = auth.get_user(auth.get_validated_token(raw.encode()))
    except (InvalidToken, TokenError, AuthenticationFailed):
        raise Refused("invalid_token", "The token is invalid or expired.") from None
    except Banned:
        raise Refused("banned", "This account is banned.") from None
    return user


def _refuse_banned(user: Any) -> None:
    if getattr(user, "is_banned", False):
        raise Refused("banned", "This account is banned.")


async def user_for_token(raw: str) -> Any:
    """The active user an access token names. Raises Refused."""
    return await database_sync_to_async(_user_for_token_sync)(raw)


async def session_user(request: HttpRequest) -> Any:
    """The user of the request's session cookie. Not `request.auser()`: that leaves the connection it opened checked
    out of the pool for as long as the stream lasts, so a few cookie viewers would starve the API (the pool's size)."""
    return await database_sync_to_async(get_user)(request)


def viewer_or_refuse(user: Any | None) -> Any | None:
    """`user`, or None for an anonymous viewer if the setting allows it. Raises Refused."""
    if user is not None and user.is_authenticated:
        _refuse_banned(user)
        return user
    if settings.LIVE_ALLOW_ANONYMOUS:
        return None
    raise Refused("not_authenticated", "Authentication credentials were not provided.")
