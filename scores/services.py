"""The write path: every change to an action or a score happens here, in a transaction, on locked rows."""

import uuid
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from scores import broadcast, leaderboard
from scores.exceptions import ActionNotFound, ActionNotStarted, ActionTooFast, NotYourAction, UnknownActionType
from scores.models import Action, ActionType, ScoreEvent

User = get_user_model()


def start_action(
    *,
    user: Any,
    action_type_code: str,
    metadata: dict | None = None,
    client_ip: str | None = None,
    user_agent: str = "",
) -> Action:
    """Start an action of an active type for `user`. Raises UnknownActionType."""
    action_type = ActionType.objects.filter(code=action_type_code, is_active=True).first()
    if action_type is None:
        raise UnknownActionType(actionType=action_type_code)
    return Action.objects.create(
        user=user,
        action_type=action_type,
        started_at=timezone.now(),
        metadata=metadata or {},
        client_ip=client_ip,
        user_agent=user_agent[:512],
    )


def complete_action(*, user: Any, action_id: uuid.UUID | str) -> Action:
    """Complete a started action and pay its type's points exactly once.

    Raises ActionNotFound, NotYourAction, ActionTooFast (the action stays started) and ActionNotStarted
    (also when the action was past its maximum duration: it is then marked expired).
    """
    with transaction.atomic():
        action = _lock_action(user=user, action_id=action_id)
        now = timezone.now()
        _expire_if_overdue(action, now)
        if action.status == Action.Status.STARTED:
            if now < action.earliest_completion_at:
                raise ActionTooFast(action.earliest_completion_at, (action.earliest_completion_at - now).total_seconds())
            _pay(action, now)
            return action
    # Outside the atomic block so that an expiry found above is committed, not rolled back.
    raise ActionNotStarted(action.status)


def cancel_action(*, user: Any, action_id: uuid.UUID | str) -> Action:
    """Cancel a started action; it pays nothing. Raises ActionNotFound, NotYourAction, ActionNotStarted."""
    with transaction.atomic():
        action = _lock_action(user=user, action_id=action_id)
        _expire_if_overdue(action, timezone.now())
        if action.status == Action.Status.STARTED:
            action.status = Action.Status.CANCELLED
            action.save(update_fields=["status"])
            return action
    raise ActionNotStarted(action.status)


def _lock_action(*, user: Any, action_id: uuid.UUID | str) -> Action:
    # The row lock makes concurrent completions of one action queue up; the first pays, the rest see `completed`.
    try:
        action = Action.objects.select_for_update(of=("self",)).select_related("action_type").get(pk=action_id)
    except (Action.DoesNotExist, ValidationError, ValueError):
        raise ActionNotFound(actionId=str(action_id)) from None
    if action.user_id != user.pk:
        raise NotYourAction(actionId=str(action_id))
    return action


def _expire_if_overdue(action: Action, now: Any) -> None:
    if action.status == Action.Status.STARTED and now > action.expires_at:
        action.status = Action.Status.EXPIRED
        action.save(update_fields=["status"])


def _pay(action: Action, now: Any) -> None:
    points = action.action_type.points
    action.status = Action.Status.COMPLETED
    action.completed_at = now
    action.points_awarded = points
    action.save(update_fields=["status", "completed_at", "points_awarded"])
    _change_score(user_id=action.user_id, delta=points, action=action, reason=ScoreEvent.Reason.ACTION_COMPLETED, now=now)


def _change_score(*, user_id: Any, delta: int, action: Action | None, reason: str, now: Any) -> int:
    # The only place a total changes: F() increments in SQL, and the ledger row records the result.
    User.objects.filter(pk=user_id).update(score=F("score") + delta, score_updated_at=now)
    total = User.objects.values_list("score", flat=True).get(pk=user_id)
    ScoreEvent.objects.create(
        user_id=user_id, action=action, delta=delta, resulting_total=total, reason=reason, created_at=now
    )
    # Caches and viewers hear of the change only once it is durable, and never while the row locks are held.
    transaction.on_commit(partial(_after_score_change, user_id=user_id, score=total, reached_at=now))
    return total


def _after_score_change(*, user_id: Any, score: int, reached_at: datetime) -> None:
    leaderboard.record_score(user_id=user_id, score=score, reached_at=reached_at)
    broadcast.score_changed(user_id=user_id)
