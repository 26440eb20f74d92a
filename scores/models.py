import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

MAX_POINTS = 1_000_000
MAX_MULTIPLIER = Decimal(100)


class ActionType(models.Model):
    """Something a user can do, and the points the server pays for it. Clients never choose points."""

    code = models.SlugField(max_length=64, unique=True, help_text="Stable identifier used by API clients.")
    name = models.CharField(max_length=120)
    # The bounds on points and multipliers keep every payment (points x the highest multiplier, 10^8 at most) within
    # the integer columns that hold it.
    points = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(MAX_POINTS)])
    min_duration_seconds = models.PositiveIntegerField(default=0)
    max_duration_seconds = models.PositiveIntegerField(default=3600, validators=[MinValueValidator(1)])
    is_active = models.BooleanField(default=True)
    daily_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many completions per user per UTC day; empty for no cap."
    )

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
    """One attempt at an ActionType by a user: started, then completed (paid once), cancelled or expired.

    Staff may void a completed action: it becomes `voided` and a negative ledger row reverses its payment.
    """

    class Status(models.TextChoices):
        STARTED = "started"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        VOIDED = "voided"

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
        ACTION_VOIDED = "action_voided"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="score_events")
    action = models.ForeignKey(Action, on_delete=models.PROTECT, null=True, blank=True, related_name="score_events")
    delta = models.BigIntegerField()
    resulting_total = models.BigIntegerField()
    reason = models.CharField(max_length=32, choices=Reason.choices)
    # The score multiplier in force when the points were paid (1 outside multiplier events).
    multiplier = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("1"))
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
            models.UniqueConstraint(
                fields=["action"],
                condition=Q(reason="action_voided"),
                name="score_event_one_void_per_action",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.delta:+d} → {self.resulting_total} ({self.reason})"


class MultiplierEvent(models.Model):
    """A window in which an action type pays `multiplier` times its points (a double-points weekend)."""

    action_type = models.ForeignKey(ActionType, on_delete=models.CASCADE, related_name="multiplier_events")
    multiplier = models.DecimalField(
        max_digits=6, decimal_places=2, validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(MAX_MULTIPLIER)], help_text="e.g. 2 for double points"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["action_type", "starts_at", "ends_at"], name="multiplier_event_window")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="multiplier_event_ends_after_start"),
            models.CheckConstraint(condition=Q(multiplier__gt=0), name="multiplier_event_positive"),
        ]

    def __str__(self) -> str:
        return f"x{self.multiplier} on {self.action_type.code} {self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%Y-%m-%d %H:%M}"


class SuspicionFlag(models.Model):
    """An anti-cheat finding about a user, for staff to review. Flags never change a score by themselves."""

    class Reason(models.TextChoices):
        POINTS_IN_WINDOW = "points_in_window", "Too many points in the sliding window"
        MIN_DURATION_STREAK = "min_duration_streak", "Repeated completions at the minimum duration"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suspicion_flags")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    resolved = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "reason", "resolved"], name="suspicion_flag_open")]

    def __str__(self) -> str:
        return f"{self.user}: {self.get_reason_display()}"
