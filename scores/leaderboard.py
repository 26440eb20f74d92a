"""Reads of the board: top N, a user's rank, the window around a user.

Order: score descending, then who reached that score first, then user id, so ranks are strict and stable.
Users appear once they have scored; banned users never appear (and have no rank).
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Max, Q, QuerySet

from scores.models import ScoreEvent

User = get_user_model()

BOARD_ORDER = ("-score", "score_updated_at", "id")


@dataclass(frozen=True)
class Entry:
    rank: int
    user_id: str
    username: str
    score: int

    def as_json(self) -> dict:
        return {"rank": self.rank, "userId": self.user_id, "username": self.username, "score": self.score}


@dataclass(frozen=True)
class Board:
    entries: list[Entry] = field(default_factory=list)
    last_updated: datetime | None = None
    version: int = 0

    def as_json(self) -> dict:
        return {
            "data": [entry.as_json() for entry in self.entries],
            "lastUpdated": self.last_updated.isoformat() if self.last_updated else None,
            "version": self.version,
        }


def top(limit: int = 10) -> Board:
    """The first `limit` users of the board."""
    return _board_slice(offset=0, limit=limit)


def rank_of(user: Any) -> int | None:
    """The 1-based rank of `user`, or None if they have not scored yet."""
    row = User.objects.filter(pk=user.pk, is_banned=False).values("score", "score_updated_at").first()
    if row is None or row["score_updated_at"] is None:
        return None
    score, reached_at = row["score"], row["score_updated_at"]
    ahead = _ranked_users().filter(
        Q(score__gt=score)
        | Q(score=score, score_updated_at__lt=reached_at)
        | Q(score=score, score_updated_at=reached_at, id__lt=user.pk)
    )
    return ahead.count() + 1


def around(user: Any, limit: int = 10) -> Board:
    """A window of `limit` users with `user` in the middle (shifted at the ends); empty if they have not scored."""
    rank = rank_of(user)
    if rank is None:
        return Board([], *_version())
    offset = max(0, rank - 1 - (limit - 1) // 2)
    total = _ranked_users().count()
    offset = max(0, min(offset, total - limit))
    return _board_slice(offset=offset, limit=limit)


def record_score(*, user_id: Any, score: int, reached_at: datetime) -> None:
    """Apply a committed score change to the board. The database board reads the users table, so nothing to do."""


def remove_user(*, user_id: Any) -> None:
    """Take a (banned) user off the board. The database board filters banned users out, so nothing to do."""


def _board_slice(*, offset: int, limit: int) -> Board:
    rows = _ranked_users().order_by(*BOARD_ORDER).values_list("id", "username", "score")[offset : offset + limit]
    entries = [
        Entry(rank=offset + index + 1, user_id=str(user_id), username=username, score=score)
        for index, (user_id, username, score) in enumerate(rows)
    ]
    return Board(entries, *_version())


def _ranked_users() -> QuerySet:
    return User.objects.filter(score_updated_at__isnull=False, is_banned=False)


def _version() -> tuple[datetime | None, int]:
    # Every score change appends one ledger row, so the newest ledger id numbers the board's versions.
    latest = ScoreEvent.objects.aggregate(version=Max("id"))["version"]
    if latest is None:
        return None, 0
    return ScoreEvent.objects.values_list("created_at", flat=True).get(pk=latest), latest
