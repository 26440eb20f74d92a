import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A player. `score` is written only by scores.services, together with a ScoreEvent row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    score = models.BigIntegerField(default=0, editable=False)
    # When the score last changed: the earlier of two equal scores ranks first. Null until the first score.
    score_updated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Banned players are refused by the API (403) and left off the boards; written only by accounts.services.
    is_banned = models.BooleanField(default=False, editable=False)
    banned_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [
            models.Index(
                models.F("score").desc(), "score_updated_at", "id",
                name="user_leaderboard_order",
                condition=models.Q(score_updated_at__isnull=False),
            ),
        ]

    @property
    def has_scored(self) -> bool:
        return self.score_updated_at is not None
