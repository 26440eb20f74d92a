"""The Redis backend: one sorted set per board, ordered exactly like the database by ZREVRANGE alone.

Encoding. The sorted-set score is the user's points (exact: doubles hold every integer up to 2**53). Equal scores
are ordered by member, and ZREVRANGE returns them in *descending* byte order, so the member is built to sort
descending in the board's tie order:

    member = hex16(2**64 - 1 - reached_at_in_microseconds) + complement(user_id_hex)

An earlier `reached_at` gives a larger first part and so comes first; for the same instant the nibble-wise
complemented UUID (0<->f, 1<->e, ...) makes the smaller user id come first. Both parts are fixed-width hex, so
byte order is numeric order, and the database's UUID order (PostgreSQL compares the 16 bytes, SQLite the 32 hex
characters) is the hex order too.

Per board, a hash maps user id -> "version:member" so a user's old member can be found and removed, and a write
carrying an older version (a retried or reordered update) is ignored. The version is the id of the user's newest
ledger row, which only grows for a user because their row lock orders their changes. A `built` marker says the
board is complete: writes never create a board (a missing one is rebuilt from the database), reads of a board
without the marker answer "not here" and the caller falls back to the database.

Usernames live in one hash (user id -> username) so a read is one round trip with no SQL; it is refreshed by
every score change of that user and by every rebuild.
"""

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max, OuterRef, Subquery, Sum
from redis.backoff import NoBackoff
from redis.retry import Retry

from scores.leaderboard.board import Board, Entry
from scores.leaderboard.periods import Window
from scores.models import ScoreEvent

User = get_user_model()

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TIME_CEILING = 2**64 - 1
MAX_EXACT_SCORE = 2**53
_COMPLEMENT = str.maketrans("0123456789abcdef", "fedcba9876543210")

# Lua: decode the user id (hex) from a member, for the username look-up inside the same round trip.
_LUA_UID = """
local INV = {['0']='f',['1']='e',['2']='d',['3']='c',['4']='b',['5']='a',['6']='9',['7']='8',
             ['8']='7',['9']='6',['a']='5',['b']='4',['c']='3',['d']='2',['e']='1',['f']='0'}
local function slice(zset, names, start, stop)
  local flat = redis.call('ZREVRANGE', zset, start, stop, 'WITHSCORES')
  local ids = {}
  for i = 1, #flat, 2 do ids[#ids + 1] = (string.gsub(string.sub(flat[i], 17), '.', INV)) end
  local found = {}
  if #ids > 0 then found = redis.call('HMGET', names, unpack(ids)) end
  local rows = {}
  for i = 1, #ids do
    rows[#rows + 1] = ids[i]; rows[#rows + 1] = found[i] or ''; rows[#rows + 1] = flat[2 * i]
  end
  return rows
end
"""

# KEYS: zset, built, names, meta. ARGV: start, stop. -> false if the board is not built, else {rows, meta}.
TOP = _LUA_UID + """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
return {slice(KEYS[1], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2])), redis.call('HMGET', KEYS[4], 'version', 'updated')}
"""

# KEYS: zset, users, built, names, meta. ARGV: uid, limit. -> false if the board is not built, else
# {rank0 (-1 if the user is not on it), offset, rows of the `limit` users around them (none if limit is 0), meta}.
AROUND = _LUA_UID + """
if redis.call('EXISTS', KEYS[3]) == 0 then return false end
local meta = redis.call('HMGET', KEYS[5], 'version', 'updated')
local entry = redis.call('HGET', KEYS[2], ARGV[1]) or ':'
local rank = false
local member = string.sub(entry, string.find(entry, ':', 1, true) + 1)
if member ~= '' then rank = redis.call('ZREVRANK', KEYS[1], member) end
local limit = tonumber(ARGV[2])
if not rank then return {-1, 0, {}, meta} end
if limit == 0 then return {rank, 0, {}, meta} end
local total = redis.call('ZCARD', KEYS[1])
local offset = math.max(0, math.min(rank - math.floor((limit - 1) / 2), total - limit))
return {rank, offset, slice(KEYS[1], KEYS[4], offset, offset + limit - 1), meta}
"""

