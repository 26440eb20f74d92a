"""The Redis backend: one sorted set per board, ordered exactly like the database by ZREVRANGE alone.

Encoding. The sorted-set score is the user's points (exact: doubles hold every integer up to 2**53). Equal scores
are ordered by member, and ZREVRANGE returns them in *descending* byte order, so the member is built to sort
descending in the board's tie order:

    member = hex16(2**64 - 1 - reached_at_in_microseconds) + complement(user_id_hex)

An earlier `reached_at` gives a larger first part and so comes first; for the same instant the nibble-wise
complemented UUID (0<->f, 1<->e, ...) makes the smaller user id come first. Both parts are fixed-width hex, so
byte order is numeric order, and the database's UUID order (PostgreSQL compares the 16 bytes, SQLite the 32 hex
characters) is the hex order too.

Per board, a hash maps user id -> "version:member username" so a user's old member can be found and removed, a
read gets the usernames of the rows it returns in the same round trip (no SQL on the read path), and a write
carrying an older version (a retried or reordered update) is ignored. The version is the id of the user's newest
ledger row, which only grows for a user because their row lock orders their changes. A `built` marker says the
board is complete: writes never create a board (a missing one is rebuilt from the database), reads of a board
without the marker answer "not here" and the caller falls back to the database.
A username there is refreshed by every score change of that user and by every rebuild.

This module holds the key layout and the reads; the write (record) is in redis_record.py, the rebuild in
redis_rebuild.py, the Lua scripts of both in redis_scripts.py.
"""

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from scores.leaderboard import redis_scripts
from scores.leaderboard.board import Board, Entry
from scores.leaderboard.periods import Window

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TIME_CEILING = 2**64 - 1
MAX_EXACT_SCORE = 2**53
_RANKS_PER_CALL = 500  # users per RANKS script call: each call blocks Redis while it runs
_COMPLEMENT = str.maketrans("0123456789abcdef", "fedcba9876543210")


class BoardNotBuilt(Exception):
    """The board has no `built` marker (never built, flushed, expired or invalidated): ask the database."""


class _Connection:
    """A client with short timeouts and no retries (a dead Redis must fail fast), and its scripts."""

    def __init__(self, url: str, timeout: float) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            max_connections=500,
        )
        self.top = self.client.register_script(redis_scripts.TOP)
        self.around = self.client.register_script(redis_scripts.AROUND)
        self.ranks = self.client.register_script(redis_scripts.RANKS)
        self.record = self.client.register_script(redis_scripts.RECORD)


_connections: dict[tuple[str, float], _Connection] = {}


def connection(*, timeout: float | None = None) -> _Connection:
    """The shared connection for the configured URL (reads and writes use the short request timeout)."""
    if timeout is None:
        timeout = settings.LEADERBOARD_REDIS_TIMEOUT_MS / 1000
    key = (settings.LEADERBOARD_REDIS_URL, timeout)
    if key not in _connections:
        _connections[key] = _Connection(*key)
    return _connections[key]


class Keys:
    """Every Redis key of one board, under the configured prefix."""

    def __init__(self, window: Window) -> None:
        base = f"{prefix()}:board:{window.key}"
        self.zset = base
        self.users = f"{base}:users"
        self.built = f"{base}:built"
        self.lock = f"{base}:lock"
        self.pending = f"{base}:pending"


def prefix() -> str:
    return settings.LEADERBOARD_KEY_PREFIX


def meta_key() -> str:
    return f"{prefix()}:meta"


def stats_key() -> str:
    return f"{prefix()}:stats"


def member(reached_at: datetime, user_id: uuid.UUID) -> str:
    """The sorted-set member that orders ties by (reached_at ascending, user id ascending) under ZREVRANGE."""
    micros = (reached_at - EPOCH) // timedelta(microseconds=1)
    return f"{TIME_CEILING - micros:016x}{user_id.hex.translate(_COMPLEMENT)}"


