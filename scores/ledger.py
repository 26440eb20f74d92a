"""Every score change in one round trip on PostgreSQL: the action's new state, the total's increment, the ledger row
and the user's period totals.

Called only by scores.services, inside its transaction, with the user's row already locked. Raw SQL here because
the ORM cannot say it in one statement (data-modifying CTEs; the period totals read in the same statement); table
and column names come from the models, and each statement's text is built once per process.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F, Max, Q, Sum

from scores.exceptions import UserNotFound
from scores.leaderboard.periods import Window
from scores.models import Action, ScoreEvent

User = get_user_model()


@dataclass(frozen=True)
class Change:
    event_id: int  # the ledger row's id: the boards' version
    total: int
    banned: bool
    username: str
    period_totals: dict[str, tuple[int, datetime]]  # window key -> (total, last change), this change included


def change_score(
    *, user_id: Any, delta: int, reason: str, at: datetime, windows: list[Window], multiplier: Decimal = Decimal(1),
    action_id: Any = None, action_changes: dict[str, Any] | None = None,
) -> Change:
    """Set `action_changes` on the action, add `delta` to the user's total and append the ledger row.

    The caller holds the user's row lock, so the period totals read here (for `windows`) miss no change of theirs
    and none can slip in. Raises UserNotFound.
    """
    changes = action_changes or {}
    if connection.vendor == "postgresql":
        return _change_in_one_statement(user_id, delta, reason, at, windows, multiplier, action_id, changes)
    if changes:
        Action.objects.filter(pk=action_id).update(**changes)
    updated = User.objects.filter(pk=user_id).update(score=F("score") + delta, score_updated_at=at)
    row = User.objects.filter(pk=user_id).values_list("score", "is_banned", "username").first() if updated else None
    if row is None:
        raise UserNotFound(userId=str(user_id))
    event = ScoreEvent.objects.create(
        user_id=user_id, action_id=action_id, delta=delta, resulting_total=row[0], reason=reason,
        multiplier=multiplier, created_at=at,
    )
    found = _totals_before(user_id, windows, exclude_id=event.pk)
    return Change(event.pk, row[0], row[1], row[2], _with_this_change(windows, found, delta, at))


def _with_this_change(windows: list[Window], found: list, delta: int, at: datetime) -> dict[str, tuple[int, datetime]]:
    # SUM of a bigint column is a numeric (Decimal) in PostgreSQL
    return {window.key: (int(before or 0) + delta, at if last is None else max(last, at))
            for window, (before, last) in zip(windows, found)}


def _change_in_one_statement(
    user_id: Any, delta: int, reason: str, at: datetime, windows: list[Window], multiplier: Decimal, action_id: Any,
    changes: dict[str, Any],
) -> Change:
    params: list[Any] = []
    if changes:
        params += [*changes.values(), action_id]
    params += [delta, at, user_id, user_id, action_id, delta, reason, multiplier, at]
    for window in windows:
        params += [window.start, window.end, window.start, window.end]
    params.append(user_id)
    if windows:
        params += [min(w.start for w in windows), max(w.end for w in windows)]
    with connection.cursor() as cursor:
        cursor.execute(_one_statement_sql(tuple(changes), len(windows)), params)
        row = cursor.fetchone()
    if row is None:
        raise UserNotFound(userId=str(user_id))
    found = [(row[4 + 2 * index], row[5 + 2 * index]) for index in range(len(windows))]
    return Change(row[0], int(row[1]), bool(row[2]), row[3], _with_this_change(windows, found, delta, at))


@cache
def _one_statement_sql(action_fields: tuple[str, ...], window_count: int) -> str:
    quote = connection.ops.quote_name

    def column(model: Any, name: str) -> str:
        return quote(model._meta.get_field(name).column)

    user_table, event_table = quote(User._meta.db_table), quote(ScoreEvent._meta.db_table)
    score, banned, username = (column(User, name) for name in ("score", "is_banned", "username"))
    event_pk, created, delta = quote(ScoreEvent._meta.pk.column), column(ScoreEvent, "created_at"), column(ScoreEvent, "delta")
    event_user = column(ScoreEvent, "user")
    inserted = ", ".join(column(ScoreEvent, name) for name in (
        "user", "action", "delta", "resulting_total", "reason", "multiplier", "created_at"))
    ctes = []
    if action_fields:
        assignments = ", ".join(f"{column(Action, name)} = %s" for name in action_fields)
        ctes.append(f"action_row AS (UPDATE {quote(Action._meta.db_table)} SET {assignments} "
                    f"WHERE {quote(Action._meta.pk.column)} = %s)")
    ctes.append(f"total AS (UPDATE {user_table} SET {score} = {score} + %s, {column(User, 'score_updated_at')} = %s "
                f"WHERE {quote(User._meta.pk.column)} = %s RETURNING {score}, {banned}, {username})")
    ctes.append(f"new_row AS (INSERT INTO {event_table} ({inserted}) SELECT %s, %s, %s, total.{score}, %s, %s, %s "
                f"FROM total RETURNING {event_pk})")
    columns = [f"new_row.{event_pk}", f"total.{score}", f"total.{banned}", f"total.{username}"]
    for _ in range(window_count):
        inside = f"(WHERE older.{created} >= %s AND older.{created} < %s)"
        columns += [f"SUM(older.{delta}) FILTER {inside}", f"MAX(older.{created}) FILTER {inside}"]
    # Every part of the statement reads the snapshot taken when it began: the new row is not among `older`.
    join = f"older.{event_user} = %s" + (f" AND older.{created} >= %s AND older.{created} < %s" if window_count
                                          else " AND FALSE")
    return (
        f"WITH {', '.join(ctes)} SELECT {', '.join(columns)} FROM new_row CROSS JOIN total "
        f"LEFT JOIN {event_table} older ON {join} GROUP BY {', '.join(columns[:4])}"
    )


def _totals_before(user_id: Any, windows: list[Window], *, exclude_id: int) -> list[tuple[int | None, datetime | None]]:
    if not windows:
        return []
    aggregates = {}
    for index, window in enumerate(windows):
        inside = Q(created_at__gte=window.start, created_at__lt=window.end)
        aggregates[f"score_{index}"] = Sum("delta", filter=inside)
        aggregates[f"reached_{index}"] = Max("created_at", filter=inside)
    found = (
        ScoreEvent.objects.filter(
            user_id=user_id,
            created_at__gte=min(window.start for window in windows),
            created_at__lt=max(window.end for window in windows),
        )
        .exclude(pk=exclude_id)
        .aggregate(**aggregates)
    )
    return [(found[f"score_{index}"], found[f"reached_{index}"]) for index in range(len(windows))]
