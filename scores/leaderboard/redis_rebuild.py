"""Rebuilding Redis boards from the database, and comparing the two.

A rebuild takes the board's lock (SET NX EX), loads a database snapshot into temporary keys, then swaps them in
with one atomic script, so readers see the old board or the new one and never an empty or half one. Score
changes that land while it loads are re-applied after the swap: the write path notes them in the board's
`pending` set whenever the lock is held.
"""

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

import redis
from django.db import connection as db_connection
from django.db.models import OuterRef, Subquery

from scoreboard_project.metrics import BOARD_CACHE
from scores.leaderboard import database, redis_scripts
from scores.leaderboard.periods import Window
from scores.leaderboard.redis_board import (
    Keys,
    connection,
    exact_score,
    member,
    meta_key,
    stats_key,
    user_id_of,
)
from scores.leaderboard.redis_record import record
from scores.models import ScoreEvent

logger = logging.getLogger(__name__)

LOCK_SECONDS = 300
BATCH = 5000
REBUILD_TIMEOUT = 60.0

_running: list[threading.Thread] = []
# Appending and starting under one lock: a concurrent wait_for_background_rebuilds must never join a thread that is
# listed but not yet started (RuntimeError), which the live flusher's thread made possible.
_running_lock = threading.Lock()


def rebuild(window: Window, *, wait: float = 0.0) -> int | None:
    """Rebuild one board now; returns its size, or None if another rebuild held the lock for `wait` seconds."""
    token = _acquire(window, wait=wait)
    if token is None:
        return None
    return _rebuild_locked(window, token)


def rebuild_in_background(window: Window) -> bool:
    """Start a rebuild of a missing board unless one is running; a crowd of readers thus starts exactly one."""
    token = _acquire(window, wait=0.0)
    if token is None:
        return False
    thread = threading.Thread(
        target=_rebuild_in_thread, args=(window, token), name=f"rebuild {window.key}", daemon=True
    )
    with _running_lock:
        _running.append(thread)
        thread.start()
    return True


def wait_for_background_rebuilds(timeout: float = REBUILD_TIMEOUT) -> None:
    """Join the rebuild threads this process started (tests and shutdown use it)."""
    while True:
        with _running_lock:
            if not _running:
                return
            thread = _running.pop()
        thread.join(timeout)


def invalidate(windows: list[Window]) -> None:
    """Drop the boards' `built` markers: every reader falls back to the database until a rebuild completes.

    Also bumps the boards' generation, so a rebuild already loading (its snapshot may predate the write this
    process missed) is dropped at its swap instead of marking its board built.
    """
    pipe = connection().client.pipeline(transaction=True)
    pipe.hincrby(meta_key(), "generation", 1)
    pipe.delete(*[Keys(window).built for window in windows])
    pipe.execute()


def _rebuild_in_thread(window: Window, token: str) -> None:
    try:
        _rebuild_locked(window, token)
    except Exception:  # noqa: BLE001 - a background rebuild must log, never kill the process
        logger.exception("Background rebuild of the %s board failed; readers stay on the database", window.key)
    finally:
        # This thread opened its own database connection: close it rather than leak it.
        db_connection.close()


def _acquire(window: Window, *, wait: float) -> str | None:
    token = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    client = connection().client
    while not client.set(Keys(window).lock, token, nx=True, ex=LOCK_SECONDS):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
    return token


def _rebuild_locked(window: Window, token: str) -> int:
    BOARD_CACHE.labels(result="rebuild").inc()
    started = time.monotonic()
    keys = Keys(window)
    slow = connection(timeout=REBUILD_TIMEOUT)
    try:
        snapshot = load_snapshot(window, token, slow)
        if not swap_in(window, snapshot, slow):
            logger.info("Dropped a rebuild of the %s board: the boards were invalidated while it loaded", window.key)
            return snapshot.size
        _drain_pending(window, keys, slow)
        slow.client.hincrby(stats_key(), f"rebuilds:{window.key}", 1)
    finally:
        slow.client.eval(redis_scripts.RELEASE, 1, keys.lock, token)
    logger.info("Rebuilt the %s board: %d users in %.2f s", window.key, snapshot.size, time.monotonic() - started)
    return snapshot.size


@dataclass(frozen=True)
class Snapshot:
    """A board loaded into temporary keys, and what the swap needs to know about it."""

    token: str
    generation: str
    version_at: datetime | None
    version: int
    size: int


