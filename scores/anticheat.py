"""Anti-cheat rules used by scores.services inside its transactions: open-action and daily limits, multipliers,
and suspicion flags. Callers hold the user's row lock, so the counts here cannot race with another write.
"""

import threading
import time as monotonic_clock
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import F, Max, Sum

from scores.exceptions import DailyCapReached, TooManyOpenActions
from scores.models import Action, ActionType, MultiplierEvent, ScoreEvent, SuspicionFlag


def ensure_room_for_another_action(*, user_id: Any, now: datetime) -> None:
    """Raise TooManyOpenActions if the user already has MAX_OPEN_ACTIONS_PER_USER started, unexpired actions.

    Overdue actions are not counted (so an abandoned action never blocks a player) but not written either: taking
    their row locks here, under the user's lock, would invert the action-then-user lock order of complete_action.
    """
    # Two columns per row, not model instances: this runs on every start, and a player may hold many.
    started = Action.objects.filter(user_id=user_id, status=Action.Status.STARTED).values_list(
        "started_at", "action_type__max_duration_seconds"
    )
    still_open = sum(1 for started_at, seconds in started if now <= started_at + timedelta(seconds=seconds))
    if still_open >= settings.MAX_OPEN_ACTIONS_PER_USER:
        raise TooManyOpenActions(limit=settings.MAX_OPEN_ACTIONS_PER_USER, open=still_open)


def ensure_under_daily_cap(*, user_id: Any, action_type: ActionType, now: datetime) -> None:
    """Raise DailyCapReached if the type has a daily cap and the user has used it up this UTC day."""
    if action_type.daily_cap is None:
        return
    day_start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    done_today = Action.objects.filter(
        user_id=user_id, action_type=action_type, status=Action.Status.COMPLETED, completed_at__gte=day_start
    ).count()
    if done_today >= action_type.daily_cap:
        raise DailyCapReached(
            actionType=action_type.code, dailyCap=action_type.daily_cap, resetsAt=(day_start + timedelta(days=1)).isoformat()
        )


def multiplier_for(*, action_type: ActionType, now: datetime) -> Decimal:
    """The multiplier in force for `action_type` at `now`: the highest running event's, else 1.

    Every completion asks, so this process keeps each type's not-yet-ended events for MULTIPLIER_CACHE_MS (the
    running one is then picked in Python for the exact `now`). An event saved or deleted in this process clears
    the cache at once; one saved in another process is seen within MULTIPLIER_CACHE_MS. 0 turns the cache off.
    """
    ttl = settings.MULTIPLIER_CACHE_MS / 1000
    if ttl <= 0:
        best = MultiplierEvent.objects.filter(action_type=action_type, starts_at__lte=now, ends_at__gt=now).aggregate(
            best=Max("multiplier")
        )["best"]
        return best if best is not None else Decimal(1)
    clock = monotonic_clock.monotonic()
    cached = _multiplier_cache.get(action_type.pk)
    if cached is None or cached[0] <= clock:
        events = list(
            # A minute of slack: a concurrent request's `now` may be a little earlier than this one's.
            MultiplierEvent.objects.filter(action_type_id=action_type.pk, ends_at__gt=now - timedelta(minutes=1))
            .order_by()
            .values_list("starts_at", "ends_at", "multiplier")
        )
        cached = (clock + ttl, events)
        with _multiplier_lock:
            _multiplier_cache[action_type.pk] = cached
    running = [multiplier for starts_at, ends_at, multiplier in cached[1] if starts_at <= now < ends_at]
    return max(running) if running else Decimal(1)


_multiplier_cache: dict[Any, tuple[float, list[tuple[datetime, datetime, Decimal]]]] = {}
_multiplier_lock = threading.Lock()


def forget_multipliers(**_: Any) -> None:
    """Clear the multiplier cache (connected to MultiplierEvent's post_save/post_delete; tests call it too)."""
    with _multiplier_lock:
        _multiplier_cache.clear()


def flag_if_suspicious(*, action: Action, now: datetime, check_pace: bool = True) -> None:
    """Flag the action's user for staff review if a suspicion rule fires; never refuses or changes a score.

    `check_pace=False` for awards by trusted game servers, which have no client-side duration to judge.
    """
    _flag_points_in_window(user_id=action.user_id, now=now)
    if check_pace:
        _flag_min_duration_streak(user_id=action.user_id, now=now)


def _flag_points_in_window(*, user_id: Any, now: datetime) -> None:
    threshold = settings.SUSPICION_WINDOW_POINTS
    if threshold <= 0:
        return
    since = now - timedelta(seconds=settings.SUSPICION_WINDOW_SECONDS)
    points = ScoreEvent.objects.filter(
        user_id=user_id, reason=ScoreEvent.Reason.ACTION_COMPLETED, created_at__gte=since
    ).aggregate(points=Sum("delta"))["points"] or 0
    if points > threshold:
        _flag_once(
            user_id=user_id, reason=SuspicionFlag.Reason.POINTS_IN_WINDOW, since=since, now=now,
            details={"points": points, "threshold": threshold, "windowSeconds": settings.SUSPICION_WINDOW_SECONDS},
        )


def _flag_min_duration_streak(*, user_id: Any, now: datetime) -> None:
    streak = settings.SUSPICION_MIN_DURATION_STREAK
    if streak <= 0:
        return
    margin = timedelta(seconds=settings.SUSPICION_MIN_DURATION_MARGIN_SECONDS)
    latest = list(
        Action.objects.filter(user_id=user_id, status=Action.Status.COMPLETED, action_type__min_duration_seconds__gt=0)
        .exclude(completed_at=F("started_at"))  # server awards, paid at once: no player pace to judge
        .select_related("action_type")
        .order_by("-completed_at")[:streak]
    )
    if len(latest) < streak or any(action.completed_at - action.earliest_completion_at > margin for action in latest):
        return
    _flag_once(
        user_id=user_id, reason=SuspicionFlag.Reason.MIN_DURATION_STREAK, since=latest[-1].completed_at, now=now,
        details={
            "streak": streak,
            "marginSeconds": settings.SUSPICION_MIN_DURATION_MARGIN_SECONDS,
            "actionIds": [str(action.pk) for action in latest],
        },
    )


def _flag_once(*, user_id: Any, reason: str, since: datetime, now: datetime, details: dict) -> None:
    # One open flag per rule per stretch of behaviour: a cheater on a streak gets one flag, not one per action.
    if SuspicionFlag.objects.filter(user_id=user_id, reason=reason, resolved=False, created_at__gte=since).exists():
        return
    SuspicionFlag.objects.create(user_id=user_id, reason=reason, details=details, created_at=now)
