-- Slide a session's idle expiry: rewrite last_seen and the TTL.
-- KEYS[1] = <prefix>sess:<key>   ARGV[1] = now (ms)
-- Returns 1, or 0 when the session is gone or past its absolute expiry.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local s = cjson.decode(v)
local now = tonumber(ARGV[1])
if now >= s.absolute_expires_at then
  redis.call('DEL', KEYS[1])
  return 0
end
s.last_seen = now
local ttl = math.min(s.idle_ms, s.absolute_expires_at - now)
redis.call('SET', KEYS[1], cjson.encode(s), 'PX', ttl)
return 1
