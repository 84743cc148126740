-- Remove a session and its entry in its user's index.
-- KEYS[1] = <prefix>sess:<key>   ARGV[1] = the key prefix   ARGV[2] = the session key (hex)
-- Returns 1 when a session was removed.
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
redis.call('DEL', KEYS[1])
local s = cjson.decode(v)
if type(s.user) == 'string' then
  redis.call('ZREM', ARGV[1] .. 'user:' .. s.user, ARGV[2])
end
return 1
