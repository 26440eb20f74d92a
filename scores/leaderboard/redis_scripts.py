"""The Lua scripts of the Redis board: each runs atomically on the server, in one round trip.

Member encoding and key layout are described in redis_board. Scores come back as strings (exact integers).
A board's users hash maps user id (hex) -> "<version>:<member, 48 characters><username>", or "<version>:" for a
user who is not on the board.
"""

# Lua: decode the user id (hex) from a member, and read the username from the users hash in the same round trip.
_LUA_UID = """
local INV = {['0']='f',['1']='e',['2']='d',['3']='c',['4']='b',['5']='a',['6']='9',['7']='8',
             ['8']='7',['9']='6',['a']='5',['b']='4',['c']='3',['d']='2',['e']='1',['f']='0'}
local function slice(zset, users, start, stop)
  local flat = redis.call('ZREVRANGE', zset, start, stop, 'WITHSCORES')
  local ids = {}
  for i = 1, #flat, 2 do ids[#ids + 1] = (string.gsub(string.sub(flat[i], 17), '.', INV)) end
  local found = {}
  if #ids > 0 then found = redis.call('HMGET', users, unpack(ids)) end
  local rows = {}
  for i = 1, #ids do
    local name = ''
    if found[i] then name = string.sub(found[i], string.find(found[i], ':', 1, true) + 49) end
    rows[#rows + 1] = ids[i]; rows[#rows + 1] = name; rows[#rows + 1] = flat[2 * i]
  end
  return rows
end
"""

# KEYS: zset, built, users, meta. ARGV: start, stop. -> false if the board is not built, else {rows, meta}.
TOP = _LUA_UID + """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local meta = redis.call('HMGET', KEYS[4], 'version', 'updated')
return {slice(KEYS[1], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2])), meta}
"""

# KEYS: zset, users, built, meta. ARGV: uid, limit. -> false if the board is not built, else
# {rank0 (-1 if the user is not on it), offset, rows of the `limit` users around them (none if limit is 0), meta}.
AROUND = _LUA_UID + """
if redis.call('EXISTS', KEYS[3]) == 0 then return false end
local meta = redis.call('HMGET', KEYS[4], 'version', 'updated')
local entry = redis.call('HGET', KEYS[2], ARGV[1]) or ':'
local rank = false
local sep = string.find(entry, ':', 1, true)
if #entry > sep then rank = redis.call('ZREVRANK', KEYS[1], string.sub(entry, sep + 1, sep + 48)) end
local limit = tonumber(ARGV[2])
if not rank then return {-1, 0, {}, meta} end
if limit == 0 then return {rank, 0, {}, meta} end
local total = redis.call('ZCARD', KEYS[1])
local offset = math.max(0, math.min(rank - math.floor((limit - 1) / 2), total - limit))
return {rank, offset, slice(KEYS[1], KEYS[2], offset, offset + limit - 1), meta}
"""

# KEYS: zset, users, built, meta. ARGV: uids. -> false if the board is not built, else
# {meta, {rank0 (-1 if the user is not on it), score (nil then)} per uid}.
RANKS = """
if redis.call('EXISTS', KEYS[3]) == 0 then return false end
local meta = redis.call('HMGET', KEYS[4], 'version', 'updated')
local found = {}
for i = 1, #ARGV do
  local entry = redis.call('HGET', KEYS[2], ARGV[i]) or ':'
  local sep = string.find(entry, ':', 1, true)
  local rank, score = -1, false
  if #entry > sep then
    local member = string.sub(entry, sep + 1, sep + 48)
    rank = redis.call('ZREVRANK', KEYS[1], member) or -1
    score = redis.call('ZSCORE', KEYS[1], member)
  end
  found[i] = {rank, score}
end
return {meta, found}
"""

# KEYS: meta, then per board: zset, users, built, lock, pending.
# ARGV: uid, username, version, updated, note (1: note the user for a running rebuild; 0: this *is* the rebuild
# re-applying them), loses_ties (1: a snapshot from the change's own transaction, which an entry of the same version
# read after its commit, e.g. a ban's, supersedes), then per board: present (1/0), score, member, expire_at (0 = never).
# -> {boards changed, the user's 0-based rank on the first board afterwards (-1: not on it; -2: not built)}.
RECORD = """
local uid, version, loses_ties = ARGV[1], tonumber(ARGV[3]), ARGV[6] == '1'
if version > tonumber(redis.call('HGET', KEYS[1], 'version') or '0') then
  redis.call('HSET', KEYS[1], 'version', ARGV[3], 'updated', ARGV[4])
end
local applied = 0
for b = 0, (#KEYS - 1) / 5 - 1 do
  local k, a = 2 + 5 * b, 7 + 4 * b
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
      local old_version = tonumber(string.sub(old, 1, sep - 1))
      if old_version > version or (loses_ties and old_version == version) then
        stale = true
      elseif sep < #old then
        redis.call('ZREM', zset, string.sub(old, sep + 1, sep + 48))
      end
    end
    if not stale then
      if ARGV[a] == '1' then
        redis.call('ZADD', zset, ARGV[a + 1], ARGV[a + 2])
        redis.call('HSET', users, uid, ARGV[3] .. ':' .. ARGV[a + 2] .. ARGV[2])
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
local rank = -2
if redis.call('EXISTS', KEYS[4]) == 1 then
  local entry = redis.call('HGET', KEYS[3], uid) or ':'
  local sep = string.find(entry, ':', 1, true)
  rank = -1
  if #entry > sep then rank = redis.call('ZREVRANK', KEYS[2], string.sub(entry, sep + 1, sep + 48)) or -1 end
end
return {applied, rank}
"""

# KEYS: tmp zset, tmp users, zset, users, built, meta. ARGV: built value, expire_at (0 = never), version, updated,
# the boards' generation when the rebuild began (redis_rebuild.load_snapshot).
SWAP = """
-- The boards were invalidated after this rebuild read its generation: its snapshot may miss a write. Drop it.
if (redis.call('HGET', KEYS[6], 'generation') or '0') ~= ARGV[5] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 2])
  else redis.call('DEL', KEYS[i + 2]) end
end
redis.call('SET', KEYS[5], ARGV[1])
-- RENAME keeps the temporary keys' own expiry (set in case the rebuild died): a board that never ends drops it.
for i = 3, 5 do
  if ARGV[2] ~= '0' then redis.call('EXPIREAT', KEYS[i], ARGV[2]) else redis.call('PERSIST', KEYS[i]) end
end
if tonumber(ARGV[3]) > tonumber(redis.call('HGET', KEYS[6], 'version') or '0') then
  redis.call('HSET', KEYS[6], 'version', ARGV[3], 'updated', ARGV[4])
end
return 1
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
