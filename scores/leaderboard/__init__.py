"""The board: top N, a user's rank, the window around a user, for the all-time, daily and weekly periods.

Order: score descending, then who reached that score first, then user id, so ranks are strict and stable.
Two backends give exactly that order: the database (the source of truth, and the embedded default) and Redis
sorted sets (LEADERBOARD_BACKEND=redis, the default whenever REDIS_URL is set). With Redis every read still
has the database behind it: a board that is missing, being rebuilt, or unreachable is answered from the
database, and a score change that Redis missed marks the boards for rebuild once it answers again.
"""

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Callable

from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError

from scoreboard_project.metrics import BOARD_CACHE
from scores.leaderboard import database, periods, redis_board, redis_rebuild, redis_record
from scores.leaderboard.board import Board, Entry
from scores.leaderboard.periods import ALL_TIME, PERIODS

__all__ = [
    "ALL_TIME", "BOARD_ORDER", "PERIODS", "Board", "Entry",
    "NOT_RANKED", "answers_from_redis", "around", "rank_of", "ranks_of", "rebuild", "record_score", "redis_status",
    "remove_user", "top", "tops",
]

logger = logging.getLogger(__name__)


class _RedisHealth:
    """This process's view of Redis: when to try it again after a failure, and whether it missed a write."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.retry_at = 0.0
        self.missed_writes = False
        self.last_error = ""

    def failed(self, exc: BaseException, *, missed_write: bool) -> None:
        with self.lock:
            self.retry_at = time.monotonic() + settings.LEADERBOARD_REDIS_RETRY_SECONDS
            self.missed_writes = self.missed_writes or missed_write
            self.last_error = type(exc).__name__  # the message names hosts and ports: it stays in the log

    def reset(self) -> None:
        with self.lock:
            self.retry_at, self.missed_writes, self.last_error = 0.0, False, ""


_health = _RedisHealth()

# The all-time order as a User queryset ordering (kept from the single-module board for callers that sort users).
BOARD_ORDER = ("-score", "score_updated_at", "id")


def top(limit: int = 10, period: str = ALL_TIME) -> Board:
    """The first `limit` users of the period's current board. Raises ValueError for an unknown period."""
    window = periods.current(period)
    answered, board = _ask_redis(window, lambda: redis_board.top(window, limit))
    return board if answered else database.top(window, limit)


def tops(limit: int, chosen: Iterable[str]) -> dict[str, Board]:
    """top() of each chosen period; from Redis the boards come in one round trip (the broadcast flush reads all)."""
    windows = [periods.current(period) for period in chosen]
    found: dict[str, Board | None] = {}
    if _uses_redis() and _redis_available():
        try:
            found = redis_board.tops(windows, limit)
        except RedisError:
            pass  # top() below meets the same error and handles it (fallback, retry delay)
    boards = {}
    for window in windows:
        board = found.get(window.key)
        if board is not None:
            BOARD_CACHE.labels(result="hit").inc()
        boards[window.period] = board if board is not None else top(limit, window.period)
    return boards


def rank_of(user: Any, period: str = ALL_TIME) -> int | None:
    """The 1-based rank of `user` on the period's current board, or None if they are not on it."""
    window = periods.current(period)
    answered, rank = _ask_redis(window, lambda: redis_board.rank_of(window, user.pk))
    return rank if answered else database.rank_of(window, user.pk)


def ranks_of(user_ids: list[Any], period: str = ALL_TIME) -> tuple[int, dict[str, tuple[int, int]]]:
    """(board version, {user id: (rank, score)}) for those of `user_ids` on the period's current board."""
    window = periods.current(period)
    answered, found = _ask_redis(window, lambda: redis_board.ranks_of(window, user_ids))
    return found if answered else database.ranks_of(window, user_ids)


def around(user: Any, limit: int = 10, period: str = ALL_TIME) -> Board:
    """A window of `limit` users with `user` in the middle (shifted at the ends); empty if they are not on it."""
    window = periods.current(period)
    answered, board = _ask_redis(window, lambda: redis_board.around(window, user.pk, limit))
    return board if answered else database.around(window, user.pk, limit)


# record_score's answer when only rank_of() knows the rank.
NOT_RANKED = redis_record.NOT_BUILT


def record_score(
    *, user_id: Any, score: int, reached_at: datetime | None, snapshot: dict | None = None
) -> int | None | redis_record.NotBuilt:
    """Apply a committed score change to the boards it belongs to (write-through, after commit). Never raises.

    The database board reads the tables, so only Redis has work to do. A Redis failure is logged and remembered:
    the completion that called this has committed and must succeed; the boards are rebuilt when Redis answers.
    `snapshot`: from snapshot_for_change() in the change's transaction (saves a read after commit).
    Returns the user's all-time rank right after the write (None: not on the board), or NOT_RANKED when only
    rank_of() can tell (database backend, Redis unavailable, board not built).
    """
    return _write_through(user_id, periods.all_containing(reached_at or timezone.now()), snapshot)


