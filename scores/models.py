import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q


class ActionType(models.Model):
    """Something a user can do, and the points the server pays for it. Clients never choose points."""

    code = models.SlugField(max_length=64, unique=True, help_text="Stable identifier used by API clients.")
    name = models.CharField(max_length=120)
    points = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    min_duration_seconds = models.PositiveIntegerField(default=0)
    max_duration_seconds = models.PositiveIntegerField(default=3600, validators=[MinValueValidator(1)])
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_duration_seconds__gt=F("min_duration_seconds")),
                name="action_type_max_duration_above_min",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.points} pts)"


class Action(models.Model):
    """One attempt at an ActionType by a user: started, then completed (paid once), cancelled or expired."""

    class Status(models.TextChoices):
        STARTED = "started"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="actions")
    action_type = models.ForeignKey(ActionType, on_delete=models.PROTECT, related_name="actions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STARTED)
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    points_awarded = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["user", "-started_at"], name="action_user_newest"),
            models.Index(fields=["status", "started_at"], name="action_status_started"),
        ]

    def __str__(self) -> str:
        return f"{self.action_type.code} by {self.user} ({self.status})"

    @property
    def expires_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.action_type.max_duration_seconds)

    @property
    def earliest_completion_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.action_type.min_duration_seconds)


class ScoreEvent(models.Model):
    """The append-only score ledger: the sum of a user's deltas always equals their score."""

    class Reason(models.TextChoices):
        ACTION_COMPLETED = "action_completed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="score_events")
    action = models.ForeignKey(Action, on_delete=models.PROTECT, null=True, blank=True, related_name="score_events")
    delta = models.BigIntegerField()
    resulting_total = models.BigIntegerField()
    reason = models.CharField(max_length=32, choices=Reason.choices)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "id"], name="score_event_user"),
            # Period boards: every user's rows in a day/week (rebuilds, database backend), and one user's rows in
            # a window (each Redis write-through).
            models.Index(fields=["created_at"], name="score_event_time"),
            models.Index(fields=["user", "created_at"], name="score_event_user_time"),
        ]
        constraints = [
            # A second payment for one action is refused by the database itself, whatever the code does.
            models.UniqueConstraint(
                fields=["action"],
                condition=Q(reason="action_completed"),
                name="score_event_one_payment_per_action",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.delta:+d} → {self.resulting_total} ({self.reason})"
