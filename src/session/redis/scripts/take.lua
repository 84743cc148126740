-- Remove a session's record and return it (GETDEL, which needs Redis 6.2).
-- KEYS[1] = <prefix>sess:<key>
-- Returns the record, or false when there was none.
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
