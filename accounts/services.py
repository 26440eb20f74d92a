"""Account writes: registration, refresh-token rotation, bans."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from scores import broadcast, leaderboard
from scores.exceptions import ScoreboardError

User = get_user_model()


class UsernameTaken(ScoreboardError):
    http_status = 409
    code = "username_taken"
    message = "This username is already taken."


def register_user(*, username: str, password: str, email: str = "") -> User:
    """Create a player account. Raises UsernameTaken."""
    username = User.normalize_username(username)  # as create_user will store it
    if User.objects.filter(username__iexact=username).exists():
        raise UsernameTaken(username=username)
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError:
        raise UsernameTaken(username=username) from None


def rotate_refresh_token(raw_token: str) -> dict:
    """A new access and refresh token for a refresh token, which is blacklisted. Raises TokenError.

    simplejwt checks the blacklist and then adds to it without a lock, so several refreshes with one token at once
    could each succeed; the token's row is locked first, and the ones after the first see it blacklisted.
    """
    with transaction.atomic(), _unreadable_token_is_a_token_error():
        token = _readable_refresh_token(raw_token)
        list(OutstandingToken.objects.select_for_update().filter(jti=token[jwt_settings.JTI_CLAIM]).values_list("pk"))
        tokens = TokenRefreshSerializer(data={"refresh": raw_token})
        tokens.is_valid(raise_exception=True)
        return tokens.validated_data


def revoke_refresh_token(raw_token: str) -> None:
    """Blacklist a refresh token (log out). Raises TokenError."""
    with _unreadable_token_is_a_token_error():
        _readable_refresh_token(raw_token).blacklist()


def _readable_refresh_token(raw_token: str) -> RefreshToken:
    token = RefreshToken(raw_token)
    User._meta.pk.to_python(token.get(jwt_settings.USER_ID_CLAIM))
    return token


@contextmanager
def _unreadable_token_is_a_token_error() -> Iterator[None]:
    # Only a holder of the signing key can make these: a signed token with an `exp` past any date or an id that
    # is not a UUID, or one whose user was deleted. They are bad tokens (401), not server errors.
    try:
        yield
    except User.DoesNotExist:
        raise TokenError("The token's user no longer exists.") from None
    except (OverflowError, ValueError, TypeError, DjangoValidationError):
        raise TokenError("The token contains an unreadable claim.") from None


def ban_user(*, user_id: Any) -> User:
    """Ban a player: their requests get 403, their refresh tokens are blacklisted, the boards drop them."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        if not user.is_banned:
            user.is_banned, user.banned_at = True, timezone.now()
            user.save(update_fields=["is_banned", "banned_at"])
            for token in OutstandingToken.objects.filter(user_id=user.pk, expires_at__gt=user.banned_at):
                BlacklistedToken.objects.get_or_create(token=token)
            transaction.on_commit(partial(leaderboard.remove_user, user_id=user.pk))
            transaction.on_commit(partial(broadcast.score_changed, user_id=user.pk))  # viewers see them go
            transaction.on_commit(partial(broadcast.account_banned, user_id=user.pk))  # their own sockets end
    return user


def unban_user(*, user_id: Any) -> User:
    """Lift a ban: the player may log in again and returns to the boards with their score."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        if user.is_banned:
            user.is_banned, user.banned_at = False, None
            user.save(update_fields=["is_banned", "banned_at"])
            if user.score_updated_at is not None:
                transaction.on_commit(
                    partial(leaderboard.record_score, user_id=user.pk, score=user.score, reached_at=user.score_updated_at)
                )
                transaction.on_commit(partial(broadcast.score_changed, user_id=user.pk))
    return user
