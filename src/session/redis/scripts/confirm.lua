-- A new session's record is written: its pending index entry ("~<key>")
-- becomes "<key>", which max_per_user may then end. When the pending entry is
-- gone (the session was destroyed in between), nothing is added back.
-- KEYS[1] = <prefix>user:<name>   ARGV[1] = the session's key (hex)
-- Returns 1 when confirmed.
local score = redis.call('ZSCORE', KEYS[1], '~' .. ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], '~' .. ARGV[1])
redis.call('ZADD', KEYS[1], score, ARGV[1])
return 1