def load_snapshot(window: Window, token: str, slow: Any) -> Snapshot:
    # The generation is read before the database: an invalidation after this point may concern a write the
    # snapshot does not hold.
    generation = slow.client.hget(meta_key(), "generation") or "0"
    version_at, version = database.version()
    size = _load(window, Keys(window), token, slow)
    return Snapshot(token, generation, version_at, version, size)


def swap_in(window: Window, snapshot: Snapshot, slow: Any) -> bool:
    """Put the loaded board in place atomically; False (and the temporary keys dropped) if invalidated since."""
    keys, token = Keys(window), snapshot.token
    expires = window.expires_at(datetime.now(timezone.utc))
    return bool(slow.client.eval(
        redis_scripts.SWAP,
        6,
        f"{keys.zset}:tmp:{token}", f"{keys.users}:tmp:{token}", keys.zset, keys.users, keys.built, meta_key(),
        snapshot.version, int(expires.timestamp()) if expires else 0, snapshot.version,
        snapshot.version_at.isoformat() if snapshot.version_at else "", snapshot.generation,
    ))


def _load(window: Window, keys: Keys, token: str, slow: Any) -> int:
    tmp_zset, tmp_users = f"{keys.zset}:tmp:{token}", f"{keys.users}:tmp:{token}"
    size = 0
    for batch in _batches(_rows_with_versions(window)):
        pipe = slow.client.pipeline(transaction=False)
        members = [(row, member(row["reached_at"], row["user_id"])) for row in batch]
        pipe.zadd(tmp_zset, {name: exact_score(row["score"]) for row, name in members})
        pipe.hset(
            tmp_users,
            mapping={row["user_id"].hex: f"{row['version'] or 0}:{name}{row['username']}" for row, name in members},
        )
        # Temporary keys vanish on their own if this rebuild dies before the swap.
        pipe.expire(tmp_zset, LOCK_SECONDS)
        pipe.expire(tmp_users, LOCK_SECONDS)
        pipe.execute()
        size += len(batch)
    return size


def _rows_with_versions(window: Window) -> Iterator[dict]:
    newest = ScoreEvent.objects.filter(user=OuterRef("user_id")).order_by("-id").values("id")[:1]
    rows = database.ranked_rows(window).annotate(version=Subquery(newest))
    return rows.iterator(chunk_size=BATCH)


def _batches(rows: Iterator[dict]) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _drain_pending(window: Window, keys: Keys, slow: Any) -> None:
    # These users changed while the snapshot loaded: write their current totals over the swapped-in board. Only
    # those noted before the swap: a change after it reached the built board itself, and draining the set while
    # writes keep noting more (the lock is still held) never ended under steady traffic, one heavy read per user.
    draining = f"{keys.pending}:drain"
    try:
        slow.client.rename(keys.pending, draining)
    except redis.ResponseError:  # no such key: nothing changed while the snapshot loaded
        return
    while user_ids := slow.client.spop(draining, BATCH):
        for user_id in user_ids:
            record(uuid.UUID(user_id), [window], by_rebuild=True)


# --- drift ---------------------------------------------------------------------------------------------


def drift(window: Window) -> list[str] | None:
    """Every difference between the Redis board and the database board; None when the Redis board is not built."""
    client = connection(timeout=REBUILD_TIMEOUT).client
    keys = Keys(window)
    if not client.exists(keys.built):
        return None
    in_redis = [
        (user_id_of(name), int(score)) for name, score in client.zrevrange(keys.zset, 0, -1, withscores=True)
    ]
    in_db = [(row["user_id"], row["score"]) for row in database.ranked_rows(window).order_by(*database.BOARD_ORDER)]
    return _differences(in_redis, in_db)


def _differences(in_redis: list[tuple[uuid.UUID, int]], in_db: list[tuple[uuid.UUID, int]]) -> list[str]:
    problems = []
    redis_scores, db_scores = dict(in_redis), dict(in_db)
    for user_id in db_scores.keys() - redis_scores.keys():
        problems.append(f"user {user_id} missing from Redis (database score {db_scores[user_id]})")
    for user_id in redis_scores.keys() - db_scores.keys():
        problems.append(f"user {user_id} in Redis (score {redis_scores[user_id]}) but not on the database board")
    for user_id in redis_scores.keys() & db_scores.keys():
        if redis_scores[user_id] != db_scores[user_id]:
            problems.append(f"user {user_id}: Redis score {redis_scores[user_id]}, database {db_scores[user_id]}")
    if not problems:
        for position, (mine, theirs) in enumerate(zip(in_redis, in_db), start=1):
            if mine[0] != theirs[0]:
                problems.append(f"rank {position}: Redis has user {mine[0]}, database has user {theirs[0]}")
                break
    return problems
