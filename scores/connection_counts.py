"""Where scores.connection_limits keeps its counts of open live connections.

RedisCounts (REDIS_URL set): each count is a hash of per-process counts, and a process's share counts only while
its heartbeat key lives (CONNECTION_HEARTBEAT_SECONDS, refreshed three times per period while the process holds
connections). So a server killed without releasing (SIGKILL, out of memory, a lost host) frees its users' and
IPs' slots within one period, and a live server whose heartbeat lapsed (Redis restarted empty, or out of reach
for a while) writes its own counts back at its next beat. The limit check and the increment are one script, so
concurrent connects never overshoot a limit. The scripts read heartbeat keys they are not given as KEYS: one
Redis (or a Sentinel-managed primary), not Redis Cluster.

CacheCounts (any other cache; the embedded default's local memory, one process): an incremented number per key.

Both keep every count under a TTL (CONNECTION_COUNT_TTL_SECONDS), refreshed on each connect.
"""

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

# KEYS: the counts to take. ARGV: this process, the heartbeat key prefix, the counts' TTL (s), then each count's
# limit. Returns 0 when every count was taken, else the (1-based) index of the first count at its limit, taking
# nothing. Shares of processes without a heartbeat are dropped on the way.
_TAKE = """
for i, key in ipairs(KEYS) do
  local total, fields = 0, redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    if fields[j] == ARGV[1] or redis.call('EXISTS', ARGV[2] .. fields[j]) == 1 then
      total = total + tonumber(fields[j + 1])
    else
      redis.call('HDEL', key, fields[j])
    end
  end
  if total >= tonumber(ARGV[3 + i]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, ARGV[1], 1)
  redis.call('EXPIRE', key, ARGV[3])
end
return 0
"""

_GIVE_BACK = """
for _, key in ipairs(KEYS) do
  if redis.call('HINCRBY', key, ARGV[1], -1) <= 0 then redis.call('HDEL', key, ARGV[1]) end
end
"""

_COUNT = """
local total, fields = 0, redis.call('HGETALL', KEYS[1])
for j = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[1] .. fields[j]) == 1 then total = total + tonumber(fields[j + 1]) end
end
return total
"""


_process_names: dict = {}


def this_process() -> str:
    """This server process's name in the counts (host, pid and a random part: pids are reused)."""
    pid = os.getpid()
    if _process_names.get("pid") != pid:
        _process_names.update(pid=pid, name=f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}")
    return _process_names["name"]


