"""The Redis backend's write: a user's entry on each board set to what the database holds (redis_board.py has the
key layout and the encoding). Called after a score change commits, and by the rebuild for users it replays."""

import uuid
from datetime import datetime, timezone
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Max, OuterRef, Subquery, Sum

from scores.leaderboard.periods import Window
from scores.leaderboard.redis_board import Keys, connection, exact_score, member, meta_key, user_hex
from scores.models import ScoreEvent

User = get_user_model()


class NotBuilt:
    """record()'s rank when the first board is not built: only the database knows it."""


NOT_BUILT = NotBuilt()


def record(
    user_id: Any, windows: list[Window], *, by_rebuild: bool = False, row: dict | None = None
) -> tuple[int, int | None | NotBuilt]:
    """Set the user's entry on each built board to what the database holds now; returns the number of boards
    changed and the user's 1-based rank on the first board afterwards (None: not on it; NOT_BUILT).

    Idempotent: it writes totals read from the database (never adds a delta), and a write older than the one on
    the board (by ledger version) is ignored, so retries and reordering cannot double-count or go back in time.
    `row`: the totals as change_snapshot() read them in the score change's own transaction (else read here). Such
    a write arrives after its commit, maybe after a ban's or unban's re-read of the same ledger version: it then
    yields to that entry, which holds the same totals and the newer ban state.
    """
    loses_ties = row is not None
    if row is None:
        row = _snapshot(user_id, windows)
    if row is None or row["version"] is None:
        return 0, NOT_BUILT
    keys = [meta_key()]
    args = [user_hex(user_id), row["username"], row["version"], row["version_at"].isoformat(), 0 if by_rebuild else 1,
            1 if loses_ties else 0]
    now = datetime.now(timezone.utc)
    for index, window in enumerate(windows):
        board = Keys(window)
        keys += [board.zset, board.users, board.built, board.lock, board.pending]
        score, reached_at = row[f"score_{index}"], row[f"reached_{index}"]
        present = reached_at is not None and not row["is_banned"]
        expires = window.expires_at(now)
        args += [
            1 if present else 0,
            exact_score(score) if present else 0,
            member(reached_at, row["id"]) if present else "",
            int(expires.timestamp()) if expires else 0,
        ]
    applied, rank = connection().record(keys=keys, args=args)
    return applied, NOT_BUILT if rank == -2 else None if rank == -1 else rank + 1


def change_snapshot(
    *, user_id: Any, username: str, total: int, version: int, at: datetime, windows: list[Window],
    period_totals: dict[str, tuple[int, datetime]],
) -> dict:
    """What record() needs, from the transaction that just changed the score, under the user's row lock.

    The all-time total, the version (the new ledger row's id) and its time come from that transaction; the period
    totals (window key -> (total, last change)) from its ledger insert. Same values as _snapshot() reads at commit.
    """
    row: dict[str, Any] = {
        "id": user_id if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id)),
        "username": username, "is_banned": False, "version": version, "version_at": at,
    }
    for index, window in enumerate(windows):
        score, reached = (total, at) if window.is_all_time else period_totals[window.key]
        row[f"score_{index}"], row[f"reached_{index}"] = score, reached
    return row


def _snapshot(user_id: Any, windows: list[Window]) -> dict | None:
    # One SQL statement, so the totals of every board and the version come from one consistent snapshot.
    events = ScoreEvent.objects.filter(user=OuterRef("pk")).order_by()
    newest = events.order_by("-id")
    annotations = {
        "version": Subquery(newest.values("id")[:1]),
        "version_at": Subquery(newest.values("created_at")[:1]),
    }
    for index, window in enumerate(windows):
        if window.is_all_time:
            continue
        inside = events.filter(created_at__gte=window.start, created_at__lt=window.end).values("user")
        annotations[f"score_{index}"] = Subquery(inside.annotate(total=Sum("delta")).values("total"))
        annotations[f"reached_{index}"] = Subquery(inside.annotate(last=Max("created_at")).values("last"))
    row = (
        User.objects.filter(pk=user_id)
        .values("id", "username", "score", "score_updated_at", "is_banned")
        .annotate(**annotations)
        .first()
    )
    if row is None:
        return None
    for index, window in enumerate(windows):
        if window.is_all_time:
            row[f"score_{index}"], row[f"reached_{index}"] = row["score"], row["score_updated_at"]
    return row
