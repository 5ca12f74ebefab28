package redis

import goredis "github.com/redis/go-redis/v9"

// Every write that touches more than one key is one of these scripts, so it
// is atomic: DeleteUser cannot miss a session that a concurrent Create is
// adding, and no crash leaves a session without its index entry.
//
// Cluster: every key a script touches carries the user's hash tag {tag}
// (see keys in redis.go), so all of them live in one slot. Keys known
// before the call are passed in KEYS; the script builds only the keys it
// discovers (the session keys of index members, the index of a session
// found by ID) from bases that carry the same tag.
//
// The index of a user is a sorted set: member = session ID, score = expiry
// in unix ms. "now" always comes from Options.Now in ARGV, never from the
// server's clock, so the store decides expiry the same way whatever the
// server's time. A session is live while now < expiry.
//
// Value offsets (1-based) follow codec.go: expiry at 42..61, seq at
// 82..101, the text fields from 102 on.
const luaLib = `
local function exp_of(v) return tonumber(string.sub(v, 42, 61)) end

local function user_of(v)
  local e = string.find(v, '\0', 102, true)
  return string.sub(v, 102, e - 1)
end

-- base is "<prefix>session:{"; an ID starts with its 4-character user tag.
local function session_key(base, id)
  return base .. string.sub(id, 1, 4) .. '}' .. string.sub(id, 5)
end

-- ms renders a whole number of milliseconds for a command argument.
local function ms(n) return string.format('%d', n) end

-- prune drops the index members expired at now, and their session keys:
-- with an injected clock ahead of the server's, the keys may outlive the
-- store's notion of expiry.
local function prune(idx, base, now)
  local stale = redis.call('ZRANGEBYSCORE', idx, '-inf', now)
  for _, m in ipairs(stale) do redis.call('DEL', session_key(base, m)) end
  if #stale > 0 then redis.call('ZREMRANGEBYSCORE', idx, '-inf', now) end
end

-- expire_index lets the index live exactly as long as its longest-lived
-- member, so an abandoned user's index disappears on its own.
local function expire_index(idx, now)
  local top = redis.call('ZRANGE', idx, -1, -1, 'WITHSCORES')
  if #top > 0 then
    redis.call('PEXPIRE', idx, ms(math.max(1, tonumber(top[2]) - now)))
  end
end
`

// Create status codes, the first element of the script's reply.
const (
	createOK      = 0
	createExists  = 1
	createRefused = 2
)

// KEYS[1] session key, KEYS[2] user index, KEYS[3] the tag's creation
// counter. ARGV[1] value, ARGV[2] now, ARGV[3] expiry, ARGV[4] cap (0: none),
// ARGV[5] "1" to refuse over the cap, ARGV[6] session ID, ARGV[7] session
// key base. Reply: {status, evicted IDs...}.
var createScript = goredis.NewScript(luaLib + `
local now, exp = tonumber(ARGV[2]), tonumber(ARGV[3])
local old = redis.call('GET', KEYS[1])
if old and exp_of(old) > now then return {1} end
prune(KEYS[2], ARGV[7], ARGV[2])
local out = {0}
local cap = tonumber(ARGV[4])
if cap > 0 then
  local n = redis.call('ZCARD', KEYS[2])
  if n >= cap then
    if ARGV[5] == '1' then return {2} end
    -- The members expiring soonest make room for the new session.
    for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - cap)) do
      redis.call('DEL', session_key(ARGV[7], m))
      redis.call('ZREM', KEYS[2], m)
      out[#out + 1] = m
    end
  end
end
-- The counter orders sessions created in the same millisecond. It must
-- outlive every session numbered by it, so its TTL only grows.
local seq = redis.call('INCR', KEYS[3])
if redis.call('PTTL', KEYS[3]) < exp - now then redis.call('PEXPIRE', KEYS[3], ms(exp - now)) end
local v = string.sub(ARGV[1], 1, 81) .. string.format('%020d', seq) .. string.sub(ARGV[1], 102)
redis.call('SET', KEYS[1], v, 'PX', ms(exp - now))
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[6])
expire_index(KEYS[2], now)
return out
`)

// KEYS[1] session key.
// ARGV[1] now, ARGV[2] last seen, ARGV[3] expiry (both %020d), ARGV[4]
// index key base "<prefix>user:{tag}:", ARGV[5] session ID, ARGV[6]
// session key base. Reply: the new value, or nil if no live session.
var touchScript = goredis.NewScript(luaLib + `
local now, exp = tonumber(ARGV[1]), tonumber(ARGV[3])
local v = redis.call('GET', KEYS[1])
if not v or exp_of(v) <= now then return false end
local nv = string.sub(v, 1, 21) .. ARGV[2] .. ARGV[3] .. string.sub(v, 62)
redis.call('SET', KEYS[1], nv, 'PX', ms(exp - now))
local idx = ARGV[4] .. user_of(v)
redis.call('ZADD', idx, ARGV[3], ARGV[5])
prune(idx, ARGV[6], ARGV[1])
expire_index(idx, now)
return nv
`)

// KEYS[1] user index.
// ARGV[1] now, ARGV[2] updated-at (%020d), ARGV[3] user JSON, ARGV[4]
// session key base. Reply: how many sessions were updated.
var updateUserScript = goredis.NewScript(luaLib + `
local now = tonumber(ARGV[1])
prune(KEYS[1], ARGV[4], ARGV[1])
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local k = session_key(ARGV[4], m)
  local v = redis.call('GET', k)
  if v then
    -- The user JSON follows the fourth NUL; it is replaced unparsed.
    local p = 101
    for _ = 1, 4 do p = string.find(v, '\0', p + 1, true) end
    local nv = '1' .. ARGV[2] .. string.sub(v, 22, p) .. ARGV[3]
    redis.call('SET', k, nv, 'PX', ms(math.max(1, exp_of(v) - now)))
    n = n + 1
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return n
`)

// KEYS[1] session key.
// ARGV[1] now, ARGV[2] index key base, ARGV[3] session ID, ARGV[4] session
// key base. Reply: 1 if a session was deleted, else 0.
var deleteScript = goredis.NewScript(luaLib + `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
redis.call('DEL', KEYS[1])
local idx = ARGV[2] .. user_of(v)
redis.call('ZREM', idx, ARGV[3])
prune(idx, ARGV[4], ARGV[1])
expire_index(idx, tonumber(ARGV[1]))
return 1
`)

// KEYS[1] user index.
// ARGV[1] now, ARGV[2] session key base.
// Reply: {id, value, id, value, ...} of the indexed sessions.
var listScript = goredis.NewScript(luaLib + `
prune(KEYS[1], ARGV[2], ARGV[1])
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = redis.call('GET', session_key(ARGV[2], m))
  if v then
    out[#out + 1] = m
    out[#out + 1] = v
  else
    redis.call('ZREM', KEYS[1], m)
  end
end
return out
`)

// KEYS[1] user index.
// ARGV[1] now, ARGV[2] session key base.
// Reply: how many live sessions were deleted.
var deleteUserScript = goredis.NewScript(luaLib + `
local now = tonumber(ARGV[1])
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local n = 0
for i = 1, #all, 2 do
  local gone = redis.call('DEL', session_key(ARGV[2], all[i]))
  if gone == 1 and tonumber(all[i + 1]) > now then n = n + 1 end
end
redis.call('DEL', KEYS[1])
return n
`)
