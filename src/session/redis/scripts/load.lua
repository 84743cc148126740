-- Read a session, sliding its idle expiry at most every ARGV[2] ms (or a tenth
-- of its idle time), since every write invalidates every instance's local copy.
-- KEYS[1] = <prefix>sess:<key>   ARGV[1] = now (ms)   ARGV[2] = touch interval (ms)
-- Returns the record, or false when it is gone or past its absolute expiry.
local v = redis.call('GET', KEYS[1])
if not v then return false end
local s = cjson.decode(v)
local now = tonumber(ARGV[1])
if now >= s.absolute_expires_at then
  redis.call('DEL', KEYS[1])
  return false
end
local every = math.min(tonumber(ARGV[2]), math.floor(s.idle_ms / 10))
if now - s.last_seen < every then return v end
s.last_seen = now
v = cjson.encode(s)
redis.call('SET', KEYS[1], v, 'PX', math.min(s.idle_ms, s.absolute_expires_at - now))
return v
