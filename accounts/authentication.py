"""DRF authentication that refuses banned users with 403, whichever credential they present."""

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework_simplejwt import authentication as jwt_authentication


class Banned(exceptions.PermissionDenied):
    default_code = "banned"
    default_detail = "This account is banned."


def refuse_if_banned(user: Any) -> None:
    if getattr(user, "is_banned", False):
        raise Banned()


class JWTAuthentication(jwt_authentication.JWTAuthentication):
    """simplejwt's bearer tokens; a banned user's still-unexpired access token stops working at once."""

    def get_user(self, validated_token: Any) -> Any:
        user = super().get_user(validated_token)
        refuse_if_banned(user)
        return user


class SessionAuthentication(authentication.SessionAuthentication):
    """The bundled page's session cookie, with the same ban check."""

    def authenticate(self, request: Request) -> tuple[Any, None] | None:
        result = super().authenticate(request)
        if result is not None:
            refuse_if_banned(result[0])
        return result