def windows_to_total(at: datetime) -> list[periods.Window]:
    """The period windows whose totals snapshot_for_change needs for a change at `at` (none on the database backend,
    which reads the tables)."""
    if not _uses_redis():
        return []
    return [window for window in periods.all_containing(at) if not window.is_all_time]


def snapshot_for_change(
    *, user_id: Any, username: str, total: int, version: int, at: datetime,
    period_totals: dict[str, tuple[int, datetime]],
) -> dict | None:
    """Inside a score change's transaction (user row locked): the totals record_score will write, or None when
    there is nothing to write to (database backend). `period_totals`: window key -> (total, last change) for
    the windows_to_total(at), as the change's ledger insert read them."""
    if not _uses_redis():
        return None
    return redis_record.change_snapshot(
        user_id=user_id, username=username, total=total, version=version, at=at, windows=periods.all_containing(at),
        period_totals=period_totals,
    )


def remove_user(*, user_id: Any) -> None:
    """Take a (banned) user off the current boards, after commit. Never raises.

    The database backend filters banned users out. On Redis the user's entries are rewritten from the database,
    which now says "banned": they become tombstones that an older write cannot bring back.
    """
    _write_through(user_id, [periods.current(period) for period in PERIODS])


def _write_through(
    user_id: Any, windows: list[periods.Window], snapshot: dict | None = None
) -> int | None | redis_record.NotBuilt:
    if not _uses_redis():
        return NOT_RANKED
    if not _redis_available():
        _health.missed_writes = True
        return NOT_RANKED
    try:
        return redis_record.record(user_id, windows, row=snapshot)[1]
    except Exception as exc:  # noqa: BLE001 - the change is committed; the board is repaired by a rebuild
        logger.warning("Leaderboard write to Redis failed for user %s (boards will be rebuilt): %s", user_id, exc)
        _health.failed(exc, missed_write=True)
        return NOT_RANKED


def rebuild(period: str | None = None, *, wait: float = 30.0) -> dict[str, int | None]:
    """Rebuild the current Redis board of `period` (every period when None) from the database; size per board.

    Waits up to `wait` seconds for a rebuild already running. A no-op on the database backend. Raises RedisError.
    """
    if not _uses_redis():
        return {}
    chosen = PERIODS if period is None else (period,)
    sizes = {}
    for name in chosen:
        window = periods.current(name)
        sizes[window.key] = redis_rebuild.rebuild(window, wait=wait)
    return sizes


def redis_status() -> dict:
    """For /readyz: whether the leaderboard's Redis answers a PING, and this process's outage state."""
    if not _uses_redis():
        return {"status": "disabled", "backend": "database"}
    try:
        redis_board.connection().client.ping()
    except RedisError as exc:
        logger.warning("Readiness probe: the leaderboard's Redis is down: %s", exc)
        _health.failed(exc, missed_write=False)
        return {"status": "down", "backend": "redis", "error": _health.last_error}
    return {"status": "ok", "backend": "redis", "rebuildPending": _health.missed_writes}


# --- Redis with the database behind it -------------------------------------------------------------------

def answers_from_redis() -> bool:
    """Whether reads go to Redis now (the backend is on and has not failed lately). A board that is missing or being
    rebuilt is still answered from the database meanwhile."""
    return _uses_redis() and time.monotonic() >= _health.retry_at and not _health.missed_writes


def _uses_redis() -> bool:
    return settings.LEADERBOARD_BACKEND == "redis"


def _ask_redis(window: periods.Window, read: Callable[[], Any]) -> tuple[bool, Any]:
    """(True, answer) from Redis, or (False, None) when the database must answer instead."""
    if not _uses_redis():
        return False, None
    if not _redis_available():
        BOARD_CACHE.labels(result="unavailable").inc()
        return False, None
    try:
        answer = read()
        BOARD_CACHE.labels(result="hit").inc()
        return True, answer
    except redis_board.BoardNotBuilt:
        BOARD_CACHE.labels(result="miss").inc()
    except RedisError as exc:
        BOARD_CACHE.labels(result="error").inc()
        logger.warning("Leaderboard read from Redis failed, answering from the database: %s", exc)
        _health.failed(exc, missed_write=False)
        return False, None
    try:
        # The first reader starts the one rebuild (under its lock); everyone reads the database meanwhile.
        redis_rebuild.rebuild_in_background(window)
    except RedisError as exc:
        _health.failed(exc, missed_write=False)
    return False, None


def _redis_available() -> bool:
    """False while a recent failure is within the retry delay; on recovery after missed writes, drop the boards."""
    if time.monotonic() < _health.retry_at:
        return False
    if _health.missed_writes:
        try:
            redis_rebuild.invalidate([periods.current(name) for name in PERIODS])
        except RedisError as exc:
            _health.failed(exc, missed_write=True)
            return False
        logger.info("Redis answers again after missed leaderboard writes: boards will be rebuilt from the database")
        _health.reset()
    return True
