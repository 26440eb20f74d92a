"""Account writes: registration."""

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from scores.exceptions import ScoreboardError

User = get_user_model()


class UsernameTaken(ScoreboardError):
    http_status = 409
    code = "username_taken"
    message = "This username is already taken."


def register_user(*, username: str, password: str, email: str = "") -> User:
    """Create a player account. Raises UsernameTaken."""
    if User.objects.filter(username__iexact=username).exists():
        raise UsernameTaken(username=username)
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password, email=email)
    except IntegrityError:
        raise UsernameTaken(username=username) from None