def user_id_of(board_member: str) -> uuid.UUID:
    """The user id a member encodes (the inverse of member() for the id part)."""
    return uuid.UUID(board_member[16:].translate(_COMPLEMENT))


def exact_score(score: int) -> int:
    """The score as stored; refuses totals a double cannot hold exactly rather than mis-order them."""
    if abs(score) > MAX_EXACT_SCORE:
        raise OverflowError(f"score {score} is beyond 2**53 and cannot be ranked exactly in Redis")
    return score


# --- reads -----------------------------------------------------------------------------------------------


def top(window: Window, limit: int) -> Board:
    """The first `limit` users. Raises BoardNotBuilt, RedisError."""
    keys = Keys(window)
    conn = connection()
    found = conn.top(keys=[keys.zset, keys.built, keys.users, meta_key()], args=[0, limit - 1])
    if found is None:
        raise BoardNotBuilt(window.key)
    rows, meta = found
    return _board(window, rows, offset=0, meta=meta)


def rank_of(window: Window, user_id: Any) -> int | None:
    """The 1-based rank, or None if the user is not on the board. Raises BoardNotBuilt, RedisError."""
    found = _around(window, user_id, 0)
    return None if found[0] < 0 else found[0] + 1


def tops(windows: list[Window], limit: int) -> dict[str, Board | None]:
    """The first `limit` users of each board, in one round trip; None for a board that is not built.
    Raises RedisError."""
    conn = connection()
    pipe = conn.client.pipeline(transaction=False)
    for window in windows:
        keys = Keys(window)
        conn.top(keys=[keys.zset, keys.built, keys.users, meta_key()], args=[0, limit - 1], client=pipe)
    return {
        window.key: None if found is None else _board(window, found[0], offset=0, meta=found[1])
        for window, found in zip(windows, pipe.execute())
    }


def ranks_of(window: Window, user_ids: list[Any]) -> tuple[int, dict[str, tuple[int, int]]]:
    """(board version, {user id: (rank, score)}) for those of `user_ids` on the board, a few round trips for many
    users. Raises BoardNotBuilt, RedisError."""
    keys = Keys(window)
    conn = connection()
    version, found = 0, {}
    for start in range(0, len(user_ids), _RANKS_PER_CALL):
        batch = [str(user_id) for user_id in user_ids[start : start + _RANKS_PER_CALL]]
        answer = conn.ranks(keys=[keys.zset, keys.users, keys.built, meta_key()], args=[user_hex(u) for u in batch])
        if answer is None:
            raise BoardNotBuilt(window.key)
        meta, ranks = answer
        version = max(version, int(meta[0] or 0))
        found.update(
            {user_id: (rank0 + 1, int(float(score))) for user_id, (rank0, score) in zip(batch, ranks) if rank0 >= 0 and score is not None}
        )
    return version, found


def around(window: Window, user_id: Any, limit: int) -> Board:
    """`limit` users around the user (empty if they are not on it). Raises BoardNotBuilt, RedisError."""
    found = _around(window, user_id, limit)
    _, offset, rows, meta = found
    return _board(window, rows, offset=offset, meta=meta)


def _around(window: Window, user_id: Any, limit: int) -> list:
    keys = Keys(window)
    found = connection().around(
        keys=[keys.zset, keys.users, keys.built, meta_key()], args=[user_hex(user_id), limit]
    )
    if found is None:
        raise BoardNotBuilt(window.key)
    return found


def _board(window: Window, rows: list, *, offset: int, meta: list) -> Board:
    entries = [
        Entry(
            rank=offset + index + 1,
            user_id=str(uuid.UUID(rows[3 * index])),
            username=rows[3 * index + 1],
            score=int(float(rows[3 * index + 2])),
        )
        for index in range(len(rows) // 3)
    ]
    version, updated = meta
    return Board(
        entries, datetime.fromisoformat(updated) if updated else None, int(version or 0), period=window.period
    )


def user_hex(user_id: Any) -> str:
    return user_id.hex if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id)).hex
