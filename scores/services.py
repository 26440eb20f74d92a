"""The write path: every change to an action or a score happens here, in a transaction, on locked rows."""

import uuid
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from scoreboard_project import metrics
from scores import anticheat, broadcast, leaderboard, ledger, locking
from scores.exceptions import (
    AccountInactive,
    ActionNotCompleted,
    ActionNotFound,
    ActionNotStarted,
    ActionTooFast,
    NotYourAction,
    UnknownActionType,
    UserBanned,
    UserNotFound,
)
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
    """Start an action of an active type for `user` (anything with the user's `pk`).

    Raises UnknownActionType, UserBanned, AccountInactive, TooManyOpenActions, DailyCapReached.
    """
    action_type = ActionType.objects.filter(code=action_type_code, is_active=True).first()
    if action_type is None:
        raise UnknownActionType(actionType=action_type_code)
    with transaction.atomic():
        # Lock the user's row so that concurrent starts queue up and cannot together pass the open-action limit.
        player = _lock_user(user.pk)
        _ensure_may_play(player)
        now = timezone.now()
        anticheat.ensure_room_for_another_action(user_id=user.pk, now=now)
        anticheat.ensure_under_daily_cap(user_id=user.pk, action_type=action_type, now=now)
        return Action.objects.create(
            user=player,
            action_type=action_type,
            started_at=now,
            metadata=metadata or {},
            client_ip=client_ip,
            user_agent=user_agent[:512],
        )


def complete_action(*, user: Any, action_id: uuid.UUID | str) -> Action:
    """Complete a started action and pay its type's points exactly once.

    Raises ActionNotFound, NotYourAction, UserBanned, AccountInactive, ActionTooFast and DailyCapReached (the
    action stays started), and ActionNotStarted (also when the action was past its maximum duration: it is then
    marked expired).
    """
    with transaction.atomic():
        # The owner's row is locked with the action, so the payment's one statement reads their ledger rows with
        # no change of theirs in flight (and the daily cap counts under the same lock).
        action = _lock_action(user=user, action_id=action_id, lock_owner=True)
        now = timezone.now()
        _expire_if_overdue(action, now)
        if action.status == Action.Status.STARTED:
            if now < action.earliest_completion_at:
                raise ActionTooFast(action.earliest_completion_at, (action.earliest_completion_at - now).total_seconds())
            anticheat.ensure_under_daily_cap(user_id=action.user_id, action_type=action.action_type, now=now)
            _pay(action, now)
            anticheat.flag_if_suspicious(action=action, now=now)
            return action
    # Outside the atomic block so that an expiry found above is committed, not rolled back.
    raise ActionNotStarted(action.status)


def cancel_action(*, user: Any, action_id: uuid.UUID | str) -> Action:
    """Cancel a started action; it pays nothing. Raises ActionNotFound, NotYourAction, UserBanned, AccountInactive,
    ActionNotStarted."""
    with transaction.atomic():
        action = _lock_action(user=user, action_id=action_id, lock_owner=False)
        _expire_if_overdue(action, timezone.now())
        if action.status == Action.Status.STARTED:
            action.status = Action.Status.CANCELLED
            action.save(update_fields=["status"])
            return action
    raise ActionNotStarted(action.status)


def award_action_points(*, user_id: uuid.UUID | str, action_type_code: str, source: dict) -> Action:
    """Pay a trusted game server's award of one action of a type (points from the type, times any multiplier).

    Recorded as an action completed at once, so staff can void it like any other. Raises UserNotFound,
    UserBanned, UnknownActionType, DailyCapReached.
    """
    action_type = ActionType.objects.filter(code=action_type_code, is_active=True).first()
    if action_type is None:
        raise UnknownActionType(actionType=action_type_code)
    with transaction.atomic():
        user = _lock_user(user_id)
        if user.is_banned:
            raise UserBanned(userId=str(user_id))
        now = timezone.now()
        anticheat.ensure_under_daily_cap(user_id=user.pk, action_type=action_type, now=now)
        action = Action.objects.create(user=user, action_type=action_type, started_at=now, metadata=source)
        _pay(action, now)
        anticheat.flag_if_suspicious(action=action, now=now, check_pace=False)
        return action