class CacheCounts:
    def __init__(self, alias: str) -> None:
        self._cache = caches[alias]

    def take(self, keys: Sequence[str], limits: Sequence[int]) -> int | None:
        """Count one more on each key; None, or the index of the first key over its limit (nothing taken)."""
        taken: list[str] = []
        for index, (key, limit) in enumerate(zip(keys, limits)):
            taken.append(key)
            if self._increment(key) > limit:
                self.give_back(taken)
                return index
        return None

    def give_back(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                if self._cache.decr(key) < 0:
                    self._cache.set(key, 0, settings.CONNECTION_COUNT_TTL_SECONDS)
            except ValueError:
                pass  # the count expired meanwhile: nothing to give back

    def count(self, key: str) -> int:
        return self._cache.get(key, 0)

    def _increment(self, key: str) -> int:
        ttl = settings.CONNECTION_COUNT_TTL_SECONDS
        self._cache.add(key, 0, ttl)
        try:
            count = self._cache.incr(key)
        except ValueError:  # expired between add and incr
            self._cache.add(key, 1, ttl)
            return 1
        self._cache.touch(key, ttl)
        return count


class RedisCounts:
    def __init__(self, cache: RedisCache, heartbeat_prefix: str) -> None:
        self._cache = cache
        self._heartbeat_prefix = cache.make_key(heartbeat_prefix)
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()  # this process's share of each count (full Redis keys)
        self._unsynced: set[str] = set()  # keys whose take or give-back failed: maybe miscounted in Redis
        self._beaten_at = float("-inf")
        self._beating = False

    def take(self, keys: Sequence[str], limits: Sequence[int]) -> int | None:
        redis_keys = [self._cache.make_key(key) for key in keys]
        with self._lock:
            if time.monotonic() - self._beaten_at > self._beat_every():
                self._beat()
            try:
                refused = self._client().eval(
                    _TAKE, len(redis_keys), *redis_keys, this_process(), self._heartbeat_prefix,
                    settings.CONNECTION_COUNT_TTL_SECONDS, *limits,
                )
            except Exception:
                self._unsynced.update(redis_keys)  # it may have counted before the reply was lost
                self._start_beating()
                raise
            if refused:
                return refused - 1
            self._held.update(redis_keys)
            self._start_beating()
        return None

    def give_back(self, keys: Sequence[str]) -> None:
        redis_keys = [self._cache.make_key(key) for key in keys]
        with self._lock:
            self._held.subtract(redis_keys)
            self._held = +self._held  # drop the zeros
            try:
                self._client().eval(_GIVE_BACK, len(redis_keys), *redis_keys, this_process())
            except Exception:
                self._unsynced.update(redis_keys)  # corrected at the next beat
                self._start_beating()
                raise

    def count(self, key: str) -> int:
        return self._client().eval(_COUNT, 1, self._cache.make_key(key), self._heartbeat_prefix)

    def _client(self):
        return self._cache._cache.get_client(write=True)  # Django's RedisCache has no public raw-client accessor

    @staticmethod
    def _beat_every() -> float:
        return settings.CONNECTION_HEARTBEAT_SECONDS / 3

    def _beat(self) -> None:
        """Under the lock: renew this process's heartbeat. If it had lapsed, write all of this process's counts
        back; else only those whose take or give-back failed."""
        client, me = self._client(), this_process()
        lapsed = client.set(self._heartbeat_prefix + me, "1", px=settings.CONNECTION_HEARTBEAT_SECONDS * 1000,
                            get=True) is None
        stale = set(self._held) | self._unsynced if lapsed else self._unsynced
        if stale:
            pipe = client.pipeline(transaction=False)
            for key in stale:
                if self._held[key] > 0:
                    pipe.hset(key, me, self._held[key])
                    pipe.expire(key, settings.CONNECTION_COUNT_TTL_SECONDS)
                else:
                    pipe.hdel(key, me)
            pipe.execute()
            if lapsed and self._held:
                logger.warning("Live connection counts: this process's heartbeat had lapsed; wrote back %d count(s)",
                               len(self._held))
        self._unsynced = set()
        self._beaten_at = time.monotonic()

    def _start_beating(self) -> None:
        if not self._beating:
            self._beating = True
            threading.Thread(target=self._keep_beating, name="connection-heartbeat", daemon=True).start()

    def _keep_beating(self) -> None:
        while True:
            time.sleep(self._beat_every())
            with self._lock:
                if not self._held and not self._unsynced:
                    self._beating = False
                    return
                try:
                    self._beat()
                except Exception:  # noqa: BLE001 - Redis out of reach: the next beat writes the counts back
                    logger.warning("Live connection counts: heartbeat failed", exc_info=True)


_stores: dict[tuple[str, str], CacheCounts | RedisCounts] = {}


def store() -> CacheCounts | RedisCounts:
    """The counts for the current settings (one store per cache alias and key prefix)."""
    alias, prefix = settings.RATELIMIT_USE_CACHE, settings.CONNECTION_LIMIT_KEY_PREFIX
    if (alias, prefix) not in _stores:
        cache = caches[alias]
        _stores[alias, prefix] = (
            RedisCounts(cache, f"{prefix}process:") if isinstance(cache, RedisCache) else CacheCounts(alias)
        )
    return _stores[alias, prefix]
