"""The two statements every score change runs, each in one round trip: the total's increment and the ledger row.

Called only by scores.services, inside its transaction. Raw SQL here because the ORM cannot say either in one
statement (UPDATE ... RETURNING; INSERT with the user's period totals read in the same statement); table and
column names come from the models.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Max, Q, Sum

from scores.exceptions import UserNotFound
from scores.leaderboard.periods import Window
from scores.models import ScoreEvent

User = get_user_model()


def increment_score(user_id: Any, delta: int, now: datetime) -> tuple[int, bool, str]:
    """score += delta; returns (new total, is_banned, username). Takes the user's row lock. Raises UserNotFound."""
    meta, quote = User._meta, connection.ops.quote_name
    score, updated, banned, username, pk = (
        meta.get_field(name) for name in ("score", "score_updated_at", "is_banned", "username", "id")
    )
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {quote(score.column)} = {quote(score.column)} + %s, "
        f"{quote(updated.column)} = %s WHERE {quote(pk.column)} = %s "
        f"RETURNING {quote(score.column)}, {quote(banned.column)}, {quote(username.column)}"
    )
    params = [delta, updated.get_db_prep_save(now, connection), pk.get_db_prep_save(user_id, connection)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise UserNotFound(userId=str(user_id))
    return int(row[0]), bool(row[1]), row[2]


def append(
    *, user_id: Any, action_id: Any, delta: int, total: int, reason: str, multiplier: Decimal, at: datetime,
    windows: list[Window],
) -> tuple[int, dict[str, tuple[int, datetime]]]:
    """Insert the ledger row; returns its id and, per window in `windows`, the user's (total, last change) in it
    with this row included. Run after increment_score: under the user's row lock, so no change of theirs is
    missing from the totals and none can slip in.
    """
    values = {
        "user_id": user_id, "action_id": action_id, "delta": delta, "resulting_total": total, "reason": reason,
        "multiplier": multiplier, "created_at": at,
    }
    if connection.vendor == "postgresql":
        event_id, found = _insert_with_totals(values, windows)
    else:  # one statement cannot both insert and read the table's older rows there: two
        event_id = ScoreEvent.objects.create(**values).pk
        found = _totals_before(user_id, windows, exclude_id=event_id)
    totals = {}
    for window, (before, last) in zip(windows, found):
        # SUM of a bigint column is a numeric (Decimal) in PostgreSQL
        totals[window.key] = (int(before or 0) + delta, at if last is None else max(last, at))
    return event_id, totals


def _insert_with_totals(values: dict, windows: list[Window]) -> tuple[int, list[tuple[int | None, datetime | None]]]:
    meta, quote = ScoreEvent._meta, connection.ops.quote_name
    fields = [meta.get_field(name) for name in values]
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    user, created = (quote(meta.get_field(name).column) for name in ("user", "created_at"))
    delta = quote(meta.get_field("delta").column)
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values())]
    columns = [f"new_row.{pk}"]
    for window in windows:
        inside = f"(WHERE older.{created} >= %s AND older.{created} < %s)"
        columns += [f"SUM(older.{delta}) FILTER {inside}", f"MAX(older.{created}) FILTER {inside}"]
        params += [window.start, window.end, window.start, window.end]
    # The outer SELECT reads the snapshot taken when this statement began: the new row is not in it.
    join = f"older.{user} = %s"
    params.append(values["user_id"])
    if windows:
        join += f" AND older.{created} >= %s AND older.{created} < %s"
        params += [min(w.start for w in windows), max(w.end for w in windows)]
    else:
        join += " AND FALSE"
    sql = (
        f"WITH new_row AS (INSERT INTO {table} ({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {pk}) "
        f"SELECT {', '.join(columns)} FROM new_row LEFT JOIN {table} older ON {join} GROUP BY new_row.{pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0], [(row[1 + 2 * index], row[2 + 2 * index]) for index in range(len(windows))]


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
