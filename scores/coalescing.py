"""The coalescing window of live broadcasts: which changes are pending, who flushes them, and when.

The first change of a window opens it (and, with REDIS_URL, takes a lock shared by every process, so one process
flushes each window); changes until it closes join it; the Flusher thread of the process that opened it runs the
flush (scores.broadcast.flush) when it closes. The window also remembers the last board sent per period, so a
flush sends only the boards that changed.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import connections

from scores import leaderboard

logger = logging.getLogger(__name__)

_LOCK_GRACE_MS = 1000


class LocalWindow:
    """One process (the embedded default): pending users and the last board sent, under a thread lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._open = False
        self._last: dict[str, str] = {}

    def note(self, user_id: str) -> bool:
        with self._lock:
            self._pending.add(user_id)
            opened, self._open = not self._open, True
            return opened

    def drain(self) -> set[str]:
        with self._lock:
            pending, self._pending, self._open = self._pending, set(), False
            return pending

    def forget_last(self) -> None:
        self._last = {}

    def swap_last(self, boards: dict[str, str]) -> dict[str, str | None]:
        with self._lock:
            previous = {period: self._last.get(period) for period in boards}
            self._last.update(boards)
            return previous


class RedisWindow:
    """Every process sharing REDIS_URL: the first change in a window takes a lock and that process flushes."""

    def __init__(self, url: str, prefix: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        self._lock_key, self._pending_key, self._last_key = (f"{prefix}:{name}" for name in ("lock", "pending", "last"))

    def note(self, user_id: str) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        pipe.sadd(self._pending_key, user_id)
        pipe.set(self._lock_key, "1", nx=True, px=settings.LIVE_COALESCE_MS + _LOCK_GRACE_MS)
        return bool(pipe.execute()[1])

    def drain(self) -> set[str]:
        # Releasing the lock and taking the pending set in one transaction: a change noted after this opens a
        # new window (and flush); one noted before it is in the set, and its commit is visible to our read.
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._lock_key)
        pipe.smembers(self._pending_key)
        pipe.delete(self._pending_key)
        return {member.decode() for member in pipe.execute()[1]}

    def _last_key_of(self, period: str) -> str:
        # The all-time key keeps its pre-period name, so a rolling deploy does not resend an unchanged board.
        return self._last_key if period == leaderboard.ALL_TIME else f"{self._last_key}:{period}"

    def forget_last(self) -> None:
        self._redis.delete(*(self._last_key_of(period) for period in leaderboard.PERIODS))

    def swap_last(self, boards: dict[str, str]) -> dict[str, str | None]:
        pipe = self._redis.pipeline(transaction=False)
        for period, entries_json in boards.items():
            pipe.set(self._last_key_of(period), entries_json, get=True)
        found = pipe.execute()
        return {period: None if old is None else old.decode() for period, old in zip(boards, found)}


_windows: dict[str, Any] = {}


def window() -> Any:
    """This process's window: shared through Redis when REDIS_URL is set, else local."""
    url = settings.REDIS_URL
    if url not in _windows:
        _windows[url] = RedisWindow(url, settings.LIVE_REDIS_PREFIX) if url else LocalWindow()
    return _windows[url]


class Flusher:
    """One daemon thread per process that waits out the window, then flushes; it owns a private event loop
    so the Redis channel layer keeps one connection pool for all broadcasts from this process."""

    def __init__(self, flush: Callable[[float | None], None]) -> None:
        self._flush = flush
        self._condition = threading.Condition()
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._flushing = False
        self.noted_at: float | None = None
        self.loop = asyncio.new_event_loop()

    def schedule(self, delay: float) -> None:
        with self._condition:
            if self._deadline is None:
                self._deadline = time.monotonic() + delay
                self.noted_at = time.monotonic()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="scoreboard-broadcast", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no flush is pending or running (tests use it: a window still open when a test ends would
        flush into the next one); whether it became idle within `timeout` seconds."""
        with self._condition:
            return self._condition.wait_for(lambda: self._deadline is None and not self._flushing, timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._deadline is None or self._deadline > time.monotonic():
                    timeout = None if self._deadline is None else self._deadline - time.monotonic()
                    self._condition.wait(timeout)
                self._deadline, noted_at = None, self.noted_at
                self._flushing = True
            try:
                self._flush(noted_at)
            except Exception:  # noqa: BLE001 - keep the thread alive for the next change
                logger.exception("Live broadcast failed")
            with self._condition:
                self._flushing = False
                idle = self._deadline is None
                self._condition.notify_all()
            if idle:
                # Keep this thread's database connection while changes keep coming; close it when they stop, so
                # it never idles open (or blocks dropping a test database).
                connections.close_all()
