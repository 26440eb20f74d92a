"""The database backend: every board computed by SQL from the source of truth.

All-time reads the users table (score, score_updated_at, id) through its partial index. A period board sums the
user's ledger rows inside the window; "reached that score" is then the user's latest ledger row in the window.
Users appear once they have scored (in the window); banned users never appear (and have no rank).
"""

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import F, Max, Q, QuerySet, Sum

from scores.leaderboard.board import Board, Entry
from scores.leaderboard.periods import Window
from scores.models import ScoreEvent

User = get_user_model()

BOARD_ORDER = ("-score", "reached_at", "user_id")


def top(window: Window, limit: int) -> Board:
    """The first `limit` users of the board."""
    return _slice(window, offset=0, limit=limit)


def rank_of(window: Window, user_id: Any) -> int | None:
    """The 1-based rank of the user, or None if they are not on this board."""
    rows = ranked_rows(window)
    mine = next(iter(rows.filter(user_id=user_id)[:1]), None)
    return None if mine is None else _rank(rows, mine)


def ranks_of(window: Window, user_ids: list[Any]) -> tuple[int, dict[str, tuple[int, int]]]:
    """(board version, {user id: (rank, score)}) for those of `user_ids` on the board."""
    rows = ranked_rows(window)
    found = {str(mine["user_id"]): (_rank(rows, mine), mine["score"]) for mine in rows.filter(user_id__in=user_ids)}
    return version()[1], found


def _rank(rows: QuerySet, mine: dict) -> int:
    score, reached_at, user_id = mine["score"], mine["reached_at"], mine["user_id"]
    ahead = rows.filter(
        Q(score__gt=score)
        | Q(score=score, reached_at__lt=reached_at)
        | Q(score=score, reached_at=reached_at, user_id__lt=user_id)
    )
    return ahead.count() + 1


def around(window: Window, user_id: Any, limit: int) -> Board:
    """A window of `limit` users with the user in the middle (shifted at the ends); empty if they are not on it."""
    rank = rank_of(window, user_id)
    if rank is None:
        return Board([], *version(), period=window.period)
    total = ranked_rows(window).count()
    offset = max(0, min(rank - 1 - (limit - 1) // 2, total - limit))
    return _slice(window, offset=offset, limit=limit)


def ranked_rows(window: Window) -> QuerySet:
    """One row per user on the board: user_id, username, score, reached_at (also what a Redis rebuild loads)."""
    if window.is_all_time:
        return User.objects.filter(score_updated_at__isnull=False, is_banned=False).values(
            user_id=F("id"), reached_at=F("score_updated_at")
        ).values("user_id", "username", "score", "reached_at")
    return (
        ScoreEvent.objects.filter(created_at__gte=window.start, created_at__lt=window.end, user__is_banned=False)
        .order_by()
        .values("user_id")
        .annotate(username=F("user__username"), score=Sum("delta"), reached_at=Max("created_at"))
        .values("user_id", "username", "score", "reached_at")
    )


def version() -> tuple[datetime | None, int]:
    """(when, id) of the newest ledger row: every score change appends one, so its id numbers the boards' states."""
    latest = ScoreEvent.objects.order_by("-id").values_list("created_at", "id").first()
    return latest if latest is not None else (None, 0)


def _slice(window: Window, *, offset: int, limit: int) -> Board:
    rows = ranked_rows(window).order_by(*BOARD_ORDER)[offset : offset + limit]
    entries = [
        Entry(rank=offset + index + 1, user_id=str(row["user_id"]), username=row["username"], score=row["score"])
        for index, row in enumerate(rows)
    ]
    return Board(entries, *version(), period=window.period)