# KEYS: names, meta, then per board: zset, users, built, lock, pending.
# ARGV: uid, username, version, updated, note (1: note the user for a running rebuild; 0: this *is* the rebuild
# re-applying them), then per board: present (1/0), score, member, expire_at (0 = never).
RECORD = """
local uid, version = ARGV[1], tonumber(ARGV[3])
redis.call('HSET', KEYS[1], uid, ARGV[2])
if version > tonumber(redis.call('HGET', KEYS[2], 'version') or '0') then
  redis.call('HSET', KEYS[2], 'version', ARGV[3], 'updated', ARGV[4])
end
local applied = 0
for b = 0, (#KEYS - 2) / 5 - 1 do
  local k, a = 3 + 5 * b, 6 + 4 * b
  local zset, users, built, lock, pending = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  -- A rebuild is loading this board from an older snapshot: have it re-apply this user after its swap.
  if ARGV[5] == '1' and redis.call('EXISTS', lock) == 1 then
    redis.call('SADD', pending, uid)
    redis.call('EXPIRE', pending, 900)
  end
  if redis.call('EXISTS', built) == 1 then
    local old = redis.call('HGET', users, uid)
    local stale = false
    if old then
      local sep = string.find(old, ':', 1, true)
      if tonumber(string.sub(old, 1, sep - 1)) > version then
        stale = true
      elseif sep < #old then
        redis.call('ZREM', zset, string.sub(old, sep + 1))
      end
    end
    if not stale then
      if ARGV[a] == '1' then
        redis.call('ZADD', zset, ARGV[a + 1], ARGV[a + 2])
        redis.call('HSET', users, uid, ARGV[3] .. ':' .. ARGV[a + 2])
      else
        redis.call('HSET', users, uid, ARGV[3] .. ':')
      end
      if ARGV[a + 3] ~= '0' then
        for _, key in ipairs({zset, users, built}) do redis.call('EXPIREAT', key, ARGV[a + 3]) end
      end
      applied = applied + 1
    end
  end
end
return applied
"""


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
        self.top = self.client.register_script(TOP)
        self.around = self.client.register_script(AROUND)
        self.record = self.client.register_script(RECORD)


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


def names_key() -> str:
    return f"{prefix()}:names"


def meta_key() -> str:
    return f"{prefix()}:meta"


def stats_key() -> str:
    return f"{prefix()}:stats"


def member(reached_at: datetime, user_id: uuid.UUID) -> str:
    """The sorted-set member that orders ties by (reached_at ascending, user id ascending) under ZREVRANGE."""
    micros = (reached_at - EPOCH) // timedelta(microseconds=1)
    return f"{TIME_CEILING - micros:016x}{user_id.hex.translate(_COMPLEMENT)}"


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
    found = conn.top(keys=[keys.zset, keys.built, names_key(), meta_key()], args=[0, limit - 1])
    if found is None:
        raise BoardNotBuilt(window.key)
    rows, meta = found
    return _board(window, rows, offset=0, meta=meta)


def rank_of(window: Window, user_id: Any) -> int | None:
    """The 1-based rank, or None if the user is not on the board. Raises BoardNotBuilt, RedisError."""
    found = _around(window, user_id, 0)
    return None if found[0] < 0 else found[0] + 1


def around(window: Window, user_id: Any, limit: int) -> Board:
    """`limit` users around the user (empty if they are not on it). Raises BoardNotBuilt, RedisError."""
    found = _around(window, user_id, limit)
    _, offset, rows, meta = found
    return _board(window, rows, offset=offset, meta=meta)


def _around(window: Window, user_id: Any, limit: int) -> list:
    keys = Keys(window)
    found = connection().around(
        keys=[keys.zset, keys.users, keys.built, names_key(), meta_key()], args=[_hex(user_id), limit]
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


def _hex(user_id: Any) -> str:
    return user_id.hex if isinstance(user_id, uuid.UUID) else uuid.UUID(str(user_id)).hex


# --- writes ----------------------------------------------------------------------------------------------


def record(user_id: Any, windows: list[Window], *, by_rebuild: bool = False) -> int:
    """Set the user's entry on each built board to what the database holds now; returns boards changed.

    Idempotent: it writes totals read from the database (never adds a delta), and a write older than the one on
    the board (by ledger version) is ignored, so retries and reordering cannot double-count or go back in time.
    """
    row = _snapshot(user_id, windows)
    if row is None or row["version"] is None:
        return 0
    keys, args = [names_key(), meta_key()], [_hex(user_id), row["username"], row["version"], row["version_at"].isoformat()]
    args.append(0 if by_rebuild else 1)
    now = datetime.now(timezone.utc)
    for index, window in enumerate(windows):
        board = Keys(window)
        keys += [board.zset, board.users, board.built, board.lock, board.pending]
        score, reached_at = row[f"score_{index}"], row[f"reached_{index}"]
        present = reached_at is not None
        expires = window.expires_at(now)
        args += [
            1 if present else 0,
            exact_score(score) if present else 0,
            member(reached_at, row["id"]) if present else "",
            int(expires.timestamp()) if expires else 0,
        ]
    return connection().record(keys=keys, args=args)


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
        .values("id", "username", "score", "score_updated_at")
        .annotate(**annotations)
        .first()
    )
    if row is None:
        return None
    for index, window in enumerate(windows):
        if window.is_all_time:
            row[f"score_{index}"], row[f"reached_{index}"] = row["score"], row["score_updated_at"]
    return row
