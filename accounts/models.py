import uuid
from typing import Any

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

    # Columns only the services write, each under the user's row lock. A plain save() of an instance read earlier
    # (the admin's change form, its password change) would write back the values it read and undo a payment or a
    # ban committed in between, so save() without update_fields leaves them out.
    SERVICE_FIELDS = frozenset({"score", "score_updated_at", "is_banned", "banned_at"})

    class Meta:
        indexes = [
            models.Index(
                models.F("score").desc(), "score_updated_at", "id",
                name="user_leaderboard_order",
                condition=models.Q(score_updated_at__isnull=False),
            ),
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("update_fields") is None and not self._state.adding and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                field.name for field in self._meta.concrete_fields
                if not field.primary_key and field.name not in self.SERVICE_FIELDS
            ]
        super().save(*args, **kwargs)

    @property
    def has_scored(self) -> bool:
        return self.score_updated_at is not None
