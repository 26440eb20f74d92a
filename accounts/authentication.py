"""DRF authentication that refuses banned users with 403, whichever credential they present."""

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import authentication, exceptions
from rest_framework.request import Request
from rest_framework_simplejwt import authentication as jwt_authentication
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.utils import aware_utcnow

# Access tokens this process has verified, by their encoded form. A game client sends the same token with
# every request for its whole lifetime, and verifying it (signature, claims) is a tenth of a completion's CPU.
# A hit still checks expiry; the cache holds nothing a token's own bytes do not already prove.
VERIFIED_TOKENS_MAX = 10_000
_verified_tokens: dict[bytes, Any] = {}


class Banned(exceptions.PermissionDenied):
    default_code = "banned"
    default_detail = "This account is banned."


def refuse_if_banned(user: Any) -> None:
    if getattr(user, "is_banned", False):
        raise Banned()


class JWTAuthentication(jwt_authentication.JWTAuthentication):
    """simplejwt's bearer tokens; a banned user's still-unexpired access token stops working at once.

    On the methods an AccountCheckedInService view names, the token alone identifies the caller (no user query):
    their service reads the user's row anyway and refuses a banned or deactivated account there.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if not _checked_in_service(request) or api_settings.CHECK_REVOKE_TOKEN:
            return super().authenticate(request)
        header = self.get_header(request)
        raw_token = None if header is None else self.get_raw_token(header)
        if raw_token is None:
            return None
        token = self.get_validated_token(raw_token)
        return _token_bearer(token), token

    def get_validated_token(self, raw_token: bytes) -> Any:
        token = _verified_tokens.get(raw_token)
        if token is not None and _unexpired(token):
            return token
        try:
            token = super().get_validated_token(raw_token)
        except (OverflowError, ValueError, TypeError):  # signed, but e.g. an `exp` no datetime can hold
            raise jwt_authentication.InvalidToken("Token contained an unreadable claim") from None
        if len(_verified_tokens) >= VERIFIED_TOKENS_MAX:
            _verified_tokens.clear()
        _verified_tokens[raw_token] = token
        return token

    def get_user(self, validated_token: Any) -> Any:
        _token_bearer(validated_token)  # a malformed user id is an invalid token, not a failed query
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


class TokenBearer:
    """The caller as a valid access token names them, before their user row is read (see AccountCheckedInService)."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, user_id: Any) -> None:
        self.pk = self.id = user_id
        self.confirmed = False


def _unexpired(token: Any) -> bool:
    try:
        token.check_exp(current_time=aware_utcnow())
    except TokenError:
        return False
    return True


def _token_bearer(token: Any) -> TokenBearer:
    try:
        return TokenBearer(get_user_model()._meta.pk.to_python(token[api_settings.USER_ID_CLAIM]))
    except Exception:  # noqa: BLE001 - no or a malformed id in a signed token: an invalid token, not a 500
        raise jwt_authentication.InvalidToken("Token contained no recognizable user identification") from None


def _checked_in_service(request: Request) -> bool:
    view = (getattr(request, "parser_context", None) or {}).get("view")
    return request.method in getattr(view, "checked_in_service", ())


def confirm_account(user: TokenBearer) -> None:
    """What simplejwt's get_user checks, with the ban: raises AuthenticationFailed (no such user, inactive), Banned."""
    row = get_user_model().objects.filter(pk=user.pk).values("is_active", "is_banned").first()
    if row is None:
        raise exceptions.AuthenticationFailed("User not found", code="user_not_found")
    if api_settings.CHECK_USER_IS_ACTIVE and not row["is_active"]:
        raise exceptions.AuthenticationFailed("User is inactive", code="user_inactive")
    if row["is_banned"]:
        raise Banned()
    user.confirmed = True


class AccountCheckedInService:
    """APIView mixin: the methods in `checked_in_service` call a service that reads the caller's user row in its
    own transaction anyway and refuses a banned or deactivated account there, before it writes anything
    (scores.services.start_action / complete_action / cancel_action). Their bearer tokens thus cost no user query.
    Every other method, and every error response of those, confirms the account here first, so a banned caller
    still gets 403 on every path.
    """

    checked_in_service: tuple[str, ...] = ()

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if request.method not in self.checked_in_service:
            _confirm(request)

    def handle_exception(self, exc: Exception) -> Any:
        if not isinstance(exc, (Banned, exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            try:
                _confirm(self.request)
            except exceptions.APIException as refused:
                exc = refused
            except Exception:  # noqa: BLE001 - e.g. the database is down: answer for the original error
                pass
        return super().handle_exception(exc)


def _confirm(request: Request) -> None:
    user = getattr(request, "_user", None)
    if isinstance(user, TokenBearer) and not user.confirmed:
        confirm_account(user)