def void_action(*, action_id: uuid.UUID | str) -> Action:
    """Void a completed action: a negative ledger row reverses its payment; nothing is deleted.

    Raises ActionNotFound, ActionNotCompleted.
    """
    with transaction.atomic():
        try:
            action = Action.objects.select_for_update(of=("self",)).select_related("action_type").get(pk=action_id)
        except (Action.DoesNotExist, ValidationError, ValueError):
            raise ActionNotFound(actionId=str(action_id)) from None
        if action.status != Action.Status.COMPLETED:
            raise ActionNotCompleted(action.status)
        _lock_user(action.user_id)  # after the action: the one lock order everywhere
        action.status = Action.Status.VOIDED
        _change_score(
            user_id=action.user_id, delta=-action.points_awarded, action=action,
            reason=ScoreEvent.Reason.ACTION_VOIDED, now=timezone.now(), action_changes={"status": action.status},
        )
        return action


def _lock_user(user_id: Any) -> Any:
    try:
        return User.objects.select_for_update().get(pk=user_id)
    except (User.DoesNotExist, ValidationError, ValueError):
        raise UserNotFound(userId=str(user_id)) from None


def _lock_action(*, user: Any, action_id: uuid.UUID | str, lock_owner: bool) -> Action:
    # The row lock makes concurrent completions of one action queue up; the first pays, the rest see `completed`.
    # The owner's row comes along for the account check, which spares the API a user query.
    try:
        action = locking.lock_action(_as_uuid(action_id), lock_owner=lock_owner)
    except (Action.DoesNotExist, ValueError):
        raise ActionNotFound(actionId=str(action_id)) from None
    if action.user_id != user.pk:
        raise NotYourAction(actionId=str(action_id))
    _ensure_may_play(action.user)
    return action


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    # Checked before the database sees it: PostgreSQL would refuse a malformed id and abort the transaction.
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _ensure_may_play(player: Any) -> None:
    # Read in the transaction that writes: the API authenticates start/complete/cancel by token alone and relies
    # on this (accounts.authentication.AccountCheckedInService).
    if player.is_banned:
        raise UserBanned(userId=str(player.pk))
    if not player.is_active:
        raise AccountInactive(userId=str(player.pk))


def _expire_if_overdue(action: Action, now: Any) -> None:
    if action.status == Action.Status.STARTED and now > action.expires_at:
        action.status = Action.Status.EXPIRED
        action.save(update_fields=["status"])


def _pay(action: Action, now: Any) -> None:
    multiplier = anticheat.multiplier_for(action_type=action.action_type, now=now)
    points = int((action.action_type.points * multiplier).to_integral_value(rounding=ROUND_HALF_UP))
    action.status = Action.Status.COMPLETED
    action.completed_at = now
    action.points_awarded = points
    # The payer's new total, for the response (saves the API a read of the user after the transaction).
    action.resulting_total = _change_score(
        user_id=action.user_id, delta=points, action=action, reason=ScoreEvent.Reason.ACTION_COMPLETED, now=now,
        multiplier=multiplier, action_changes={"status": action.status, "completed_at": now, "points_awarded": points},
    )
    transaction.on_commit(partial(metrics.count_completion, action.action_type.code, points))


def _change_score(
    *, user_id: Any, delta: int, action: Action | None, reason: str, now: Any, multiplier: Decimal = Decimal(1),
    action_changes: dict[str, Any] | None = None,
) -> int:
    # The only place a total changes, under the user's row lock the caller took: the action's new state, the
    # increment and the ledger row in one statement, which also returns the Redis boards' period totals.
    change = ledger.change_score(
        user_id=user_id, delta=delta, reason=reason, at=now, windows=leaderboard.windows_to_total(now),
        multiplier=multiplier, action_id=action.pk if action else None, action_changes=action_changes,
    )
    snapshot = None if change.banned else leaderboard.snapshot_for_change(
        user_id=user_id, username=change.username, total=change.total, version=change.event_id, at=now,
        period_totals=change.period_totals,
    )
    # Caches and viewers hear of the change only once it is durable, and never while the row locks are held.
    transaction.on_commit(partial(
        _after_score_change, user_id=user_id, score=change.total, reached_at=now, banned=change.banned,
        snapshot=snapshot, action=action,
    ))
    return change.total


def _after_score_change(
    *, user_id: Any, score: int, reached_at: datetime, banned: bool = False, snapshot: dict | None = None,
    action: Action | None = None,
) -> None:
    if banned:  # e.g. staff voiding a banned cheater's actions: the total changes, the boards keep them out
        leaderboard.remove_user(user_id=user_id)
    else:
        rank = leaderboard.record_score(user_id=user_id, score=score, reached_at=reached_at, snapshot=snapshot)
        if action is not None and rank is not leaderboard.NOT_RANKED:
            # The payer's all-time rank as the board write left it, for the response (saves the API a Redis read).
            action.resulting_rank = rank
    broadcast.score_changed(user_id=user_id)
