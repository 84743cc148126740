-- Store a new session; for a user's session, index it and enforce max_per_user.
-- KEYS[1] = <prefix>sess:<key>   KEYS[2] = <prefix>user:<name> (only for a user's session)
-- ARGV[1] = the record (JSON)    ARGV[2] = its TTL in ms
-- ARGV[3] = absolute expiry (the index score)   ARGV[4] = the session key (hex)
-- ARGV[5] = now (ms): index entries scored below it are dead
-- ARGV[6] = max_per_user   ARGV[7] = <prefix>sess: (to delete the sessions ended)
-- Returns how many of the user's oldest sessions were ended.
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local ended = 0
if #KEYS > 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
  local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
  if over > 0 then
    for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, over)) do
      if ended < over and m ~= ARGV[4] then
        redis.call('ZREM', KEYS[2], m)
        redis.call('DEL', ARGV[7] .. m)
        ended = ended + 1
      end
    end
  end
  local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
  if last[2] then redis.call('PEXPIREAT', KEYS[2], last[2]) end
end
return ended
